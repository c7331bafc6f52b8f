"""What the federated engine costs over a bare PyTorch FedAvg loop doing the same work, batched and not.

Per device count (10, 100) and torch thread count (1, 2), in one process, one after another:

- ``bare``: a hand-written sequential FedAvg round: for each device, its sub-model of the same bank
  (encoders, prompts, experts, adapters, heads over the shared frozen trunk), the same AdamW, local
  steps and batches, then a sample-weighted average of the trained modules. No Lightning, no
  federation machinery: the floor for training devices one at a time.
- ``sequential`` / ``batched``: ``run_federation`` in star mode (FedAvg: every device to the cloud
  every round) with ``federation.batched`` false / true;
- ``hierarchical-sequential`` / ``hierarchical-batched`` (one thread): the default hierarchical mode;
  the loop trains one edge's devices at a time, so a batched pass holds at most one edge's 10 devices.

Each variant runs ``--repeats`` times, interleaved with the others, so a change of load hits them all;
the table reports each variant's fastest steady round (not the first, and not the last, which
evaluates) and ratios of those; results.json also holds medians and CPU seconds (both threads when
there are two). Ratios come from one run. The machine: a 2-core CPU container shared with other jobs, so absolute
numbers move with the load; ratios measured back to back move less.

Usage:
    .venv/bin/python experiments/bench_overhead.py                      # 10 and 100 devices, 1 and 2 threads
    .venv/bin/python experiments/bench_overhead.py --devices 100 --threads 1 --repeats 2
    .venv/bin/python experiments/bench_overhead.py --devices 1000 --threads 2 --repeats 1 --variants batched \
        --out experiments/results/bench_overhead/1000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from lightning.fabric import Fabric
from scale_bench import MACHINE, bench_config, engine_version

OUT = Path(__file__).resolve().parent / "results" / "bench_overhead"


def bare_round(world, global_states: dict, steps: int, batch_size: int, lr: float, seed: int) -> dict:
    """One FedAvg round by hand: every device trains its sub-model, then a sample-weighted average."""
    bank = world.bank
    sums: dict[str, dict[str, torch.Tensor]] = {}
    weights: dict[str, float] = {}
    for device, data in enumerate(world.train):
        required = bank.required_modules(data.modality_names, data.task_names)
        bank.load_states({m: global_states[m] for m in required})
        model = bank.submodel(data.modality_names, data.task_names)
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed * 100_003 + device)
        batches = iter(())
        for _ in range(steps):
            batch = next(batches, None)
            if batch is None:
                batches = data.batches(batch_size, shuffle=True, generator=generator)
                batch = next(batches)
            outputs, aux = model(batch["inputs"], batch["present"])
            loss = sum(model.task_loss(t, outputs[t], y) for t, y in batch["targets"].items())
            loss = loss + model.cfg.moe_aux_weight * aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        n = float(len(data))
        for name in required:
            state = bank.module_state(name)
            acc = sums.setdefault(name, {k: torch.zeros_like(v) for k, v in state.items()})
            for k, v in state.items():
                acc[k] += n * v
            weights[name] = weights.get(name, 0.0) + n
    return {m: {k: v / weights[m] for k, v in s.items()} for m, s in sums.items()}


def time_bare(world, rounds: int, fed) -> list[tuple[float, float]]:
    states = world.bank.state_of(world.bank.names())
    out = []
    for t in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        states |= bare_round(world, states, fed.local_steps, fed.batch_size, fed.lr, seed=t)
        out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def time_hffm(world, rounds: int, fed) -> list[tuple[float, float]]:
    from hffm.config import Config
    from hffm.federation.loop import run_federation

    out: list[tuple[float, float]] = []
    clock = [time.process_time()]

    def record(metrics, round_index, plan, outcome=None) -> None:
        now = time.process_time()
        out.append((metrics["time/round_s"], now - clock[0]))
        clock[0] = now

    run_federation(Fabric(accelerator="cpu", devices=1), world, Config(federation=fed, seed=0), loggers=[record])
    return out


def steady(times: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The steady rounds: not the first (warm-up) and not the last (it evaluates)."""
    return times[1:-1] or times


