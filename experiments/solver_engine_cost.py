"""CPU cost per training round of the per-round solver in the engine: `hffm-train experiment=demo
federation.d2d=relay solver=S` (4 edges x 3 devices, 10 rounds) for S in greedy and joint.

Each configuration runs twice, with federation.rounds = 1 and = ROUNDS, in a fresh process; the CPU seconds of a
round are (CPU(ROUNDS) - CPU(1)) / (ROUNDS - 1), which removes start-up (imports, data, model) from the comparison.
With --repeats R the four runs repeat R times, the solvers' order alternating from one repeat to the next (the first
process of a batch pays cold file caches), and the per-round figures are medians over the repeats.
CPU seconds (user + system of the child) are reported beside wall seconds: the machine is shared, so wall time
swings with other jobs while CPU time mostly does not. Target: joint at most 1.2 x greedy per round.

Run: python experiments/solver_engine_cost.py [--repeats 3]  (writes experiments/results/solver_engine_cost/cost.json)
With --budget time|work every run sets solver.budget (solvers/clock.py: wall-clock or deterministic work seconds)
and the results go to cost_budget_<budget>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from code_version import CODE_PATHS, commit

ROUNDS = 10
SOLVERS = ("greedy", "joint")
OUT = Path(__file__).resolve().parent / "results" / "solver_engine_cost"


def run(solver: str, rounds: int, folder: str, budget: str | None = None) -> dict:
    # folder: a new one each call (run folders are claimed)
    """CPU and wall seconds of one hffm-train process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "hffm.cli.train", "experiment=demo", "federation.d2d=relay", f"solver={solver}",
           f"federation.rounds={rounds}", "logger=none", f"hydra.run.dir={folder}/{solver}_{rounds}"]
    cmd += [] if budget is None else [f"solver.budget={budget}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"solver": solver, "rounds": rounds, "cpu_s": cpu, "wall_s": wall, "load_1min": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="repeats of the 4 runs, the solvers' order alternating")
    parser.add_argument("--budget", choices=("time", "work"), default=None, help="solver.budget of every run")
    args = parser.parse_args()
    code = commit(CODE_PATHS)  # before the run: the code it ran
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for solver in (SOLVERS if repeat % 2 == 0 else SOLVERS[::-1]):
                for rounds in (1, ROUNDS):
                    runs.append({**run(solver, rounds, f"{folder}/r{repeat}", args.budget), "repeat": repeat})
                    print(json.dumps(runs[-1]), flush=True)
    per_round = {}
    for solver in SOLVERS:
        rates = {key: [] for key in ("cpu_s", "wall_s")}
        for repeat in range(args.repeats):
            one, many = (next(r for r in runs if r["solver"] == solver and r["rounds"] == n and r["repeat"] == repeat)
                         for n in (1, ROUNDS))
            for key in rates:
                rates[key].append((many[key] - one[key]) / (ROUNDS - 1))
        per_round[solver] = {key: statistics.median(values) for key, values in rates.items()}
        per_round[solver]["cpu_s_each_repeat"] = rates["cpu_s"]
    ratio = per_round["joint"]["cpu_s"] / per_round["greedy"]["cpu_s"]
    result = {"machine": f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs",
              "command": "hffm-train experiment=demo federation.d2d=relay solver=S"
                         + ("" if args.budget is None else f" solver.budget={args.budget}"), "commit": code,
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": ROUNDS, "repeats": args.repeats,
              "runs": runs, "per_round": per_round, "joint_over_greedy_cpu": ratio, "target": 1.2,
              "met": ratio <= 1.2}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / ("cost.json" if args.budget is None else f"cost_budget_{args.budget}.json")).write_text(
        json.dumps(result, indent=1))
    print(json.dumps({"per_round": per_round, "joint_over_greedy_cpu": ratio}))


if __name__ == "__main__":
    main()
