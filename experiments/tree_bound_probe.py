"""Which component sets the tree bound on the bench's tree edges (probe, session 24).

Per edge: the plan's objective, its bound, and per root the cheap bound (tree_bound / ladder), the coupled bound
(tree_lagrange) and the MILP's (status, dual bound); the root that sets the edge's bound and what set it there.

    python experiments/tree_bound_probe.py [--sizes 8,12] [--lams 0,0.05,0.5,5,50] [--seeds 2] [--out FILE]
        [--cpu-clock]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if "--cpu-clock" in sys.argv:  # the solver's deadlines in CPU s, as experiments/solver_ab.py --cpu-clock
    time.perf_counter = time.process_time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from solver_model_bench import instance  # noqa: E402

import solvers.tree_improve as ti  # noqa: E402
from solvers import solve  # noqa: E402
from solvers.tree_model import TreeMilp  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="8,12")
    ap.add_argument("--lams", default="0,0.05,0.5,5,50")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--cpu-clock", action="store_true", help="the solver's deadlines read CPU seconds")
    a = ap.parse_args()
    log: dict = {}
    orig_couple, orig_solve = ti._couple, TreeMilp.solve

    def couple(edge, cheap, t_lb, e_lb, lam, until, gap, *rest):  # type: ignore[no-untyped-def]
        log["cheap0"] = cheap.copy()
        orig_couple(edge, cheap, t_lb, e_lb, lam, until, gap, *rest)
        log["cheap1"] = cheap.copy()

    def msolve(self, roots, cutoff, time_limit_s, gap, floor=0.0, energy_floor=0.0):  # type: ignore[no-untyped-def]
        out = orig_solve(self, roots, cutoff, time_limit_s, gap, floor, energy_floor)
        log.setdefault("milp", []).append((roots[0], out[0], out[1], cutoff, time_limit_s))
        return out

    ti._couple, TreeMilp.solve = couple, msolve
    solve(instance(4, "one-hop", 0.5, 99), "joint", time_limit_s=0.5)  # warm: lazy imports
    rows = []
    for n in map(int, a.sizes.split(",")):
        for lam in map(float, a.lams.split(",")):
            for seed in range(a.seeds):
                log.clear()
                p = instance(n, "tree", lam, seed)
                plan = solve(p, "joint", time_limit_s=2)
                c0, c1 = log.get("cheap0"), log.get("cheap1")
                milp = {int(r): (k, lo) for r, k, lo, _, _ in log.get("milp", [])}
                row = {
                    "n": n,
                    "lam": lam,
                    "seed": seed,
                    "obj": plan.objective,
                    "lb": plan.lower_bound,
                    "gap": plan.gap,
                    "status": plan.status,
                    "milp_runs": len(milp),
                }
                if c1 is not None:
                    lower = c1.copy()
                    for r, (_kind, lo) in milp.items():
                        lower[r] = max(lower[r], lo)
                    r = int(np.argmin(lower))
                    src = "milp" if r in milp and milp[r][1] > c1[r] else "coupled" if c1[r] > c0[r] else "cheap"
                    row.update(
                        root=r,
                        root_lb=float(lower[r]),
                        cheap=float(c0[r]),
                        coupled=float(c1[r]),
                        milp=milp.get(r),
                        source=src,
                        roots_below=int(np.sum(lower < 0.99 * plan.objective)),
                        per_root=[round(float(x) / plan.objective, 4) for x in lower],
                    )
                rows.append(row)
                print(json.dumps(row), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
