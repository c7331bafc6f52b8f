"""A/B of the LP-rounded plans on large edges (solvers/lp_round.py, issue 18 item 4) at scale, lambda = 0.

The instances of experiments/solver_scale_gap.py (`random_instance(N, N / 100, M, seed)`, seed = 1000 N + s, M in
3..10 from the seed, default 2 s limit and 1 % gap; --raw-seeds: seed = s, as experiments/solver_lp_threshold.py).
A: `improve.LARGE_EDGE_SHARE = 0` (no rounding: the code before it), B: the default share. A and B alternate per
instance in one process after a warm-up solve, so both see the same load. Per run: the objective, the certified
bound and gap, status, CPU and wall s, the 1-minute load before it, and `check_plan`. --cpu-clock: the solver's
deadlines read this process's CPU time (time.perf_counter patched before the import), so that a loaded machine does
not cut the rounding off; without it the deadlines are wall clock, as in production.

Run: python experiments/solver_lp_round_ab.py [--sizes 1000,10000] [--seeds 0,1,2] [--raw-seeds] [--cpu-clock]
     [--out experiments/results/solver_model/s18s2/lp_round_ab.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from code_version import CODE_PATHS, commit
from cpu_clock import cpu_deadlines, wall_clock

OUT = Path(__file__).resolve().parent / "results" / "solver_model" / "s18s2" / "lp_round_ab.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cpu-clock", action="store_true")
    ap.add_argument("--raw-seeds", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    with cpu_deadlines(args.cpu_clock):
        run(args)


def run(args: argparse.Namespace) -> None:
    wall = wall_clock
    if "solvers" in sys.modules:
        raise RuntimeError("solvers was imported before the clock was set")
    import numpy as np

    import solvers.improve as improve
    from solvers import check_plan, random_instance, solve

    share_b = improve.LARGE_EDGE_SHARE
    solve(random_instance(200, 2, 4, 0), "joint")  # warm-up: imports and first-call costs
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        for s in (int(s) for s in args.seeds.split(",")):
            seed = s if args.raw_seeds else 1000 * n + s
            modules = int(np.random.default_rng(seed).integers(3, 11))
            p = random_instance(n, max(1, round(n / 100)), modules, seed)
            for side, share in (("A", 0.0), ("B", share_b)):
                improve.LARGE_EDGE_SHARE = share
                load = os.getloadavg()[0]
                c0, w0 = time.process_time(), wall()
                plan = solve(p, "joint")
                cpu, w = time.process_time() - c0, wall() - w0
                rows.append({"devices": n, "seed": seed, "modules": modules, "side": side, "share": share,
                             "objective": plan.objective, "lower_bound": plan.lower_bound, "gap": plan.gap,
                             "status": plan.status, "cpu_s": cpu, "wall_s": w, "load_1min": load,
                             "feasible": not plan.fallback and check_plan(p, plan) == []})
                print(json.dumps(rows[-1]), flush=True)
    improve.LARGE_EDGE_SHARE = share_b
    summary = []
    for n in sorted({r["devices"] for r in rows}):
        for side in ("A", "B"):
            sel = [r for r in rows if r["devices"] == n and r["side"] == side]
            summary.append({"devices": n, "side": side, "median_gap": statistics.median(r["gap"] for r in sel),
                            "max_gap": max(r["gap"] for r in sel),
                            "median_cpu_s": statistics.median(r["cpu_s"] for r in sel),
                            "median_wall_s": statistics.median(r["wall_s"] for r in sel),
                            "load": statistics.median(r["load_1min"] for r in sel),
                            "all_feasible": all(r["feasible"] for r in sel)})
            print(json.dumps(summary[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs",
        "commit": commit(CODE_PATHS), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu_clock": args.cpu_clock, "raw_seeds": args.raw_seeds, "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
