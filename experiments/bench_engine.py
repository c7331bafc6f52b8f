"""Device-steps per second of the training engine, batched and one device at a time, on any accelerator.

Three engines (``ENGINES``): ``packed`` (the default: one pass a step per wave), ``batched`` (the vmapped
passes over padded groups, ``LocalConfig.packed=False``) and ``sequential``.

Builds the scale benchmark's world (``tiny`` model, about 16 training samples a device), runs one star round
to collect a round's training jobs through the loop's ``trainer=`` seam, then times ``train_devices`` on
those jobs with each engine, interleaved, ``--repeats`` times each, and reports the
best of each: wall and CPU seconds (this process, all its threads), device-steps per second (devices x
local steps / wall seconds) and the batched / sequential ratios. On CUDA the clock waits for the device
(``torch.cuda.synchronize``) before it is read; CPU seconds then count the host only.

``--device auto`` takes CUDA where present, else the CPU. ``--quick``: 20 devices, one repeat (about a
minute on a 2-core CPU). Results go to ``experiments/results/bench_engine/<device>_<devices>.json`` with the
machine, the load average and the engine's commit.

Usage:
    .venv/bin/python experiments/bench_engine.py --quick
    .venv/bin/python experiments/bench_engine.py --devices 100 --threads 1 --repeats 3
    .venv/bin/python experiments/bench_engine.py --devices 1000 --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import hffm  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE, which libgomp reads when torch loads)

# isort: split
import torch
from lightning.fabric import Fabric
from scale_bench import MACHINE, bench_config, engine_version

from hffm.engine import train_devices
from hffm.federation.loop import run_federation
from hffm.run import make_world

OUT = Path(__file__).resolve().parent / "results" / "bench_engine"


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False); "
                         "use --device cpu or auto")
    return name


def collect_jobs(fabric: Fabric, world, cfg) -> tuple:
    """One star round of ``cfg``; the arguments its trainer got (fabric, bank, jobs, local)."""
    calls: list[tuple] = []

    def spy(*args):
        calls.append(args)
        return train_devices(*args)

    run_federation(fabric, world, cfg, loggers=[], trainer=spy)
    return calls[0]


ENGINES = {"batched": {"batched": True, "packed": False}, "packed": {"batched": True, "packed": True},
           "sequential": {"batched": False, "packed": False}}
"""The engines timed: vmapped passes over padded groups, packed passes (one a step per wave), one device at a time."""


def timed(fabric: Fabric, bank, jobs, local, engine: str) -> tuple[float, float]:
    """(wall s, CPU s) of one call of the engine on the jobs."""
    sync = torch.cuda.synchronize if fabric.device.type == "cuda" else (lambda: None)
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    train_devices(fabric, bank, jobs, dataclasses.replace(local, **ENGINES[engine]))
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(devices: int, device: str, threads: int, repeats: int, steps: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    cfg = bench_config(devices, 1, local_steps=steps)
    cfg = cfg.replace(federation={"mode": "star", "rounds": 1, "batched": True}, seed=0)
    fabric = Fabric(accelerator=device, devices=1)
    world = make_world(cfg)
    world.bank.to(fabric.device)
    _, bank, jobs, local = collect_jobs(fabric, world, cfg)
    load_before = [round(x, 2) for x in os.getloadavg()]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in ENGINES}
    for _ in range(repeats):
        for name in ENGINES:
            times[name].append(timed(fabric, bank, jobs, local, name))
    device_steps = len(jobs) * local.steps
    out: dict[str, Any] = {
        "machine": torch.cuda.get_device_name() if device == "cuda" else MACHINE,
        "device": device, "devices": len(jobs), "local_steps": local.steps, "threads": threads,
        "repeats": repeats, "engine": engine_version(),
        "hffm": str(Path(hffm.__file__).parent), "torch": torch.__version__, "python": platform.python_version(),
        "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    for name, runs in times.items():
        wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
        out[name] = {"wall_s": wall, "cpu_s": cpu, "device_steps_per_s": device_steps / wall,
                     "all_wall_s": [w for w, _ in runs], "all_cpu_s": [c for _, c in runs]}
    out["speedup_wall"] = out["sequential"]["wall_s"] / out["batched"]["wall_s"]
    out["speedup_cpu"] = out["sequential"]["cpu_s"] / out["batched"]["cpu_s"]
    out["packed_speedup_wall"] = out["sequential"]["wall_s"] / out["packed"]["wall_s"]
    out["packed_speedup_cpu"] = out["sequential"]["cpu_s"] / out["packed"]["cpu_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="local steps a device runs")
    parser.add_argument("--quick", action="store_true", help="20 devices, one repeat")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.quick:
        args.devices, args.repeats = 20, 1
    warnings.filterwarnings("ignore")
    device = pick_device(args.device)
    result = bench(args.devices, device, args.threads, args.repeats, args.steps)
    for name in ENGINES:
        r = result[name]
        print(f"{name:>10}: {r['device_steps_per_s']:8.1f} device-steps/s, wall {r['wall_s']:.2f} s, "
              f"CPU {r['cpu_s']:.2f} s")
    print(f"batched / sequential: {result['speedup_wall']:.2f}x wall, {result['speedup_cpu']:.2f}x CPU "
          f"({result['devices']} devices, {device}, {args.threads} thread(s), {result['machine']})")
    print(f"packed / sequential: {result['packed_speedup_wall']:.2f}x wall, {result['packed_speedup_cpu']:.2f}x CPU")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{device}_{result['devices']}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