def measure(n_devices: int, threads: int, rounds: int, repeats: int,
            only: list[str] | None = None) -> dict[str, dict[str, float]]:
    from hffm.run import make_world

    torch.set_num_threads(threads)
    cfg = bench_config(n_devices, rounds)
    world = make_world(cfg)
    star = dataclasses.replace(cfg.federation, mode="star", eval_every=rounds + 1)
    variants = {
        "bare": lambda: time_bare(world, rounds, star),
        "sequential": lambda: time_hffm(world, rounds, dataclasses.replace(star, batched=False)),
        "batched": lambda: time_hffm(world, rounds, dataclasses.replace(star, batched=True)),
    }
    if threads == 1:
        hier = dataclasses.replace(star, mode="hierarchical")
        variants["hierarchical-sequential"] = lambda: time_hffm(world, rounds, dataclasses.replace(hier, batched=False))
        variants["hierarchical-batched"] = lambda: time_hffm(world, rounds, dataclasses.replace(hier, batched=True))
    if only:
        variants = {name: run for name, run in variants.items() if name in only}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved, so a change of the machine's load hits every variant alike
        for name, run in variants.items():
            samples[name] += steady(run())
    result = {}
    for name, times in samples.items():
        walls = [w for w, _ in times]
        result[name] = {"wall_s_min": min(walls), "wall_s_median": statistics.median(walls),
                        "cpu_s_mean": float(np.mean([c for _, c in times])), "rounds_timed": len(times)}
        print(f"devices={n_devices} threads={threads} {name}: {result[name]}", flush=True)
    return result


def table(results: dict) -> str:
    """Fastest steady round of each variant (the least disturbed by other jobs) and ratios of those."""
    lines = ["| devices | threads | bare s/round | sequential s/round | batched s/round | sequential / bare "
             "| batched / bare | sequential / batched | sequential / batched, CPU s/round "
             "| hierarchical: sequential / batched s/round |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, r in results.items():
        n, k = key.split("x")
        b, s, m = (r[v]["wall_s_min"] if v in r else float("nan") for v in ("bare", "sequential", "batched"))
        cs, cm = (r[v]["cpu_s_mean"] if v in r else float("nan") for v in ("sequential", "batched"))
        hier = ""
        if "hierarchical-batched" in r and "hierarchical-sequential" in r:
            hs, hb = r["hierarchical-sequential"]["wall_s_min"], r["hierarchical-batched"]["wall_s_min"]
            hier = f"{hs:.2f} / {hb:.2f} ({hs / hb:.2f}x)"
        lines.append(f"| {n} | {k} | {b:.2f} | {s:.2f} | {m:.2f} | {s / b:.2f} | {m / b:.2f} | {s / m:.2f} "
                     f"| {cs:.2f} / {cm:.2f} ({cs / cm:.2f}x) | {hier} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=None,
                        help="only these: bare sequential batched hierarchical-sequential hierarchical-batched")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    meta = {"machine": MACHINE, "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
            "engine": engine_version(), "rounds": args.rounds, "repeats": args.repeats,
            "load_average_before": os.getloadavg(),
            "command": "experiments/bench_overhead.py " + " ".join(
                f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
                if k != "out")}
    results: dict[str, dict] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    for k in args.threads:  # one thread first: written after each size, so a cut-short run keeps what it measured
        for n in args.devices:
            results[f"{n}x{k}"] = measure(n, k, args.rounds, args.repeats, args.variants)
            meta["load_average_after"] = os.getloadavg()
            (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
            before, after = meta["load_average_before"][0], meta["load_average_after"][0]
            load = f"load average {before:.1f} before, {after:.1f} after"
            engine = meta["engine"]
            md = f"{table(results)}\n\nMachine: {MACHINE} ({load}); torch {torch.__version__}; engine {engine}.\n"
            (args.out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
