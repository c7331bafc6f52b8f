"""Update compression on the 40-device preset: accuracy against total latency and energy, per level.

    .venv/bin/python experiments/compression.py --out experiments/results/compression            # the docs table
    .venv/bin/python experiments/compression.py --quick --out /tmp/cmp                            # a smoke run

Two parts, both written into ``--out``:

1. ``--measure`` (always run first unless ``distortion.json`` is there): the distortion of each codec on the
   model's real updates. It trains ``--measure-rounds`` rounds with ``federation.compression=none`` through the
   training seam (``trainer=``), keeps every device's update delta (trained state - the state it received) of
   every shared module, and encodes it with every codec: a device update's distortion is
   sum ||decode(encode(delta)) - delta||^2 / sum ||delta||^2 over its modules (one round, no residual: what one
   send loses before error feedback carries the rest to the next round). The mean over updates and rounds is
   what ``federation.compression_distortion`` holds and what ``auto`` counts. Also each codec's bytes factor, and
   for the error-feedback codecs (top-k, low-rank; plain residual and momentum 0.7) the distortion with the
   residual carried from send to send: ||sum of what the edge decoded - sum of the true deltas||^2 / ||sum of the
   true deltas||^2 of a device after its n-th send (``distortion_feedback``, by n; n = 1 is the one-send figure).
   ``--measure-only --measure-rounds 4 --out DIR`` measures them alone.
2. One run per level (none, fp16, int8, topk, auto) of ``experiment=hffm model=tiny`` on the default
   40-device topology (10 edges x 4 devices) with the joint solver (auto needs it; the fixed levels use it too, so
   they differ only in the codec): final accuracy, total latency and energy (the ledger's cumulative charge) and
   total uplink bytes. Runs are cached in runs/<name>.json (an interrupted study resumes; a run made by other code,
   ``code_version.code_hash``, is run again).

Writes distortion.json, results.json, table.md and front.png (accuracy vs total latency and vs total energy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LEVELS = ("none", "fp16", "int8", "topk", "auto")
BASE = ["experiment=hffm", "topology=default", "model=tiny", "data=benchmark", "data.benchmark.num_samples=1200",
        "federation.local_steps=2", "federation.batch_size=32", "solver=joint", "solver.time_limit_s=2",
        "logger=none", "progress=none",
        "plots=false"]
QUICK = ["topology.num_edges=2", "topology.devices_per_edge=2", "data.benchmark.num_samples=300",
         "federation.local_steps=1", "federation.batch_size=16"]
KEEP = ("accuracy", "cost/cum_latency_s", "cost/cum_energy_j")


def compose(overrides: Sequence[str]) -> Any:
    from hydra.core.global_hydra import GlobalHydra

    from hffm.config import compose as hffm_compose

    GlobalHydra.instance().clear()
    return hffm_compose(*overrides)


def cpu_seconds() -> float:
    return time.process_time()


FEEDBACK_MOMENTUM = (0.0, 0.7)
"""Momentum corrections under which top-k is also measured with the residual carried (0: plain residual feedback;
0.7: the default; low-rank decodes every entry, so its velocity always restarts: measured at 0 only)."""


def measure(overrides: Sequence[str], rounds: int, codecs: Sequence[str]) -> dict[str, Any]:
    """Each codec's mean distortion and bytes factor on the updates of ``rounds`` uncompressed rounds; for the
    codecs with error feedback also the distortion with the residual carried (``distortion_feedback``)."""
    import dataclasses

    import torch

    from hffm.engine import train_devices
    from hffm.federation.compression import CODECS, Codebook, send_module, state_wire_bytes
    from hffm.federation.loop import run_federation, tier_policy
    from hffm.run import make_fabric, make_world

    cfg = compose([*overrides, f"federation.rounds={rounds}", f"federation.eval_every={rounds}"])
    world, policy = make_world(cfg), tier_policy(cfg.federation)
    err: dict[str, list[float]] = {c: [] for c in codecs}
    wire: dict[str, int] = dict.fromkeys(codecs, 0)
    raw = [0]
    # per module kind: summed squared error, summed squared delta, wire bytes, raw bytes (is low-rank worth it where?)
    kinds: dict[str, dict[str, list[float]]] = {}
    # error feedback: each device keeps its residual from send to send (as the loop does), and the figure is the
    # relative squared error of what the edge has decoded from the device so far against the device's true
    # updates: ||sum decoded - sum delta||^2 / ||sum delta||^2 after its n-th send (n = 1: the one-send figure)
    feedback = [(f"{c}_momentum{mom:g}", c, dataclasses.replace(Codebook(c).options, momentum=mom))
                for c in codecs if CODECS[c].error_feedback for mom in (FEEDBACK_MOMENTUM if c == "topk" else (0.0,))]
    carried: dict[tuple[str, int, str], Any] = {}
    sums: dict[tuple[str, int, str], dict[str, list[Any]]] = {}
    sends: dict[tuple[str, int], int] = {}
    ef_err: dict[str, dict[int, list[float]]] = {label: {} for label, _, _ in feedback}

    def carry(job, res, shared) -> None:  # noqa: ANN001
        for label, c, options in feedback:
            for m in shared:
                key = (label, job.device, m)
                sent = send_module(res.states[m], job.states[m], CODECS[c], options, residual=carried.get(key))
                carried[key] = sent.residual
                acc = sums.setdefault(key, {})
                for k, v in res.states[m].items():
                    if not v.is_floating_point():
                        continue
                    base = job.states[m][k].float()
                    pair = acc.setdefault(k, [torch.zeros_like(base), torch.zeros_like(base)])
                    pair[0] += v.float() - base
                    pair[1] += sent.state[k].float() - base
            n = sends[(label, job.device)] = sends.get((label, job.device), 0) + 1
            mine = [p for (lab, dev, _), acc in sums.items() if lab == label and dev == job.device
                    for p in acc.values()]
            err = sum(float(((got - true) ** 2).sum()) for true, got in mine)
            norm = sum(float((true ** 2).sum()) for true, _ in mine)
            if norm > 0:
                ef_err[label].setdefault(n, []).append(err / norm)

    def capture(fabric, bank, jobs, local):  # noqa: ANN001, ANN202 - the Trainer signature
        results = train_devices(fabric, bank, jobs, local)
        for job, res in zip(jobs, results, strict=True):
            shared = [m for m in res.states if policy.shared(bank.kind(m))]
            if not shared:
                continue
            carry(job, res, shared)
            norm = sum(float(((res.states[m][k].float() - job.states[m][k].float()) ** 2).sum())
                       for m in shared for k in res.states[m] if res.states[m][k].is_floating_point())
            if norm == 0:
                continue
            raw[0] += sum(world.module_bytes[m] for m in shared)
            for c in codecs:
                book = Codebook(c)
                lost = 0.0
                for m in shared:
                    sent = send_module(res.states[m], job.states[m], CODECS[c], book.options)
                    here = sum(float(((sent.state[k].float() - res.states[m][k].float()) ** 2).sum())
                               for k in sent.state if sent.state[k].is_floating_point())
                    size = state_wire_bytes(res.states[m], CODECS[c], book.options)
                    lost, wire[c] = lost + here, wire[c] + size
                    delta = sum(float(((res.states[m][k].float() - job.states[m][k].float()) ** 2).sum())
                                for k in res.states[m] if res.states[m][k].is_floating_point())
                    row = kinds.setdefault(bank.kind(m), {}).setdefault(c, [0.0, 0.0, 0.0, 0.0])
                    row[0] += here
                    row[1] += delta
                    row[2] += size
                    row[3] += world.module_bytes[m]
                err[c].append(lost / norm)
        return results

    torch.manual_seed(0)
    run_federation(make_fabric(cfg), world, cfg, trainer=capture)
    return {"rounds": rounds, "updates": len(err[codecs[0]]),
            "distortion": {c: sum(v) / len(v) for c, v in err.items()},
            "distortion_max": {c: max(v) for c, v in err.items()},
            "bytes_factor": {c: wire[c] / raw[0] for c in codecs},
            "distortion_feedback": {label: {str(n): sum(v) / len(v) for n, v in sorted(by_n.items())}
                                    for label, by_n in ef_err.items()},
            "feedback_devices": {label: {str(n): len(v) for n, v in sorted(by_n.items())}
                                 for label, by_n in ef_err.items()},
            "by_kind": {k: {c: {"distortion": v[0] / v[1] if v[1] else 0.0, "bytes_factor": v[2] / v[3]}
                            for c, v in rows.items()} for k, rows in sorted(kinds.items())}}


def run_one(name: str, overrides: Sequence[str], cache: Path) -> dict[str, Any]:
    from code_version import CODE_PATHS, code_hash, commit

    from hffm.run import train

    path = cache / f"{name}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved["overrides"] == list(overrides) and saved.get("code") == code_hash():  # a default may have moved
            return saved
    cfg = compose(overrides)
    wall, cpu = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, tmp)
    history = result.history
    record = {
        "name": name, "overrides": list(overrides), "rounds": len(history),
        "final": {k: history[-1].get(k) for k in KEEP},
        "uplink_bytes": float(sum(h["cost/bytes/uplink"] for h in history)),
        "compressed_devices": float(sum(h.get("plan/compressed_devices", 0.0) for h in history)),
        "fallbacks": float(sum(h.get("plan/fallback", 0.0) for h in history)),
        "wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu,
        "commit": commit(CODE_PATHS), "code": code_hash(), "load_avg": list(os.getloadavg()),
    }
    path.write_text(json.dumps(record, indent=1))
    return record


def table(records: dict[str, dict[str, Any]], dist: dict[str, Any]) -> str:
    base = records["none"]
    lines = ["| level | accuracy (%) | change (points) | total latency (s) | total energy (J) | uplink bytes "
             "(MB) | uplink cut | devices compressed (device-rounds) |", "|" + " --- |" * 8]
    for name, r in records.items():
        acc, lat, en = (r["final"][k] for k in KEEP)
        lines.append(f"| {name} | {100 * acc:.2f} | {100 * (acc - base['final']['accuracy']):+.2f} | {lat:.2f} | "
                     f"{en:.1f} | {r['uplink_bytes'] / 1e6:.3f} | {base['uplink_bytes'] / r['uplink_bytes']:.2f}x | "
                     f"{r['compressed_devices']:.0f} |")
    lines += ["", "Distortion per codec (mean relative squared error of one device update, measured on "
              f"{dist['updates']} real updates of {dist['rounds']} rounds) and bytes factor:", "",
              "| codec | distortion | worst | bytes factor |", "| --- | --- | --- | --- |"]
    for c, v in dist["distortion"].items():
        lines.append(f"| {c} | {v:.3g} | {dist['distortion_max'][c]:.3g} | {dist['bytes_factor'][c]:.3f} |")
    if "by_kind" in dist:
        codecs = list(dist["distortion"])
        lines += ["", "Per module kind (distortion / bytes factor, summed over the kind's updates):", "",
                  "| kind | " + " | ".join(codecs) + " |", "| --- |" + " --- |" * len(codecs)]
        for kind, rows in dist["by_kind"].items():
            lines.append(f"| {kind} | " + " | ".join(f"{rows[c]['distortion']:.3g} / {rows[c]['bytes_factor']:.3f}"
                                                     for c in codecs) + " |")
    return "\n".join(lines) + "\n"


def combine(dirs: Sequence[Path]) -> str:
    """Mean (and range) over the seeds' results.json: the docs table."""
    import numpy as np

    runs = [json.loads((d / "results.json").read_text())["runs"] for d in dirs]
    seeds = [json.loads((d / "results.json").read_text())["base"] for d in dirs]
    names = list(runs[0])
    base_acc = np.array([r["none"]["final"]["accuracy"] for r in runs])
    base_up = np.array([r["none"]["uplink_bytes"] for r in runs])
    lines = [f"Mean over {len(dirs)} seeds ({', '.join(next(x for x in b if x.startswith('seed=')) for b in seeds)}); "
             "change: per seed against that seed's `none`, then the mean [min, max].", "",
             "| level | accuracy (%) | change (points) | total latency (s) | total energy (J) | uplink cut |",
             "| --- | --- | --- | --- | --- | --- |"]
    for n in names:
        acc = np.array([r[n]["final"]["accuracy"] for r in runs])
        ch = 100 * (acc - base_acc)
        lat = np.mean([r[n]["final"]["cost/cum_latency_s"] for r in runs])
        en = np.mean([r[n]["final"]["cost/cum_energy_j"] for r in runs])
        cut = np.mean(base_up / np.array([r[n]["uplink_bytes"] for r in runs]))
        lines.append(f"| {n} | {100 * acc.mean():.2f} | {ch.mean():+.2f} [{ch.min():+.2f}, {ch.max():+.2f}] | "
                     f"{lat:.2f} | {en:.1f} | {cut:.2f}x |")
    return "\n".join(lines) + "\n"


