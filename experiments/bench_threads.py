"""Do 2 threads hurt on a busy machine? Training and evaluation with 1 and 2 threads beside busy processes.

Two ways to spend 2 threads: ``passes`` (hffm's engine now, `hffm/engine/workers.py`: each thread runs whole
evaluation passes or training waves with one torch intra-op thread) and ``intra-op`` (the engine before: torch
splits every operation over both threads, and each operation waits at a barrier for the slower one). Idle
OpenMP threads sleep in both (``OMP_WAIT_POLICY=PASSIVE``, set by ``import hffm``); ``--policy default``
runs libgomp's spin-then-sleep instead (the failure `hffm/openmp.py` fixed: a case can take many minutes).

Each case is a fresh process: it builds the scale benchmark's world (``tiny`` model) and times ``--repeats``
calls of one job: ``train`` (a star round's training jobs of ``--train-devices`` devices, packed) or ``eval``
(one evaluation round of every tier of ``--eval-devices`` devices, as experiments/bench_eval.py). The best
wall and CPU seconds (the worker process, all threads) are kept. ``--load N`` starts N busy-looping processes
beside every case (the machine's other jobs, made reproducible); the machine's own load average is recorded
before each case. The cases run one after another, the 1-thread case of a job first.

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
MODES = ("passes", "intra-op")
"""How 2 threads are spent: whole passes a thread (the engine now) or every operation split (the engine before)."""


def spin(stop_at: float) -> None:
    """A busy loop: one process of the machine's other load."""
    x = 0
    while time.time() < stop_at:
        x += 1


def worker(job: str, devices: int, threads: int, mode: str, repeats: int) -> dict[str, Any]:
    """In a fresh process: build the world, time ``repeats`` calls of the job."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    import hffm.engine.batched as batched
    import hffm.engine.packed_eval as packed_eval

    if mode == "intra-op":  # the engine before workers.py: one unit at a time, torch's threads split each op
        batched.pass_workers = packed_eval.pass_workers = lambda device: 1
    torch.set_num_threads(threads)
    runs = _train_runs(devices, repeats) if job == "train" else _eval_runs(devices, repeats)
    return {"wall_s": min(w for w, _ in runs), "cpu_s": min(c for _, c in runs), "all": runs,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "threads": torch.get_num_threads()}


def _clock(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _train_runs(devices: int, repeats: int) -> list[tuple[float, float]]:
    from bench_engine import collect_jobs
    from lightning.fabric import Fabric
    from scale_bench import bench_config

    from hffm.engine import train_devices
    from hffm.run import make_world

    cfg = bench_config(devices, 1).replace(federation={"mode": "star", "rounds": 1, "batched": True}, seed=0)
    fabric = Fabric(accelerator="cpu", devices=1)
    _, bank, jobs, local = collect_jobs(fabric, make_world(cfg), cfg)
    return [_clock(lambda: train_devices(fabric, bank, jobs, local)) for _ in range(repeats)]


def _eval_runs(devices: int, repeats: int) -> list[tuple[float, float]]:
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
    return [_clock(lambda: evaluate_round(fabric, world, state, cfg.federation, policy, group_of))
            for _ in range(repeats)]


def run_case(job: str, threads: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
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
        done = subprocess.run([sys.executable, __file__, "--worker", job, "--threads-now", str(threads), "--mode", mode,
                               "--devices-now", str(devices), "--repeats", str(args.repeats)],
                              env=env, capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
                              timeout=args.case_timeout)
        result = json.loads(done.stdout.strip().splitlines()[-1]) | {"process_s": time.perf_counter() - tic}
    except subprocess.TimeoutExpired:  # a result too: this case ran more than case_timeout seconds
        result = {"timed_out": True, "process_s": time.perf_counter() - tic, "threads": threads}
    finally:
        for p in load:
            p.terminate()
            p.join()
    case = {"job": job, "devices": devices, "mode": mode if threads > 1 else "one thread", "threads_asked": threads,
            "policy": args.policy, "load_processes": args.load, "load_before": before, **result}
    print(json.dumps(case), flush=True)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", nargs="+", default=["train", "eval"], choices=["train", "eval"])
    parser.add_argument("--train-devices", type=int, default=100)
    parser.add_argument("--eval-devices", type=int, default=1000)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="how 2 threads are spent")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, default=2, help="busy-looping processes beside each case")
    parser.add_argument("--policy", default="passive", choices=list(POLICIES), help="OMP_WAIT_POLICY of the cases")
    parser.add_argument("--case-timeout", type=float, default=600,
                        help="stop a case (its whole worker process: world, jobs, timings) after this many seconds")
    parser.add_argument("--worker", choices=["train", "eval"], help=argparse.SUPPRESS)
    parser.add_argument("--threads-now", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--devices-now", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="passes", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help="suffix of the result file's name")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.devices_now, args.threads_now, args.mode, args.repeats)))
        return
    from scale_bench import MACHINE, engine_version

    cases = []
    for job in args.jobs:
        cases.append(run_case(job, 1, "passes", args))
        cases += [run_case(job, 2, mode, args) for mode in args.modes]
    print(f"OMP_WAIT_POLICY {args.policy}, {args.load} busy processes beside each case:")
    ratios: dict[str, dict[str, float]] = {}
    for job in args.jobs:
        one = next(c for c in cases if c["job"] == job and c["threads_asked"] == 1)
        for c in (c for c in cases if c["job"] == job):
            took = (f"did not finish in {args.case_timeout:.0f} s" if c.get("timed_out") else
                    f"wall {c['wall_s']:.2f} s, CPU {c['cpu_s']:.2f} s")
            ratio = c.get("wall_s", float("inf")) / one.get("wall_s", float("inf"))
            if c["threads_asked"] > 1:
                ratios.setdefault(job, {})[c["mode"]] = ratio
            print(f"  {job} ({c['devices']} devices), {c['threads_asked']} thread(s), {c['mode']}: {took}"
                  + (f" -> {ratio:.2f}x one thread's wall" if c["threads_asked"] > 1 else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"load{args.load}_{args.policy}{'_' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps({"machine": MACHINE, "cpus": os.cpu_count(), "engine": engine_version(),
                                "repeats": args.repeats, "wall_2_over_1": ratios, "cases": cases}, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
