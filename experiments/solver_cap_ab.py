"""The fixed-power bound's latency search with and without its cap (solvers/bounds.py `LATENCY_CAP`), plans held fixed.

solver_ab.py compares two checkouts under a clock, so at 2 s the one-hop plans differ between its sides (they depend
on timing, solvers/README.md "Targets") and so do the bounds, which start from the plan's latency and objective.
Here each instance of experiments/solver_model_bench.py is planned once (`solve(p, "joint", time_limit_s=T,
budget="work")`, deterministic), then its bound (`round_lower_bound` as joint.py calls it: the plan's edge latencies,
upper = its objective) runs with and without the cap on a clock of --bound-s CPU seconds each, in one process,
alternating which goes first: only the cap differs. Per row: the plan's objective, each side's lower bound, certified
gap and CPU s. The solve's deadlines read CPU time (time.perf_counter = time.process_time); HiGHS's own limits stay
wall time.

    python experiments/solver_cap_ab.py [--modes one-hop,aggregates] [--sizes 8,12] [--lams 0.05,0.5,5,50]
        [--seeds 2] [--bound-s 0.5,1] --out experiments/results/solver_model/s22pf/cap_bound.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from solver_grid import add_grid, grid, write_results
from solver_model_bench import instance

import solvers.bounds as bounds
from solvers import RoundPlan, RoundProblem, solve
from solvers.clock import Clock
from solvers.evaluate import evaluate

time.perf_counter = time.process_time  # the bound's deadline in CPU s (solvers.clock.now reads time.perf_counter)


def one(p: RoundProblem, plan: RoundPlan, cap: bool, seconds: float) -> dict:
    bounds.LATENCY_CAP = cap
    t_known = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    c = time.process_time()
    lb = min(bounds.round_lower_bound(p, t_known, upper=plan.objective, clock=Clock.start(seconds)), plan.objective)
    return {"lower_bound": lb, "gap": 1 - lb / plan.objective, "cpu_s": time.process_time() - c,
            "load_1min": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", default="one-hop,aggregates")
    add_grid(ap, sizes="8,12", lams="0.05,0.5,5,50", seeds=2, mode=None)
    ap.add_argument("--time-limit", type=float, default=2.0, help="the plan's (work budget)")
    ap.add_argument("--bound-s", default="0.5,1", help="CPU seconds of each bound")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    solve(instance(4, "one-hop", 0.5, 99), "joint", time_limit_s=0.5)  # warm: lazy imports
    rows = []
    k = 0
    for mode in a.modes.split(","):
        for n, lam, seed in grid(a):
            p = instance(n, mode, lam, seed)
            plan = solve(p, "joint", time_limit_s=a.time_limit, budget="work")
            for sec in (float(v) for v in a.bound_s.split(",")):
                order = (False, True) if k % 2 == 0 else (True, False)
                got = {cap: one(p, plan, cap, sec) for cap in order}
                k += 1
                row = {"mode": mode, "devices": n, "lambda": lam, "seed": seed, "bound_s": sec,
                       "objective": plan.objective, "off": got[False], "on": got[True]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = []
    for mode in a.modes.split(","):
        for n in (int(v) for v in a.sizes.split(",")):
            for sec in (float(v) for v in a.bound_s.split(",")):
                rs = [r for r in rows if r["mode"] == mode and r["devices"] == n and r["bound_s"] == sec]
                off, on = [100 * r["off"]["gap"] for r in rs], [100 * r["on"]["gap"] for r in rs]
                summary.append({"mode": mode, "devices": n, "bound_s": sec, "median_gap_off": statistics.median(off),
                                "median_gap_on": statistics.median(on), "worst_off": max(off), "worst_on": max(on),
                                "lower_on_off": [r["on"]["lower_bound"] / r["off"]["lower_bound"] for r in rs]})
                print(json.dumps(summary[-1]), flush=True)
    write_results(a.out, rows, {"plan": f"time_limit_s={a.time_limit}, budget=work", "bound_clock": "CPU s"},
                  summary=summary)


if __name__ == "__main__":
    main()
