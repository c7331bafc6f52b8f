"""Coverage of `joint` on aggregation-tree instances: certified gap and gap to the exact tree reference.

Layouts (tree_aggregation, 4 modules, 3 D2D neighbours per device):
  - `edge`:     one edge of N devices (the model's hard case: 8 and 12 devices are beyond the search's enumeration);
  - `clusters`: N / 4 edges of 4 devices (every edge enumerated by the search; the model works at lambda > 0 across
                edges, which share T);
  - `model`:    the `edge` instances of N <= 8 with the search's enumeration off (enum_max=0): the model alone
                improves the heuristic plan and certifies it.
N in --sizes, lambda in {0, 0.5, 5}, seeds 0..--seeds-1, `solve(p, "joint", time_limit_s=L)` for L in --time-limits
(the limit is wall-clock: on a loaded machine the solver gets a fraction of a core, so CPU seconds are reported too).
The reference (solvers/reference/trees.py, enumeration) runs where it can (at most 200,000 choices per edge,
8 devices); elsewhere the gap to the optimum is n/a and only the certified gap speaks.
Writes experiments/results/solver_model/coverage.{json,md}.

    python experiments/solver_coverage.py [--sizes 4,8,12] [--seeds 3] [--time-limits 2,10] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from solvers import check_plan, random_instance, solve
from solvers.errors import TooLargeError
from solvers.reference import reference_trees

LAMS = (0.0, 0.5, 5.0)
LAYOUTS = ("edge", "clusters", "model")


def instance(n: int, layout: str, lam: float, seed: int):
    edges = max(1, n // 4) if layout == "clusters" else 1
    return dataclasses.replace(random_instance(n, edges, 4, seed=seed, lam=lam), tree_aggregation=True)


def run(sizes: list[int], seeds: int, limits: list[float], save=None) -> list[dict]:
    rows: list[dict] = []
    for layout, time_limit in [(lay, t) for t in limits for lay in LAYOUTS]:
        for n in sizes:
            if layout == "model" and n > 8:
                continue
            for lam in LAMS:
                for seed in range(seeds):
                    if layout == "clusters" and time_limit != limits[0]:
                        continue  # every edge enumerated: the limit does not matter
                    p = instance(n, layout, lam, seed)
                    opts = {"enum_max": 0} if layout == "model" else {}
                    w, c = time.perf_counter(), time.process_time()
                    plan = solve(p, "joint", time_limit_s=time_limit, **opts)
                    row = {"layout": layout, "time_limit_s": time_limit, "devices": n, "edges": p.num_edges,
                           "lambda": lam, "seed": seed,
                           "objective": plan.objective, "lower_bound": plan.lower_bound,
                           "certified_gap": plan.gap, "status": plan.status, "feasible": check_plan(p, plan) == [],
                           "wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c}
                    if n <= 8:
                        try:
                            ref = reference_trees(p)
                            row["optimum"] = ref.objective
                            row["gap_to_optimum"] = plan.objective / ref.objective - 1
                            row["bound_valid"] = bool(plan.lower_bound <= ref.objective * (1 + 1e-6))
                        except TooLargeError:
                            pass
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if save is not None:  # partial results survive an interrupted run
                        save(rows)
    return rows


def _pct(v: list[float]) -> str:
    return f"{100 * float(np.median(v)):.2f}% / {100 * max(v):.2f}%" if v else "n/a"


def table(rows: list[dict]) -> str:
    out = ["| layout | limit s | devices | edges | lambda | instances | certified gap median / max | gap to optimum "
           "median / max (instances) | proven <= 1 % | wall s median / max | CPU s median / max | "
           "all feasible, bound valid |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["layout"], r["time_limit_s"], r["devices"], r["lambda"]) for r in rows},
                  key=lambda k: (LAYOUTS.index(k[0]), k[1], k[2], k[3]))
    for lay, lim, n, lam in keys:
        cell = [r for r in rows if (r["layout"], r["time_limit_s"], r["devices"], r["lambda"]) == (lay, lim, n, lam)]
        ref = [r["gap_to_optimum"] for r in cell if "gap_to_optimum" in r]
        wall, cpu = [r["wall_s"] for r in cell], [r["cpu_s"] for r in cell]
        ok = all(r["feasible"] and r.get("bound_valid", True) for r in cell)
        out.append(f"| {lay} | {lim:g} | {n} | {cell[0]['edges']} | {lam:g} | {len(cell)} | "
                   f"{_pct([r['certified_gap'] for r in cell])} | "
                   f"{_pct(ref) + f' ({len(ref)})' if ref else 'n/a'} | "
                   f"{sum(r['status'] == 'optimal' for r in cell)}/{len(cell)} | "
                   f"{np.median(wall):.2f} / {max(wall):.2f} | {np.median(cpu):.2f} / {max(cpu):.2f} | {ok} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,8,12")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--time-limits", default="2,10")
    ap.add_argument("--out", default="experiments/results/solver_model")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from code_version import CODE_PATHS, commit

    meta = {"machine": f"{platform.machine()} {os.cpu_count()}-CPU container", "commit": commit(CODE_PATHS),
            "load_before": os.getloadavg()[0],
            "command": f"python experiments/solver_coverage.py --sizes {args.sizes} --seeds {args.seeds} "
                       f"--time-limits {args.time_limits}"}

    def save(rows: list[dict]) -> None:
        body = {**meta, "load_after": os.getloadavg()[0], "rows": rows}
        (out / "coverage.json").write_text(json.dumps(body, indent=1) + "\n")
        (out / "coverage.md").write_text(
            f"# Tree coverage of joint\n\n`{meta['command']}` at commit {meta['commit']} on a {meta['machine']} "
            f"(1-minute load {meta['load_before']:.1f} before, {body['load_after']:.1f} after: wall times swing with "
            f"it; CPU s beside).\n\n{table(rows)}\n")

    rows = run([int(s) for s in args.sizes.split(",")], args.seeds, [float(t) for t in args.time_limits.split(",")],
               save)
    save(rows)
    print(table(rows))


if __name__ == "__main__":
    main()
