"""Seconds of one evaluation round (every tier) of the scale benchmark's world, wall and CPU.

Builds the scale benchmark's hierarchical world (``tiny`` model, 20 samples a device; at 1,000 devices:
64 sampled devices, 16 sampled edges, a 2,000-sample global sample), gives every edge its own module
versions (the initial state plus seeded noise, so no two edges hold the same weights, as after training),
then times ``evaluate_round`` ``--repeats`` times per thread count and reports the best of each, wall and
CPU seconds (this process, all its threads), with the load average before and after and the commit.

It also counts the work (jobs and sample-forwards per tier) and keeps the metrics, so two runs can be
compared: ``--compare OLD.json`` prints the largest difference of any metric (results must not change
beyond float noise when only the engine changed). ``--set key=value`` overrides a ``federation`` field
(e.g. ``--set eval_device_samples=256``).

Usage:
    .venv/bin/python experiments/bench_eval.py --devices 1000 --threads 1 2 --repeats 2
    .venv/bin/python experiments/bench_eval.py --devices 100 --compare experiments/results/bench_eval/cpu_100.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import hffm  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE; with spinning threads, 2 threads took 7x 1's CPU)

# isort: split
import numpy as np
import torch
from scale_bench import MACHINE, bench_config, engine_version

from hffm.engine.batched_eval import evaluate_jobs
from hffm.federation.evaluation import evaluate_round, evaluation_jobs
from hffm.federation.loop import initial_state, tier_policy
from hffm.run import make_fabric, make_world

OUT = Path(__file__).resolve().parent / "results" / "bench_eval"


def trained_like(state, seed: int, scale: float = 0.02) -> None:
    """Give every edge group its own weights: add seeded noise to each group's copy (in place)."""
    gen = torch.Generator().manual_seed(seed)
    for group in state.group_states:
        for tensors in group.values():
            for t in tensors.values():
                if t.is_floating_point():
                    t.add_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * scale)


def work(jobs) -> dict[str, int]:
    """Jobs and sample-forwards (samples each job's model runs on) per tier."""
    out: dict[str, int] = {}
    for tier, tier_jobs in jobs.items():
        out[f"{tier}_jobs"] = len(tier_jobs)
        out[f"{tier}_samples"] = sum(_samples(j) for j in tier_jobs)
    return out


def _samples(job) -> int:
    if not job.restrict:
        return len(job.data)
    keep = np.zeros(len(job.data), dtype=bool)
    for m in job.modalities:
        keep |= job.data.present[m].numpy().astype(bool)
    return int(keep.sum())


def tier_seconds(fabric, world, jobs, fed) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds of each tier's jobs evaluated alone (their passes, as the round groups them)."""
    out = {}
    for tier, tier_jobs in jobs.tiers().items():
        wall, cpu = time.perf_counter(), time.process_time()
        evaluate_jobs(fabric, world.bank, tier_jobs, fed.batched, fed.max_batch_devices)
        out[tier] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    return out


def bench(devices: int, threads: list[int], repeats: int, overrides: dict[str, Any], seed: int,
          tiers: bool = False) -> dict[str, Any]:
    cfg = bench_config(devices, 1, seed=seed)
    cfg = cfg.replace(federation=overrides)
    fabric = make_fabric(cfg)
    tic = time.perf_counter()
    world = make_world(cfg)
    build_s = time.perf_counter() - tic
    policy = tier_policy(cfg.federation)
    group_of = policy.group_of(world.topology.device_edge)
    state = initial_state(world, policy)
    trained_like(state, seed)
    jobs = evaluation_jobs(world, state, cfg.federation, policy, group_of, fabric)
    out: dict[str, Any] = {
        "machine": MACHINE, "cpus": os.cpu_count(), "engine": engine_version(), "torch": torch.__version__,
        "python": platform.python_version(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "devices": world.num_devices, "model": "tiny",
        "federation_overrides": overrides, "eval_samples": cfg.federation.eval_samples,
        "eval_devices": len(world.eval_devices), "eval_edges": len(world.eval_edges),
        "world_build_s": build_s, **work(jobs.tiers()), "runs": {},
    }
    metrics: dict[str, float] = {}
    for n in threads:
        torch.set_num_threads(n)
        runs = []
        for _ in range(repeats):
            load = [round(x, 2) for x in os.getloadavg()]
            wall, cpu = time.perf_counter(), time.process_time()
            metrics = evaluate_round(fabric, world, state, cfg.federation, policy, group_of)
            runs.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                         "load_before": load, "load_after": [round(x, 2) for x in os.getloadavg()]})
        out["runs"][str(n)] = {"best_wall_s": min(r["wall_s"] for r in runs),
                               "best_cpu_s": min(r["cpu_s"] for r in runs), "all": runs}
    out["metrics"] = metrics
    if tiers:  # on the last thread count
        out["tier_seconds"] = tier_seconds(fabric, world, jobs, cfg.federation)
    return out


def compare(new: dict[str, float], old_path: Path) -> str:
    old = json.loads(old_path.read_text())["metrics"]
    shared = sorted(set(new) & set(old))
    if not shared:
        return f"no metric in common with {old_path}"
    diff = {k: abs(new[k] - old[k]) for k in shared}
    worst = max(diff, key=diff.__getitem__)
    only = sorted(set(new) ^ set(old))
    return (f"{len(shared)} metrics in common with {old_path}: largest |difference| {diff[worst]:.3g} ({worst})"
            + (f"; in one run only: {only[:6]}" if only else ""))


def parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: write key=value (a federation field, e.g. eval_device_samples=256)")
        out[key] = json.loads(value) if value[:1] in "-0123456789tfn[{" else value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], help="federation overrides, key=value")
    parser.add_argument("--compare", type=Path, help="an earlier result file: print the largest metric difference")
    parser.add_argument("--tiers", action="store_true", help="also time each tier's jobs alone (last thread count)")
    parser.add_argument("--tag", default="", help="suffix of the result file's name")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    result = bench(args.devices, args.threads, args.repeats, parse_set(args.set), args.seed, args.tiers)
    tiers = ", ".join(f"{t}: {result[f'{t}_jobs']} jobs, {result[f'{t}_samples']} samples"
                      for t in ("device", "global", "edge"))
    print(f"{result['devices']} devices ({tiers}); engine {result['engine']}")
    for n, r in result["runs"].items():
        loads = [run["load_before"][0] for run in r["all"]]
        print(f"  {n} thread(s): best wall {r['best_wall_s']:.2f} s, best CPU {r['best_cpu_s']:.2f} s "
              f"(load before each run {loads})")
    for tier, r in result.get("tier_seconds", {}).items():
        print(f"  {tier} tier alone: wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s")
    if args.compare:
        print("  " + compare(result["metrics"], args.compare))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cpu_{result['devices']}{'_' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
