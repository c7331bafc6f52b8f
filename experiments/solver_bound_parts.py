"""Which part of `joint`'s certificate carries the bound at lambda > 0 on one edge, from the same incumbent.

Per instance (experiments/solver_model_bench.py's, one-hop): the unbounded heuristic plan (time_limit_s=0) is the
incumbent; then, each with its own `--budget` seconds, the least-energy column bound (solvers/energy_columns.py
`lambda_bound`) and the edge MILP with T a variable (solvers/edge_model.py), the latter with and without tangents
at the plans' operating points (`INCUMBENT_TANGENTS`). Reports each bound as a gap to the incumbent, CPU s, and
the edge MILP's best plan. Writes a JSON with the commit, machine and load.

    python experiments/solver_bound_parts.py [--sizes 8,12] [--lams 0.5,5] [--seeds 2] [--budget 2]
        [--out experiments/results/solver_model/bound_parts.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from solver_grid import add_grid, grid, write_results
from solver_model_bench import instance

import solvers.edge_model as edge_model
from solvers import solve
from solvers.energy_columns import lambda_bound


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.5,5", seeds=2, mode=None)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--out", default="experiments/results/solver_model/bound_parts.json")
    a = ap.parse_args()
    rows = []
    load = os.getloadavg()[0]
    for n, lam, seed in grid(a):
        p = instance(n, "one-hop", lam, seed)
        plan = solve(p, "joint", time_limit_s=0)
        up = plan.objective
        row = {"devices": n, "lambda": lam, "seed": seed, "incumbent": up,
               "heuristic_gap": 1 - plan.lower_bound / up}
        c = time.process_time()
        lb = lambda_bound(p, up, time.perf_counter() + a.budget)
        row.update(columns_gap=1 - lb / up, columns_cpu_s=time.process_time() - c)
        for name, on in (("edge_milp", False), ("edge_milp_tangents", True)):
            edge_model.INCUMBENT_TANGENTS = on
            c = time.process_time()
            got = edge_model.EdgeModel(p).solve(plan.placement, plan.relay, up, time.perf_counter() + a.budget)
            row.update({f"{name}_gap": 1 - got.lower_bound / up, f"{name}_cpu_s": time.process_time() - c,
                        f"{name}_objective": got.objective, f"{name}_milps": got.milps})
        edge_model.INCUMBENT_TANGENTS = True
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_results(a.out, rows, {"load_before": load, "budget_s": a.budget})


if __name__ == "__main__":
    main()
