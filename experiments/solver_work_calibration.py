"""Calibrate the work budget (solvers/clock.py): how many CPU seconds a tick, a simplex iteration and a node cost
here, and what a solve under budget="work" costs against the same solve under budget="time".

Each instance is solved with `solve(p, "joint", time_limit_s=LIMIT)` under both budgets, the budgets' order
alternating from one instance to the next; per solve it records CPU seconds (time.process_time) beside wall seconds
and, under the work budget, the meter's counts (ticks, iterations, nodes, which are the same on every run). A
non-negative least-squares fit of CPU seconds on the counts gives the per-unit costs (the constants TICK_S,
ITERATION_S, NODE_S should be near them); the CPU ratio work / time per instance says whether a work second costs
about a CPU second of the time budget. The machine is shared: the 1-minute load average is recorded with each row.

Run: python experiments/solver_work_calibration.py [--limit 2] [--quick]
(writes experiments/results/solver_work/calibration.json)
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
from code_version import CODE_PATHS, commit
from scipy.optimize import nnls

from solvers import random_instance, solve
from solvers.clock import ITERATION_S, NODE_S, TICK_S, under_budget

OUT = Path(__file__).resolve().parent / "results" / "solver_work"
# (devices, edges, modules, seed, lambda, memory-tight): the engine's small rounds (4 edges x 3 devices, lambda 0
# and > 0), single edges the model works hard on, and larger memory-tight rounds (repair MILPs, the bound's LPs)
CASES = [(12, 4, 5, 0, 0.0, False), (12, 4, 5, 1, 0.5, False), (12, 1, 5, 2, 0.5, False), (10, 1, 6, 3, 0.0, True),
         (24, 2, 5, 3, 0.5, True), (40, 4, 5, 3, 0.0, True), (60, 3, 6, 4, 0.5, False), (200, 2, 6, 1, 0.5, True),
         (200, 2, 6, 0, 0.0, True), (16, 2, 5, 5, 5.0, False)]


def one(p: object, budget: str, limit: float) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    with under_budget(budget) as meter:
        plan = solve(p, "joint", time_limit_s=limit, budget=budget)  # type: ignore[arg-type]
    row = {"budget": budget, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
           "objective": plan.objective, "lower_bound": plan.lower_bound, "status": plan.status,
           "load_1min": os.getloadavg()[0]}
    if meter is not None:
        row |= {"ticks": meter.ticks, "iterations": meter.iterations, "nodes": meter.nodes,
                "work_s": meter.seconds()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, default=2.0, help="time_limit_s of every solve")
    parser.add_argument("--quick", action="store_true", help="the first 5 cases only")
    args = parser.parse_args()
    code = commit(CODE_PATHS)
    solve(random_instance(8, 2, 3, 0), "joint", time_limit_s=0.1)  # imports before the first measured solve
    rows = []
    for k, (n, e, m, seed, lam, tight) in enumerate(CASES[:5] if args.quick else CASES):
        p = random_instance(n, e, m, seed, lam=lam, memory_fraction=(0.5, 0.7) if tight else (1.0, 1.5))
        for budget in (("time", "work") if k % 2 == 0 else ("work", "time")):
            row = {"case": [n, e, m, seed, lam, tight], **one(p, budget, args.limit)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    work = [r for r in rows if r["budget"] == "work"]
    a = np.array([[r["ticks"], r["iterations"], r["nodes"]] for r in work], dtype=float)
    cost, _ = nnls(a, np.array([r["cpu_s"] for r in work]))
    ratios = []
    for r in work:
        t = next(x for x in rows if x["budget"] == "time" and x["case"] == r["case"])
        ratios.append(r["cpu_s"] / max(t["cpu_s"], 1e-9))
    result = {"machine": f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs",
              "commit": code, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "limit_s": args.limit,
              "constants": {"TICK_S": TICK_S, "ITERATION_S": ITERATION_S, "NODE_S": NODE_S},
              "fit_cpu_s_per": {"tick": cost[0], "iteration": cost[1], "node": cost[2]},
              "cpu_work_over_time": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                                     "each": ratios},
              "cpu_s_total": {b: sum(r["cpu_s"] for r in rows if r["budget"] == b) for b in ("time", "work")},
              "rows": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "calibration.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("fit_cpu_s_per", "cpu_work_over_time", "cpu_s_total")}))


if __name__ == "__main__":
    main()
