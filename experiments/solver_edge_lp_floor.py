"""The edge model's LP relaxation (solvers/edge_model.py `EdgeModel.lp_bound`) with and without the latency floor.

For each instance of experiments/solver_model_bench.py (one edge, N devices x 6 modules, relays that forward) the
plan of `joint` (--plan-limit s) is the incumbent; its edge's latency bound T_lo (solvers/bounds.py
`subset_lower_bound`) is the floor. The LP cutting loop runs for --lp-s CPU s (deadlines on process time) with
t_floor = 0 and with t_floor = T_lo, each from a fresh
model: its value / incumbent (0: no LP finished), CPU s. The round's bound (the plan's lower_bound) is reported
beside them.

    python experiments/solver_edge_lp_floor.py [--sizes 8,12] [--lams 0.05,0.5,5,50] [--seeds 1] [--lp-s 2]
        [--plan-limit 2] --out experiments/results/solver_model/s18e/edge_lp_floor.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from cpu_clock import cpu_deadlines
from solver_grid import add_grid, grid, write_results
from solver_model_bench import instance

import solvers.edge_model as edge_model
from solvers import solve
from solvers.bounds import subset_lower_bound


def run_lp(p, plan, floor: float, seconds: float) -> dict:  # noqa: ANN001
    """The LP loop from a fresh model with the incumbent's tangents: its value / incumbent, CPU s."""
    model = edge_model.EdgeModel(p, t_floor=floor)
    model._operating(plan.placement, plan.relay)  # the incumbent's tangents, as EdgeModel.solve adds them
    c0 = time.process_time()
    got = model.lp_bound(plan.objective, time.perf_counter() + seconds)
    return {"t_floor": floor, "value": got / plan.objective, "cpu_s": time.process_time() - c0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.05,0.5,5,50", seeds=1, mode=None)
    ap.add_argument("--lp-s", type=float, default=2.0)
    ap.add_argument("--plan-limit", type=float, default=2.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with cpu_deadlines():  # every deadline in CPU s
        run(a)


def run(a: argparse.Namespace) -> None:
    rows = []
    for n, lam, seed in grid(a):
        p = instance(n, "one-hop", lam, seed)
        plan = solve(p, "joint", time_limit_s=a.plan_limit)
        t_lo = subset_lower_bound(p, np.array([plan.latency_s]))
        row = {"devices": n, "lambda": lam, "seed": seed, "objective": plan.objective,
               "round_bound": plan.lower_bound / plan.objective, "latency_s": plan.latency_s,
               "t_lo": t_lo, "runs": [run_lp(p, plan, f, a.lp_s) for f in (0.0, t_lo)],
               "load_1min": os.getloadavg()[0]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_results(a.out, rows, {"args": vars(a)})


if __name__ == "__main__":
    main()
