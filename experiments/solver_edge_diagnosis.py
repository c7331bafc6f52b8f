"""lambda > 0 on one 8-device edge: is the certified gap the incumbent's or the bound's?

Per seeded instance (`solver_model_bench.instance(8, "one-hop", lam, seed)`, one edge x 6 modules): `joint` with the
round clock (`time_limit_s`, default 2) and unbounded (`time_limit_s=0`: every heuristic runs to its end), and the
least-energy column bound (`energy_columns.lambda_bound`) given a long time against the best plan found. The edges
are too large for the exact reference (10^4-10^5 cover products x 3,000-4,000 relay maps), so the optimum lies
between the best bound and the best plan. Writes experiments/results/solver_edge/diagnosis.{json,md}.

    python experiments/solver_edge_diagnosis.py [--seeds 4] [--lam 0.5] [--bound-s 20] [--time-limit 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from code_version import CODE_PATHS, commit  # noqa: E402
from solver_model_bench import instance  # noqa: E402

from solvers import solve  # noqa: E402
from solvers.energy_columns import lambda_bound  # noqa: E402


def timed(fn):  # (result, wall s, CPU s)
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--devices", type=int, default=8)
    ap.add_argument("--lam", type=float, default=0.5)
    ap.add_argument("--bound-s", type=float, default=20.0)
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--out", default="experiments/results/solver_edge")
    a = ap.parse_args()
    meta = {"machine": f"{platform.machine()} {os.cpu_count()}-CPU container (shared)",
            "load_before": os.getloadavg()[0], "commit": commit(CODE_PATHS), "devices": a.devices, "lambda": a.lam,
            "time_limit_s": a.time_limit, "bound_s": a.bound_s,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    rows = []
    for seed in range(a.seeds):
        p = instance(a.devices, "one-hop", a.lam, seed)
        clocked, cw, cc = timed(lambda p=p: solve(p, "joint", time_limit_s=a.time_limit))
        free, fw, fc = timed(lambda p=p: solve(p, "joint", time_limit_s=0))
        best = min(clocked.objective, free.objective)
        lb, bw, bc = timed(lambda p=p, best=best: lambda_bound(p, best, time.perf_counter() + a.bound_s, 0.01,
                                                               min_width=1e-3))
        bound = max(lb, clocked.lower_bound, free.lower_bound)
        row = {"seed": seed, "clocked_objective": clocked.objective, "clocked_lower_bound": clocked.lower_bound,
               "clocked_wall_s": cw, "clocked_cpu_s": cc, "unbounded_objective": free.objective,
               "unbounded_wall_s": fw, "unbounded_cpu_s": fc, "long_bound": lb, "long_bound_cpu_s": bc,
               "best_plan": best, "best_bound": bound,
               "clocked_over_best_plan": clocked.objective / best - 1, "best_plan_over_best_bound": best / bound - 1}
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta["load_after"] = os.getloadavg()[0]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnosis.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [json.dumps(meta), "", "| seed | clocked T+λE (CPU s) | its bound | unbounded T+λE (CPU s) | long bound "
             "(CPU s) | clocked / best plan | best plan / best bound |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['clocked_objective']:.3f} ({r['clocked_cpu_s']:.1f}) | "
                     f"{r['clocked_lower_bound']:.3f} | {r['unbounded_objective']:.3f} ({r['unbounded_cpu_s']:.1f}) | "
                     f"{r['long_bound']:.3f} ({r['long_bound_cpu_s']:.1f}) | "
                     f"+{100 * r['clocked_over_best_plan']:.1f}% | +{100 * r['best_plan_over_best_bound']:.1f}% |")
    (out / "diagnosis.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
