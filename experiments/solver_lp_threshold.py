"""Why the lambda = 0 certified gap at scale stays at 3-5 % (issue 18, item 4): the subset LP of solvers/bounds.py,
not the number of LPs it may solve, sets it.

For the instances of experiments/solver_scale_gap.py (`random_instance(N, N / 100, M, seed)`, M in 3..10 from the
seed) the plan of `solve(p, "joint")` (2 s limit), its certified bound, and on the edge that sets the plan's latency
the LP's own threshold: the largest trial latency the LP proves impossible, found by 30 bisection steps (the solver
tries at most 16 LPs over all edges). If the threshold's gap is the plan's gap, more LPs cannot close it: a tighter
relaxation or a faster plan must. The plan side: the local search of solvers/local.py (the one `joint` runs on edges of
at most 16 devices) on that slowest edge alone, given --search-s seconds, and how much faster it makes the edge.

Run: python experiments/solver_lp_threshold.py [--devices 1000] [--seeds 0,1,2] [--search-s 1]
(writes experiments/results/solver_scale_gap/lp_threshold.json)
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

from solvers import RoundPlan, RoundProblem, solve
from solvers.bounds import EdgeRoutes
from solvers.clock import Clock
from solvers.energy import edge_latency
from solvers.evaluate import evaluate
from solvers.local import local_search
from solvers.parallel import restrict

OUT = Path(__file__).resolve().parent / "results" / "solver_scale_gap"


def slowest_edge(devices: int, seed: int) -> tuple[RoundProblem, RoundPlan, np.ndarray, int]:
    """The scale bench's seeded round (its module count drawn from the seed), its joint plan, the plan's edge
    latencies and its slowest edge, which bounds the round's latency."""
    p = scale_round(devices, seed)
    plan = solve(p, "joint")
    edge_t = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    return p, plan, edge_t, int(np.argmax(edge_t))


def threshold(p, e: int, upper: float, steps: int = 30) -> float:  # noqa: ANN001
    """The largest t in [upper / 2, upper] the edge's subset LP proves impossible (to 2^-steps of the bracket)."""
    demand = p.coverage_demand()[e]
    route = EdgeRoutes.of(p, e, [0])
    lo, hi = 0.5 * upper, upper
    if not route.impossible(lo, demand):
        return 0.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if route.impossible(mid, demand) else (lo, mid)
    return lo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--search-s", type=float, default=1.0)
    args = ap.parse_args()
    code = commit(CODE_PATHS)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        load = os.getloadavg()[0]
        p, plan, edge_t, e = slowest_edge(args.devices, seed)
        modules = p.num_modules
        t_lp = threshold(p, e, float(edge_t[e]))
        sub, dev = restrict(p, np.array([e]))
        local = np.full(p.num_devices, -1)
        local[dev] = np.arange(dev.size)
        c0 = time.process_time()
        x2, r2 = local_search(sub, plan.placement[dev], local[plan.relay[dev]], max_devices=dev.size, rounds=200,
                              clock=Clock.start(args.search_s))
        search_cpu = time.process_time() - c0
        t_search = float(edge_latency(sub, [(x2, r2)])[0][0])
        rows.append({"devices": args.devices, "seed": seed, "modules": modules, "load_1min": load,
                     "latency_s": plan.latency_s, "lower_bound": plan.lower_bound, "certified_gap": plan.gap,
                     "slowest_edge": e, "lp_threshold_s": t_lp, "threshold_gap": 1 - t_lp / plan.latency_s,
                     "second_edge_latency_s": float(np.sort(edge_t)[-2]) if edge_t.size > 1 else None,
                     "searched_edge_latency_s": t_search, "search_gain": 1 - t_search / float(edge_t[e]),
                     "search_cpu_s": search_cpu})
        print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "lp_threshold.json").write_text(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs", "commit": code,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
