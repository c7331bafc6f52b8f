"""Does the same seed give the same modules? bench_flower's hffm job (star mode, batched) run twice per thread count.

Prints, per thread count, the largest difference between the two runs' final cloud modules and their accuracies
(`fedavg_job.global_accuracy`), and writes them with the commit and the load average.

Usage:
    .venv/bin/python experiments/check_determinism.py --clients 100 --rounds 4 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import hffm  # noqa: F401  (before torch: OMP_WAIT_POLICY=PASSIVE)

# isort: split
import torch
from code_version import commit
from fedavg_job import JobSpec, build_job_world, global_accuracy
from lightning.fabric import Fabric

from hffm.federation.loop import run_federation

OUT = Path(__file__).resolve().parent / "results" / "determinism"


def largest_difference(a: dict, b: dict) -> float:
    return max((a[m][k].double() - b[m][k].double()).abs().max().item() for m in a for k in a[m])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    spec = JobSpec(clients=args.clients, rounds=args.rounds)
    world = build_job_world(spec)
    initial = world.bank.state_of(world.bank.names())
    code = commit(("hffm", "experiments/fedavg_job.py", "experiments/check_determinism.py"))
    out = {"commit": code, "clients": args.clients, "rounds": args.rounds, "load_before": os.getloadavg(),
           "threads": {}}
    for threads in args.threads:
        torch.set_num_threads(threads)
        states, accuracy = [], []
        for _ in range(2):
            world.bank.load_states(initial)
            state = run_federation(Fabric(accelerator="cpu", devices=1), world, spec.config()).state.cloud_state
            states.append(state)
            accuracy.append(global_accuracy(world, state)["accuracy"])
        diff = largest_difference(*states)
        out["threads"][str(threads)] = {"largest_difference": diff, "accuracy": accuracy}
        print(f"{threads} thread(s): largest module difference between two runs {diff:.3g}, accuracies {accuracy}",
              flush=True)
    out["load_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"clients{args.clients}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
