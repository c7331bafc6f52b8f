"""Where the lambda > 0 energy search spends its time, and how far the clocked plan is from the unbounded one.

Per edge (N devices x 6 modules, one-hop, experiments/solver_model_bench.py's instances): cProfile of one unbounded
`solve(p, "joint", time_limit_s=0)` (CPU s of the energy search and of `deadline_energy` inside it), then the
objective of `solve(..., time_limit_s=T)` against the unbounded plan's. Writes experiments/results/solver_model/
energy_profile.json with the commit, machine and load.

    python experiments/solver_energy_profile.py [--sizes 8,12] [--lams 5] [--seeds 1] [--time-limit 2]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import time

from solver_grid import add_grid, grid, write_results
from solver_model_bench import instance

from solvers import solve


def cumulative(stats: pstats.Stats, name: str) -> float:
    """Cumulative seconds of the functions called `name` (cProfile's clock: process time here)."""
    return sum(v[3] for k, v in stats.stats.items() if k[2] == name)  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="5", seeds=1, mode=None)
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--out", default="experiments/results/solver_model/energy_profile.json")
    a = ap.parse_args()
    rows = []
    load = os.getloadavg()[0]
    for n, lam, seed in grid(a):
        p = instance(n, "one-hop", lam, seed)
        prof = cProfile.Profile(time.process_time)
        c = time.process_time()
        prof.enable()
        free = solve(p, "joint", time_limit_s=0)
        prof.disable()
        cpu = time.process_time() - c
        st = pstats.Stats(prof)
        c, w = time.process_time(), time.perf_counter()
        clocked = solve(p, "joint", time_limit_s=a.time_limit)
        row = {"devices": n, "lambda": lam, "seed": seed, "unbounded_objective": free.objective,
               "unbounded_cpu_s": cpu, "energy_search_cpu_s": cumulative(st, "energy_search"),
               "deadline_energy_cpu_s": cumulative(st, "deadline_energy"),
               "clocked_objective": clocked.objective, "clocked_lower_bound": clocked.lower_bound,
               "clocked_cpu_s": time.process_time() - c, "clocked_wall_s": time.perf_counter() - w,
               "clocked_over_unbounded": clocked.objective / free.objective}
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_results(a.out, rows, {"load_before": load, "time_limit_s": a.time_limit,
                                "note": "cProfile slows the unbounded run; compare ratios in one run"})


if __name__ == "__main__":
    main()
