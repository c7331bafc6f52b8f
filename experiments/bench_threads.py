"""Do 2 torch threads hurt on a busy machine? Batched training with 1 and 2 threads, OpenMP spinning or not.

torch's CPU wheel runs its intra-op threads on GNU OpenMP, whose idle threads spin (busy-wait) before they
sleep. On a machine whose cores are taken by other processes, a spinning thread takes the core from the
thread that has work, and a 2-thread run can end slower than a 1-thread one. ``OMP_WAIT_POLICY=PASSIVE``
makes idle threads sleep at once; libgomp reads it when torch is imported, so ``hffm`` sets it (unless the
environment already does) before it imports torch, and each case here runs in a fresh process.

Per case (wait policy: libgomp's default or PASSIVE; 1 or 2 threads), a worker process builds the scale
benchmark's world (``--devices``, ``tiny`` model), collects a star round's training jobs and times
``train_devices`` (batched) ``--repeats`` times: the best wall and CPU seconds. ``--load N`` runs N
busy-looping processes beside every case (the machine's other jobs, made reproducible); ``--load 0``
measures the machine as it is. The cases run one after another; the machine's load average is recorded.

Usage:
    .venv/bin/python experiments/bench_threads.py --load 2
    .venv/bin/python experiments/bench_threads.py --load 0 --devices 40
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results" / "bench_threads"
POLICIES = {"default": None, "passive": "PASSIVE"}
"""The OpenMP wait policy of a case: libgomp's default (spin, then sleep) or PASSIVE (sleep at once)."""


def spin(stop_at: float) -> None:
    """A busy loop: one process of the machine's other load."""
    x = 0
    while time.time() < stop_at:
        x += 1


def worker(devices: int, threads: int, repeats: int) -> dict[str, Any]:
    """In a fresh process: build the world, time batched training of one round's jobs."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    from bench_engine import collect_jobs, timed
    from lightning.fabric import Fabric
    from scale_bench import bench_config

    from hffm.run import make_world

    torch.set_num_threads(threads)
    cfg = bench_config(devices, 1).replace(federation={"mode": "star", "rounds": 1, "batched": True}, seed=0)
    fabric = Fabric(accelerator="cpu", devices=1)
    _, bank, jobs, local = collect_jobs(fabric, make_world(cfg), cfg)
    runs = [timed(fabric, bank, jobs, local, True) for _ in range(repeats)]
    return {"wall_s": min(w for w, _ in runs), "cpu_s": min(c for _, c in runs), "all": runs,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "threads": torch.get_num_threads()}


def run_case(policy: str, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["HFFM_KEEP_OMP_WAIT_POLICY"] = "1"  # hffm must not set its default: the case sets the policy
    if POLICIES[policy] is not None:
        env["OMP_WAIT_POLICY"] = POLICIES[policy]
    stop_at = time.time() + 3600
    load = [mp.Process(target=spin, args=(stop_at,), daemon=True) for _ in range(args.load)]
    for p in load:
        p.start()
    try:
        before = [round(x, 2) for x in os.getloadavg()]
        tic = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--worker", str(threads), "--devices", str(args.devices),
                               "--repeats", str(args.repeats)], env=env, capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent, timeout=args.case_timeout)
        result = json.loads(done.stdout.strip().splitlines()[-1]) | {"process_s": time.perf_counter() - tic}
    except subprocess.TimeoutExpired:  # a result too: this case ran more than case_timeout seconds
        result = {"timed_out": True, "process_s": time.perf_counter() - tic, "threads": threads}
    finally:
        for p in load:
            p.terminate()
            p.join()
    case = {"policy": policy, "threads_asked": threads, "load_processes": args.load, "load_before": before, **result}
    print(json.dumps(case), flush=True)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, default=2, help="busy-looping processes beside each case")
    parser.add_argument("--case-timeout", type=float, default=600,
                        help="stop a case (its whole worker process: world, round, timings) after this many seconds")
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.devices, args.worker, args.repeats)))
        return
    from scale_bench import MACHINE, engine_version

    cases = [run_case(policy, threads, args) for policy in POLICIES for threads in (1, 2)]
    for c in cases:
        took = (f"did not finish in {args.case_timeout:.0f} s" if c.get("timed_out") else
                f"wall {c['wall_s']:.2f} s, CPU {c['cpu_s']:.2f} s")
        print(f"OMP_WAIT_POLICY {c['policy']:>7}, {c['threads']} thread(s), {c['load_processes']} load: {took}")
    by = {(c["policy"], c["threads"]): c for c in cases}
    ratios = {p: (by[(p, 2)].get("wall_s", float("inf")) / by[(p, 1)].get("wall_s", float("inf")))
              for p in POLICIES}
    for p, r in ratios.items():
        print(f"{p}: 2 threads take {r:.2f}x the wall time of 1")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"load{args.load}_{args.devices}.json"
    path.write_text(json.dumps({"machine": MACHINE, "engine": engine_version(), "devices": args.devices,
                                "repeats": args.repeats, "wall_2_over_1": ratios, "cases": cases}, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
