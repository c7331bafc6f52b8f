"""Do 2 threads hurt on a busy machine? Training and evaluation with 1 and 2 threads beside busy processes.

Two ways to spend 2 threads: ``passes`` (hffm's engine now, `hffm/engine/workers.py`: each thread runs whole
evaluation passes or training waves with one torch intra-op thread) and ``intra-op`` (the engine before: torch
splits every operation over both threads, and each operation waits at a barrier for the slower one). Idle
OpenMP threads sleep in both (``OMP_WAIT_POLICY=PASSIVE``, set by ``import hffm``); ``--policy default``
runs libgomp's spin-then-sleep instead (the failure `hffm/openmp.py` fixed: a case can take many minutes).

Each job is a fresh process: it builds the scale benchmark's world (``tiny`` model), then times
``train`` (a star round's training jobs of ``--train-devices`` devices, packed) or ``eval`` (one evaluation
round of every tier of ``--eval-devices`` devices, as experiments/bench_eval.py) in each case: one thread,
2 threads as passes, 2 threads intra-op, interleaved repeat by repeat (``--repeats``), so a drift in the
machine's load reaches every case alike. The best wall and CPU seconds (the process, all threads) are kept.
``--load N`` starts N busy-looping processes beside every job (the machine's other jobs, made reproducible);
the machine's load average is recorded before and after each job.

Usage:
    .venv/bin/python experiments/bench_threads.py --load 2
    .venv/bin/python experiments/bench_threads.py --load 0 --jobs eval
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
"""The OpenMP wait policy: libgomp's default (spin, then sleep) or PASSIVE (sleep at once; hffm's default)."""


def spin(stop_at: float) -> None:
    """A busy loop: one process of the machine's other load."""
    x = 0
    while time.time() < stop_at:
        x += 1


CASES = {"one thread": (1, "passes"), "passes": (2, "passes"), "intra-op": (2, "intra-op")}
"""A case: (torch threads, how 2 threads are spent)."""


def worker(job: str, devices: int, cases: list[str], repeats: int) -> dict[str, Any]:
    """In a fresh process: build the world, then time the job in every case, the cases interleaved repeat by
    repeat (the machine's load drifts: each case sees the same drift)."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    import hffm.engine.batched as batched
    import hffm.engine.packed_eval as packed_eval
    from hffm.engine import workers

    call = _train_call(devices) if job == "train" else _eval_call(devices)
    runs: dict[str, list[tuple[float, float]]] = {c: [] for c in cases}
    for _ in range(repeats):
        for case in cases:
            threads, mode = CASES[case]
            # intra-op: the engine before workers.py, one unit at a time while torch's threads split each op
            batched.pass_workers = packed_eval.pass_workers = (
                (lambda device: 1) if mode == "intra-op" else workers.pass_workers)
            torch.set_num_threads(threads)
            runs[case].append(_clock(call))
    return {case: {"wall_s": min(w for w, _ in r), "cpu_s": min(c for _, c in r), "all": r} for case, r in runs.items()
            } | {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def _clock(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _train_call(devices: int):
    from bench_engine import collect_jobs
    from lightning.fabric import Fabric
    from scale_bench import bench_config

    from hffm.engine import train_devices
    from hffm.run import make_world

    cfg = bench_config(devices, 1).replace(federation={"mode": "star", "rounds": 1, "batched": True}, seed=0)
    fabric = Fabric(accelerator="cpu", devices=1)
    _, bank, jobs, local = collect_jobs(fabric, make_world(cfg), cfg)
    return lambda: train_devices(fabric, bank, jobs, local)


def _eval_call(devices: int):
    from bench_eval import trained_like
    from scale_bench import bench_config

    from hffm.federation.evaluation import evaluate_round
    from hffm.federation.loop import initial_state, tier_policy
    from hffm.run import make_fabric, make_world

    cfg = bench_config(devices, 1, seed=0)
    fabric, world = make_fabric(cfg), make_world(cfg)
    policy = tier_policy(cfg.federation)
    group_of = policy.group_of(world.topology.device_edge)
    state = initial_state(world, policy)
    trained_like(state, 0)
    return lambda: evaluate_round(fabric, world, state, cfg.federation, policy, group_of)


def run_job(job: str, args: argparse.Namespace) -> dict[str, Any]:
    """One worker process for the job, beside ``--load`` busy processes."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["HFFM_KEEP_OMP_WAIT_POLICY"] = "1"  # hffm must not set its default: the case sets the policy
    if POLICIES[args.policy] is not None:
        env["OMP_WAIT_POLICY"] = POLICIES[args.policy]
    devices = args.train_devices if job == "train" else args.eval_devices
    before = [round(x, 2) for x in os.getloadavg()]
    stop_at = time.time() + 3600
    load = [mp.Process(target=spin, args=(stop_at,), daemon=True) for _ in range(args.load)]
    for p in load:
        p.start()
    tic = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, __file__, "--worker", job, "--devices-now", str(devices),
                               "--cases", *args.cases, "--repeats", str(args.repeats)],
                              env=env, capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
                              timeout=args.case_timeout)
        result = json.loads(done.stdout.strip().splitlines()[-1]) | {"process_s": time.perf_counter() - tic}
    except subprocess.TimeoutExpired:  # a result too: the job ran more than case_timeout seconds
        result = {"timed_out": True, "process_s": time.perf_counter() - tic}
    finally:
        for p in load:
            p.terminate()
            p.join()
    out = {"job": job, "devices": devices, "policy": args.policy, "load_processes": args.load, "load_before": before,
           "load_after": [round(x, 2) for x in os.getloadavg()], **result}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", nargs="+", default=["train", "eval"], choices=["train", "eval"])
    parser.add_argument("--train-devices", type=int, default=100)
    parser.add_argument("--eval-devices", type=int, default=1000)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, default=2, help="busy-looping processes beside each job")
    parser.add_argument("--policy", default="passive", choices=list(POLICIES), help="OMP_WAIT_POLICY of the jobs")
    parser.add_argument("--case-timeout", type=float, default=1200,
                        help="stop a job (its whole worker process: world, every case) after this many seconds")
    parser.add_argument("--worker", choices=["train", "eval"], help=argparse.SUPPRESS)
    parser.add_argument("--devices-now", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help="suffix of the result file's name")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.devices_now, args.cases, args.repeats)))
        return
    from scale_bench import MACHINE, engine_version

    engine = engine_version()
    results = [run_job(job, args) for job in args.jobs]
    print(f"OMP_WAIT_POLICY {args.policy}, {args.load} busy processes beside each job, best of {args.repeats}:")
    ratios: dict[str, dict[str, float]] = {}
    for r in results:
        if r.get("timed_out"):
            print(f"  {r['job']}: did not finish in {args.case_timeout:.0f} s")
            continue
        one = r["one thread"]["wall_s"] if "one thread" in r else float("nan")
        for case in args.cases:
            c = r[case]
            ratios.setdefault(r["job"], {})[case] = c["wall_s"] / one
            print(f"  {r['job']} ({r['devices']} devices), {case}: wall {c['wall_s']:.2f} s, CPU {c['cpu_s']:.2f} s"
                  f" -> {c['wall_s'] / one:.2f}x one thread's wall")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"load{args.load}_{args.policy}{'_' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps({"machine": MACHINE, "cpus": os.cpu_count(), "engine": engine, "repeats": args.repeats,
                                "cases": {c: CASES[c] for c in args.cases}, "wall_over_one_thread": ratios,
                                "jobs": results}, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
