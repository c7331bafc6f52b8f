"""Memory-tight instances: every device's memory holds only part of its eligible modules, so the greedy cover runs
out of memory on many edges and the placement-repair MILP (solvers/milp.py, now with a time limit) decides them.

`random_instance(N, N // 100, 6, seed, memory_fraction=(lo, hi))` at lambda 0 and 0.5; per case the CPU and wall
seconds of `solve(p, "joint")`, its status, whether the plan passes `check_plan`, and its certified gap. The
machine is shared (2 cores): CPU seconds are reported beside wall seconds, with the 1-minute load average.

Run: python experiments/solver_memory_tight.py [--devices 1000] [--out DIR] (writes
experiments/results/solver_memory_tight/ unless --out names another folder: a loaded trial run need not overwrite the
committed quiet one). gap: `plan.gap` (1 - lower_bound / objective), None without a bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from code_version import CODE_PATHS, commit

from solvers import check_plan, random_instance, solve

OUT = Path(__file__).resolve().parent / "results" / "solver_memory_tight"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT, help="folder for memory_tight_<devices>.json")
    args = ap.parse_args()
    code = commit(CODE_PATHS)  # before the run: the code it ran
    # a round loop's process has its imports done: the first case's wall time should not carry them (`solve` loads
    # them before its clock starts, so its solve_s never does)
    solve(random_instance(200, 2, 6, 0, lam=0.5, relay_aggregates=True, memory_fraction=(0.5, 0.7)), "joint",
          time_limit_s=0.2)
    rows = []
    for seed in range(args.seeds):
        for frac in ((0.35, 0.5), (0.5, 0.7)):
            for lam in (0.0, 0.5):
                p = random_instance(args.devices, max(1, args.devices // 100), 6, seed, lam=lam, memory_fraction=frac)
                load = os.getloadavg()[0]
                c0, w0 = time.process_time(), time.perf_counter()
                plan = solve(p, "joint")
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                rows.append({"devices": args.devices, "seed": seed, "memory_fraction": frac, "lambda": lam,
                             "cpu_s": cpu, "wall_s": wall, "solve_s": plan.solve_seconds, "load_1min": load,
                             "status": plan.status,
                             "fallback": plan.fallback, "feasible": check_plan(p, plan) == [],
                             "gap": plan.gap if plan.lower_bound > 0 else None})
                print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"memory_tight_{args.devices}.json").write_text(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs", "commit": code,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "gap": "1 - lower_bound / objective",
        "rows": rows},
        indent=1))


if __name__ == "__main__":
    main()
