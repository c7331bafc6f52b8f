"""Does the round's one model (solvers/model.py with power / frequency, solvers/model_tree.py for trees) improve or
certify `joint`'s plans within a further time budget? The bench's edges (experiments/solver_model_bench.py: one
edge of N devices x 6 modules, power in (0, nominal], f in [0.3, 1] x nominal; trees with 6 D2D neighbours): joint
with its 2 s limit, then the model from joint's plan with --budget s more (--cpu-clock: both in CPU s). Reports
both plans' objectives and certified gaps (the better plan and the larger bound of the two are both valid), wall
and CPU seconds.

    python experiments/solver_model_modes.py --sizes 4 8 12 --lams 0.05 0.5 5 --seeds 2 --budget 2 --cpu-clock \
        --out experiments/results/solver_model/modes.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.cpu_clock import cpu_deadlines, wall_clock  # noqa: E402
from experiments.solver_model_bench import instance  # noqa: E402
from solvers import solve  # noqa: E402
from solvers.model import certify  # noqa: E402
from solvers.model_tree import certify_tree  # noqa: E402


def run(sizes: list[int], lams: list[float], seeds: int, budget: float, modes: list[str]) -> list[dict]:
    rows = []
    for n in sizes:
        for mode in modes:
            for lam in lams:
                for seed in range(seeds):
                    p = instance(n, mode, lam, seed)
                    w, c = wall_clock(), time.process_time()
                    plan = solve(p, "joint", time_limit_s=2.0)
                    jw, jc = wall_clock() - w, time.process_time() - c
                    w, c = wall_clock(), time.process_time()
                    if mode == "tree":
                        got = certify_tree(p, plan.placement, plan.parent, time.perf_counter() + budget)
                    else:
                        got = certify(p, plan.placement, plan.relay, time.perf_counter() + budget, max_milps=50)
                    mw, mc = wall_clock() - w, time.process_time() - c
                    best = min(plan.objective, got.objective)
                    lower = max(plan.lower_bound, got.lower_bound)
                    row = {"devices": n, "mode": mode, "lambda": lam, "seed": seed,
                           "joint_objective": plan.objective, "joint_gap": 1 - plan.lower_bound / plan.objective,
                           "model_objective": got.objective, "model_gap": 1 - got.lower_bound / got.objective,
                           "model_milps": got.milps, "combined_gap": 1 - lower / best,
                           "plan_gain": 1 - best / plan.objective, "joint_wall_s": jw, "joint_cpu_s": jc,
                           "model_wall_s": mw, "model_cpu_s": mc, "load": os.getloadavg()[0]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| devices | mode | lambda | seed | joint gap | model gap | combined gap | plan gain | model MILPs | "
           "model wall / CPU s | load |", "|" + "---|" * 11]
    for r in rows:
        out.append(f"| {r['devices']} | {r['mode']} | {r['lambda']:g} | {r['seed']} | {100 * r['joint_gap']:.2f} % | "
                   f"{100 * r['model_gap']:.2f} % | {100 * r['combined_gap']:.2f} % | {100 * r['plan_gain']:.2f} % | "
                   f"{r['model_milps']} | {r['model_wall_s']:.2f} / {r['model_cpu_s']:.2f} | {r['load']:.1f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 12])
    ap.add_argument("--lams", type=float, nargs="+", default=[0.05, 0.5, 5.0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--modes", nargs="+", default=["power-frequency", "tree"])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--cpu-clock", action="store_true", help="time limits in CPU s (experiments/cpu_clock.py)")
    a = ap.parse_args()
    with cpu_deadlines(a.cpu_clock, scale_highs=a.cpu_clock):
        rows = run(a.sizes, a.lams, a.seeds, a.budget, a.modes)
    print(table(rows))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(rows, indent=1))
        a.out.with_suffix(".md").write_text(table(rows) + "\n")


if __name__ == "__main__":
    main()
