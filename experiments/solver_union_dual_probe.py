"""How much of the union LP's bound its dual gives when the LP is cut short, and from which trial latency
(solvers/union_dual.py, relay_aggregates at lambda = 0).

Instances of experiments/solver_scale_gap.py with `relay_aggregates` (`random_instance(1000, 10, M, seed)`, M in 3..10
from the seed; by default seeds 5-8, outside that benchmark's 0-2), planned unbounded; on the slowest edge: for each
trial latency (x the edge's plan latency) one union LP by HiGHS's interior point method without crossover, stopped
after k iterations (k = `--iterations`, the last one large: to optimality); per run the dual's value D at the trial,
the largest latency D refutes (bisection) as a fraction of the plan's, and the LP's CPU s.

Run: python experiments/solver_union_dual_probe.py [--seeds 5,6,7,8] [--trials 0.6,0.66]
     [--iterations 15,20,25,30,1000] [--out experiments/results/solver_scale_gap/union_dual_probe.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from code_version import CODE_PATHS, commit
from solver_grid import scale_round

import solvers.union_dual as ud
from solvers import solve
from solvers.bounds import EdgeRoutes
from solvers.evaluate import evaluate

OUT = Path(__file__).resolve().parent / "results" / "solver_scale_gap" / "union_dual_probe.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="5,6,7,8")
    ap.add_argument("--trials", default="0.6,0.66")
    ap.add_argument("--iterations", default="15,20,25,30,1000")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    code, rows = commit(CODE_PATHS), []
    limits = ud.set_limits
    for seed in (int(v) for v in args.seeds.split(",")):
        p = scale_round(1000, seed, relay_aggregates=True)
        modules = p.num_modules
        plan = solve(p, "joint", time_limit_s=0)
        t_edge = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
        e = int(np.argmax(t_edge))
        upper = float(t_edge[e])
        routes, need = EdgeRoutes.of(p, e, [0]), p.coverage_demand()[e]
        for trial in (float(v) for v in args.trials.split(",")):
            for k in (int(v) for v in args.iterations.split(",")):
                ud.set_limits = lambda h, s, k=k: (limits(h, s), h.setOptionValue("ipm_iteration_limit", k))
                c0 = time.process_time()
                got = ud._duals(p, routes, need, ud._band(p, routes, trial * upper), 1e6)
                cpu = time.process_time() - c0
                ud.set_limits = limits
                if got is None:
                    continue
                value = ud._dual_value(p, routes, need, *got)
                lo, hi = 0.0, upper
                for _ in range(40):
                    mid = 0.5 * (lo + hi)
                    lo, hi = (mid, hi) if value(mid) > 1 + 1e-6 else (lo, mid)
                rows.append({"seed": seed, "modules": modules, "edge": e, "routes": int(routes.col.size),
                             "trial": trial, "ipm_iterations": k, "dual_at_trial": value(trial * upper),
                             "refuted_fraction": lo / upper, "lp_cpu_s": cpu, "load_1min": os.getloadavg()[0]})
                print(json.dumps(rows[-1]), flush=True)
    machine = f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "commit": code,
                                    "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows},
                                   indent=1))


if __name__ == "__main__":
    main()
