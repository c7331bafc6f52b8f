"""Where a round's time goes: batched local training of the bench world, or a whole preset round.

``--devices N`` (default): builds experiments/bench_overhead.py's world (``tiny`` model, star mode),
runs one round to collect its training jobs, then times batched and sequential training of those jobs
(wall and CPU seconds, interleaved) and prints torch.profiler's table of one batched training call (top
operators by their own CPU time). ``--preset NAME``: one round of an experiment preset under cProfile
(training, planning and the evaluation of every tier), top functions by cumulative time.

Usage:
    .venv/bin/python experiments/profile_batched.py --devices 100 --threads 1
    .venv/bin/python experiments/profile_batched.py --devices 100 --threads 1 --packed
    .venv/bin/python experiments/profile_batched.py --preset star
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import time
import warnings

import hffm  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE, which libgomp reads when torch loads)

# isort: split
import torch
from lightning.fabric import Fabric
from scale_bench import bench_config

from hffm.engine import train_devices
from hffm.federation.loop import run_federation
from hffm.run import make_world


def collect_jobs(world, cfg) -> tuple:
    """Run one round of ``cfg`` and return the arguments its trainer's first call got (through the loop's seam)."""
    calls: list[tuple] = []

    def spy(*args):
        calls.append(args)
        return train_devices(*args)

    run_federation(Fabric(accelerator="cpu", devices=1), world, cfg, loggers=[], trainer=spy)
    return calls[0]


def profile_training(devices: int, threads: int, repeats: int, packed: bool = False) -> None:
    torch.set_num_threads(threads)
    cfg = bench_config(devices, 1)
    world = make_world(cfg)
    star = cfg.replace(federation={"mode": "star", "rounds": 1, "batched": True}, seed=0)
    fabric, bank, jobs, local = collect_jobs(world, star)

    def run(on: bool) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        train_devices(fabric, bank, jobs, dataclasses.replace(local, batched=on, packed=packed))
        return time.perf_counter() - wall, time.process_time() - cpu

    times: dict[str, list[tuple[float, float]]] = {"batched": [], "sequential": []}
    for _ in range(repeats):
        times["batched"].append(run(True))
        times["sequential"].append(run(False))
    for name, t in times.items():
        print(f"{name}: wall min {min(w for w, _ in t):.2f} s, CPU min {min(c for _, c in t):.2f} s")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run(True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))


def profile_preset(name: str) -> None:
    from hffm.config import compose

    cfg = compose(f"experiment={name}", "federation.rounds=1", "threads=1", "progress=none", "plots=false",
                  "logger=none")
    torch.set_num_threads(1)
    world = make_world(cfg)
    profiler = cProfile.Profile()
    cpu = time.process_time()
    profiler.enable()
    run_federation(Fabric(accelerator="cpu", devices=1), world, dataclasses.replace(cfg, seed=0), loggers=[])
    profiler.disable()
    print(f"round CPU {time.process_time() - cpu:.1f} s")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--preset", default=None)
    parser.add_argument("--packed", action="store_true", help="profile the packed passes (federation.packed)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.preset:
        profile_preset(args.preset)
    else:
        profile_training(args.devices, args.threads, args.repeats, args.packed)


if __name__ == "__main__":
    main()
