"""Sizes the bench never runs, against the exact references: validity of the bound and the gap to the optimum.

One edge of N devices x M modules (N in --sizes, M in --modules), the bench's four modes (one-hop,
relay_aggregates, trees, power / frequency) and lambdas, `solve(p, "joint", time_limit_s=T)`. Where a reference
runs within --max-choices (exact.exact_solve for one-hop / aggregates, reference_trees for trees,
reference_power_frequency for power / frequency), the plan's gap to the optimum and two checks: lower_bound <=
optimum (1 + 1e-6) and objective >= optimum (1 - 1e-6); a failure is printed as VIOLATION. --cpu-clock: the
solver's deadlines read CPU seconds (and HiGHS's wall limits are scaled by the process's wall / CPU ratio), as
experiments/solver_ab.py does, so a loaded machine does not starve the solve. Writes DIR/unseen.{json,md}.

    python experiments/solver_unseen.py --sizes 5,6,7,10 --out experiments/results/solver_model/s27us [--modules 6]
        [--seeds 2] [--lams 0,0.05,0.5,5,50] [--modes one-hop,aggregates,tree,power-frequency] [--cpu-clock]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from code_version import CODE_PATHS, commit
from solver_model_bench import instance

from solvers import solve
from solvers.edgebatch import EdgeView
from solvers.errors import TooLargeError
from solvers.exact import exact_solve, placements_upto, relay_maps
from solvers.reference import reference_power_frequency, reference_trees
from solvers.tree import all_trees

LAMS = (0.0, 0.05, 0.5, 5.0, 50.0)
MODES = ("one-hop", "aggregates", "tree", "power-frequency")
WALL = time.perf_counter


def choices(p, mode: str, cap: int) -> int | None:
    """The reference's discrete choices on the (one) edge, None when over cap."""
    v = EdgeView.of(p, 0)
    if mode == "tree":
        if v.n > 8:
            return None
        trees = all_trees(v.rate, limit=cap, capacity=p.relay_capacity)
        if trees is None:
            return None
        pl = placements_upto(v, cap // max(len(trees), 1))
        return None if pl is None else len(pl) * len(trees)
    maps = relay_maps(v.rate, p.relay_capacity)
    pl = placements_upto(v, cap // max(len(maps), 1))
    return None if pl is None or len(pl) * len(maps) > cap else len(pl) * len(maps)


def reference(p, mode: str, caps: list[int]) -> float | None:
    """The exact optimum, or None where the reference is over its size."""
    cap = caps[2] if mode == "power-frequency" else caps[1] if mode == "tree" else caps[0]
    try:
        k = choices(p, mode, cap)
        if k is None:
            return None
        if mode == "tree":
            return reference_trees(p, max_choices=cap).objective
        if mode == "power-frequency":
            return reference_power_frequency(p, max_choices=cap).objective
        return exact_solve(p, max_candidates=cap).objective
    except TooLargeError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5,6,7,10")
    ap.add_argument("--modules", default="6")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--lams", default=",".join(f"{x:g}" for x in LAMS))
    ap.add_argument("--max-choices", default="400000,100000,20000",
                    help="the references' size limits (choices): exact_solve, reference_trees, power / frequency")
    ap.add_argument("--cpu-clock", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cpu_clock:
        time.perf_counter = time.process_time  # the solver's deadlines in CPU s
        from highspy._core import _Highs

        _set, w0, c0 = _Highs.setOptionValue, WALL(), time.process_time()

        def _scaled(self, key, value):  # HiGHS's own (wall) time limits x the wall / CPU ratio so far
            if key == "time_limit" and value < 1e20:
                value = float(value) * min(max((WALL() - w0) / max(time.process_time() - c0, 1e-3), 1.0), 20.0)
            return _set(self, key, value)

        _Highs.setOptionValue = _scaled
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"load_before": os.getloadavg()[0], "commit": commit(CODE_PATHS), "cpu_clock": a.cpu_clock,
            "time_limit_s": a.time_limit, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    solve(instance(4, "one-hop", 0.5, 99), "joint", time_limit_s=0.5)  # warm the lazy imports
    rows: list[dict] = []
    for n in (int(s) for s in a.sizes.split(",")):
        for m in (int(s) for s in a.modules.split(",")):
            for mode in a.modes.split(","):
                for lam in (float(x) for x in a.lams.split(",")):
                    for seed in range(a.seeds):
                        p = instance(n, mode, lam, seed, modules=m)
                        w, c = WALL(), time.process_time()
                        plan = solve(p, "joint", time_limit_s=a.time_limit)
                        row = {"devices": n, "modules": m, "mode": mode, "lambda": lam, "seed": seed,
                               "objective": plan.objective, "lower_bound": plan.lower_bound,
                               "certified_gap": plan.gap, "status": plan.status, "wall_s": WALL() - w,
                               "cpu_s": time.process_time() - c, "load": os.getloadavg()[0]}
                        w = WALL()
                        opt = reference(p, mode, [int(x) for x in a.max_choices.split(",")])
                        row["ref_s"] = WALL() - w
                        if opt is not None:
                            row["optimum"] = float(opt)
                            row["gap_to_optimum"] = float(plan.objective / opt - 1)
                            row["bound_valid"] = bool(plan.lower_bound <= opt * (1 + 1e-6))
                            row["objective_valid"] = bool(plan.objective >= opt * (1 - 1e-6))
                            if not (row["bound_valid"] and row["objective_valid"]):
                                print("VIOLATION", flush=True)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                        meta["load_now"] = os.getloadavg()[0]
                        (out / "unseen.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "unseen.md").write_text(f"{json.dumps(meta)}\n\n{table(rows)}\n")
    print(table(rows))


def table(rows: list[dict]) -> str:
    """Per (devices, modules, mode, lambda): certified <= 1 %, gaps, exact gap, validity, times."""
    out = ["| devices | modules | mode | lambda | n | certified <= 1 % | median / max certified gap | "
           "max gap to optimum (refs run) | valid | max wall s | max CPU s |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["devices"], r["modules"], MODES.index(r["mode"]), r["lambda"]) for r in rows})
    for n, m, mi, lam in keys:
        cell = [r for r in rows
                if (r["devices"], r["modules"], MODES.index(r["mode"]), r["lambda"]) == (n, m, mi, lam)]
        gaps = np.array([r["certified_gap"] for r in cell])
        ex = [r["gap_to_optimum"] for r in cell if "gap_to_optimum" in r]
        ok = all(r.get("bound_valid", True) and r.get("objective_valid", True) for r in cell)
        out.append(f"| {n} | {m} | {MODES[mi]} | {lam:g} | {len(cell)} | {int(np.sum(gaps <= 0.01))} | "
                   f"{100 * np.median(gaps):.2f}% / {100 * gaps.max():.2f}% | "
                   f"{f'{100 * max(ex):.3f}% ({len(ex)})' if ex else 'n/a'} | {'yes' if ok else 'NO'} | "
                   f"{max(r['wall_s'] for r in cell):.2f} | {max(r['cpu_s'] for r in cell):.2f} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
