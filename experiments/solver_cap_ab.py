"""The fixed-power bound's latency search with and without its cap (solvers/bounds.py `LATENCY_CAP`), plans held fixed.

solver_ab.py compares two checkouts under a clock, so at 2 s the one-hop plans differ between its sides (they depend
on timing, solvers/README.md "Targets") and so do the bounds, which start from the plan's latency and objective.
Here each instance of experiments/solver_model_bench.py is solved once under the deterministic work budget
(`solve(p, "joint", time_limit_s=T, budget="work")`: same plan, same bound clock at every run), once with the cap
and once without, in one process, alternating which goes first: the plan is the same on both sides and only the
bound differs. Per row: objective (both), lower bound and certified gap of each side, CPU s of each solve.

    python experiments/solver_cap_ab.py [--modes one-hop,aggregates] [--sizes 8,12] [--lams 0.05,0.5,5,50]
        [--seeds 2] [--time-limit 2] --out experiments/results/solver_model/s22pf/cap_work.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from code_version import CODE_PATHS, commit
from solver_model_bench import instance

import solvers.bounds as bounds
from solvers import solve


def one(p: object, cap: bool, limit: float) -> dict:
    bounds.LATENCY_CAP = cap
    c = time.process_time()
    plan = solve(p, "joint", time_limit_s=limit, budget="work")  # type: ignore[arg-type]
    return {"objective": plan.objective, "lower_bound": plan.lower_bound, "gap": plan.gap,
            "cpu_s": time.process_time() - c, "load_1min": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", default="one-hop,aggregates")
    ap.add_argument("--sizes", default="8,12")
    ap.add_argument("--lams", default="0.05,0.5,5,50")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    solve(instance(4, "one-hop", 0.5, 99), "joint", time_limit_s=0.5)  # warm: lazy imports
    rows = []
    k = 0
    for mode in a.modes.split(","):
        for n in (int(s) for s in a.sizes.split(",")):
            for lam in (float(s) for s in a.lams.split(",")):
                for seed in range(a.seeds):
                    p = instance(n, mode, lam, seed)
                    order = (False, True) if k % 2 == 0 else (True, False)
                    got = {cap: one(p, cap, a.time_limit) for cap in order}
                    k += 1
                    row = {"mode": mode, "devices": n, "lambda": lam, "seed": seed, "off": got[False], "on": got[True]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = []
    for mode in a.modes.split(","):
        for n in (int(s) for s in a.sizes.split(",")):
            rs = [r for r in rows if r["mode"] == mode and r["devices"] == n]
            off, on = [100 * r["off"]["gap"] for r in rs], [100 * r["on"]["gap"] for r in rs]
            summary.append({"mode": mode, "devices": n, "median_gap_off": statistics.median(off),
                            "median_gap_on": statistics.median(on), "worst_off": max(off), "worst_on": max(on),
                            "same_plan": sum(r["off"]["objective"] == r["on"]["objective"] for r in rs),
                            "lower_on_off": [r["on"]["lower_bound"] / r["off"]["lower_bound"] for r in rs]})
            print(json.dumps(summary[-1]), flush=True)
    meta = {"commit": commit(CODE_PATHS), "machine": f"{platform.machine()} {os.cpu_count()}-CPU container (shared)",
            "time_limit_s": a.time_limit, "budget": "work", "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
