"""lambda > 0, one edge of 8-12 devices: is the certified gap the plan's or the bound's?

Per seeded instance (`solver_model_bench.instance(n, mode, lam, seed)`, one edge x 6 modules) `joint` runs with the
round clock (`--time-limit`, default 2 s) and with a long one (`--long`, default 30 s), each in CPU seconds
(the solver's deadlines read `time.process_time`, so a loaded machine gives both the same work). The best plan
and the best bound of the two bracket the optimum: the 2 s plan's excess over the best plan is the plan's part of
its certified gap, the best plan's excess over the 2 s bound the bound's part. Writes a JSON.

    python experiments/solver_gap_sides.py [--sizes 8,12] [--lams 0.5,5] [--seeds 2] [--mode one-hop]
        [--long 30] --out experiments/results/solver_model/s18a/gap_sides.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_clock import cpu_deadlines  # noqa: E402
from solver_grid import add_grid, grid, show, write_results  # noqa: E402
from solver_model_bench import instance  # noqa: E402

from solvers import solve  # noqa: E402


def run(p, limit: float) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    with cpu_deadlines():
        plan = solve(p, "joint", time_limit_s=limit)
    return {"objective": plan.objective, "lower_bound": plan.lower_bound, "status": plan.status,
            "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "load_1min": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.5,5", seeds=2, mode="one-hop")
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--long", type=float, default=30.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    solve(instance(4, "one-hop", 0.5, 99), "joint", time_limit_s=0.5)  # warm: lazy imports
    rows = []
    for n, lam, seed in grid(a):
        p = instance(n, a.mode, lam, seed)
        short, long_ = run(p, a.time_limit), run(p, a.long)
        best_plan = min(short["objective"], long_["objective"])
        best_bound = max(short["lower_bound"], long_["lower_bound"])
        row = {"devices": n, "mode": a.mode, "lambda": lam, "seed": seed, "short": short, "long": long_,
               "gap_short": 1 - short["lower_bound"] / short["objective"],
               "plan_excess": short["objective"] / best_plan - 1,
               "bound_short_of_best_plan": 1 - short["lower_bound"] / best_plan,
               "gap_long": 1 - long_["lower_bound"] / long_["objective"],
               "bracket": 1 - best_bound / best_plan}
        rows.append(row)
        show(row, skip=("short", "long"))
    write_results(a.out, rows, {"time_limit_s": a.time_limit, "long_s": a.long, "clock": "CPU s"})


if __name__ == "__main__":
    main()
