"""lambda > 0, one edge: how high do exact relay-group columns certify (solvers/group_columns.py), and at what cost?

Per seeded instance (`solver_model_bench.instance(n, mode, lam, seed)`, one edge x 6 modules) the reference plan is
`joint` given --ref CPU seconds (its latency T*, energy E*, certified lower bound: `plan_lb`, over its objective). Then,
with no clock (CPU seconds reported):
- `master_at_T`: the group master's bound on the least energy by T* (column generation to convergence, seeded
  with the plan's groups), over E*, and its CPU s;
- `group_lb`: `group_lower_bound`, the objective bound over every latency (masters at up to MAX_MASTERS latencies,
  Lagrangian bounds in between), over the plan's objective, and its CPU s.
Writes a JSON.

    python experiments/solver_group_bound.py [--sizes 8,12] [--lams 0.5,5] [--seeds 2] [--mode one-hop] [--ref 2]
        --out experiments/results/solver_model/s21g/group_bound.json
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
from solvers.bounds import subset_lower_bound  # noqa: E402
from solvers.clock import Clock  # noqa: E402
from solvers.evaluate import evaluate  # noqa: E402
from solvers.group_bound import group_lower_bound  # noqa: E402
from solvers.group_columns import GroupBound  # noqa: E402
from solvers.group_parts import edge_parts  # noqa: E402


def row(n: int, mode: str, lam: float, seed: int, ref: float) -> dict:
    p = instance(n, mode, lam, seed)
    with cpu_deadlines(scale_highs=True):  # the reference plan's limit in CPU s (what a quiet machine gives it)
        plan = solve(p, "joint", time_limit_s=ref)
    seeds = (plan.placement, plan.relay, plan.bandwidth_hz)
    g = GroupBound(p, 0, edge_parts(p, 0))
    c0 = time.process_time()
    at_t = g.energy(plan.latency_s, plan.energy_j, seed=g.plan_groups(*seeds))
    c1 = time.process_time()
    edge_t = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    lb = group_lower_bound(p, subset_lower_bound(p, edge_t), plan.objective, plan.latency_s, plan.energy_j,
                           Clock(), plan=seeds)
    c2 = time.process_time()
    return {"devices": n, "mode": mode, "lambda": lam, "seed": seed, "objective": plan.objective,
            "plan_lb": plan.lower_bound / plan.objective, "master_at_T": at_t / plan.energy_j,
            "master_cpu_s": c1 - c0, "group_lb": lb / plan.objective, "group_cpu_s": c2 - c1,
            "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.5,5", seeds=2, mode="one-hop")
    ap.add_argument("--ref", type=float, default=2.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for n, lam, seed in grid(a):
        r = row(n, a.mode, lam, seed, a.ref)
        rows.append(r)
        show(r)
    write_results(a.out, rows, {"ref_s": a.ref})


if __name__ == "__main__":
    main()