def plot(records: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, label in ((axes[0], "cost/cum_latency_s", "total latency (s)"),
                           (axes[1], "cost/cum_energy_j", "total energy (J)")):
        for name, r in records.items():
            ax.scatter(r["final"][key], 100 * r["final"]["accuracy"], label=name)
            ax.annotate(name, (r["final"][key], 100 * r["final"]["accuracy"]), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="4 devices, tiny data: a smoke run")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--measure-rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--levels", nargs="+", default=list(LEVELS))
    ap.add_argument("--budget", type=float, default=0.05, help="auto's mean distortion budget per round")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every run")
    ap.add_argument("--measure-only", action="store_true", help="measure the distortions, skip the runs")
    ap.add_argument("--combine", nargs="+", type=Path, help="write --out/combined.md from these study folders")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.combine:
        (args.out / "combined.md").write_text(combine(args.combine))
        print(combine(args.combine))
        return
    (args.out / "runs").mkdir(exist_ok=True)
    base = [*BASE, *(QUICK if args.quick else []), f"seed={args.seed}", *args.set]
    dist_path = args.out / "distortion.json"
    if dist_path.exists():
        dist = json.loads(dist_path.read_text())
    else:
        wall, cpu = time.perf_counter(), cpu_seconds()
        dist = measure(base, args.measure_rounds, ["fp16", "bf16", "int8", "int8_channel", "topk", "lowrank"])
        dist |= {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}
        dist_path.write_text(json.dumps(dist, indent=1))
    if args.measure_only:
        print(json.dumps(dist, indent=1))
        return
    measured = [f"federation.compression_distortion.{c}={v:.6g}" for c, v in dist["distortion"].items()]
    runs = {}
    for level in args.levels:
        extra = [f"federation.compression={level}", f"federation.rounds={args.rounds}",
                 f"federation.eval_every={args.rounds}"]
        if level == "auto":
            extra += [*measured, f"federation.compression_budget={args.budget}"]
        runs[level] = run_one(level, [*base, *extra], args.out / "runs")
        r = runs[level]
        print(f"{level}: accuracy {r['final']['accuracy']:.4f}, latency {r['final']['cost/cum_latency_s']:.2f} s, "
              f"energy {r['final']['cost/cum_energy_j']:.1f} J, {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU",
              flush=True)
    machine = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus_note": "2-core CPU container, "
               "shared with other jobs (wall times swing with load; CPU seconds are this process's)",
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    from code_version import commit

    machine["load_avg"] = list(os.getloadavg())
    (args.out / "results.json").write_text(json.dumps({"commit": commit(), "base": base, "machine": machine,
                                                       "distortion": dist,
                                                       "runs": runs, "budget": args.budget}, indent=1))
    (args.out / "table.md").write_text(table(runs, dist))
    plot(runs, args.out / "front.png")
    print(table(runs, dist))


if __name__ == "__main__":
    main()
