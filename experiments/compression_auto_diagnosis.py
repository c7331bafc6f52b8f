"""Why `auto` does or does not dominate the fixed levels: one round's plan per level, on the 40-device preset.

    .venv/bin/python experiments/compression_auto_diagnosis.py --out experiments/results/compression/diagnosis.json

The accuracy runs (experiments/compression_variants.py) mix the plan with learning noise; this looks at the plans
alone. For --draws channel draws of the preset (`experiment=hffm model=tiny`, 10 edges x 4 devices, the runs'
base overrides) it builds the round's problem as hffm does (hffm.federation.planning.build_problem) for every
fixed level (none, fp16, int8, topk: the payloads shrunk by the codec) and for `auto` (the levels offered with
the distortions of --distortion, budget --budgets x devices), and solves it with `joint` at --limit seconds at each
--lams. Per plan: latency, energy, objective, the distortion spent against the budget, the levels chosen (how many
devices at each), and wall and CPU seconds of the solve (the 2 s limit is wall time; CPU past it is overrun).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from code_version import CODE_PATHS, commit  # noqa: E402
from compression import BASE, compose  # noqa: E402

FIXED = ("none", "fp16", "int8", "topk")


def problem(level: str, lam: float, draw: int, dist: dict[str, float], budget: float):  # noqa: ANN201
    from hffm.federation.loop import eligible_modules
    from hffm.federation.planning import build_problem
    from hffm.run import make_world

    extra = [f"federation.compression={level}", f"solver.lam={lam}"]
    if level == "auto":
        extra += [*(f"federation.compression_distortion.{c}={v:.6g}" for c, v in dist.items()),
                  f"federation.compression_budget={budget}"]
    cfg = compose([*BASE, *extra])
    world = make_world(cfg)
    channel = world.draw_channel(np.random.default_rng(draw))
    parts = list(range(world.num_devices))
    return build_problem(world, channel, parts, {d: eligible_modules(world, d) for d in parts}, cfg.federation,
                         **cfg.solver.options())


def solve_row(p: Any, limit: float) -> dict[str, Any]:
    from solvers import solve

    w, c = time.perf_counter(), time.process_time()
    plan = solve(p, "joint", time_limit_s=limit)
    row = {"latency_s": plan.latency_s, "energy_j": plan.energy_j, "objective": plan.objective,
           "lower_bound": plan.lower_bound, "gap": plan.gap, "wall_s": time.perf_counter() - w,
           "cpu_s": time.process_time() - c, "message": plan.message}
    if plan.level is not None and p.level_names:
        sends = (plan.placement.astype(float) @ p.module_bytes) > 0
        lv = np.asarray(plan.level)[sends]
        row["levels"] = {n: int((lv == i).sum()) for i, n in enumerate(p.level_names)}
        row["distortion"] = float(p.level_distortion[lv].sum())
        row["budget"] = float(p.distortion_budget) if p.distortion_budget is not None else None
        # the levels on the slowest edge (the one that decides the round's latency) and elsewhere
        edge = np.asarray(p.device_edge)
        from solvers import evaluate

        cost = evaluate(p.with_levels(plan.level), plan.placement, plan.relay, plan.bandwidth_hz)
        slow = int(np.argmax(cost.edge_latency_s))
        on = sends & (edge == slow)
        row["levels_slowest_edge"] = {n: int((np.asarray(plan.level)[on] == i).sum())
                                      for i, n in enumerate(p.level_names)}
        row["edge_latency_s"] = [float(v) for v in cost.edge_latency_s]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--lams", type=float, nargs="+", default=[0.0, 0.1])
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.05])
    ap.add_argument("--limit", type=float, default=2.0)
    ap.add_argument("--distortion", type=Path,
                    default=Path(__file__).parent / "results/compression/r16/distortion.json")
    args = ap.parse_args()
    dist = json.loads(args.distortion.read_text())["distortion"]
    rows = []
    for lam in args.lams:
        for draw in range(args.draws):
            names = [*((f, f, 0.0) for f in FIXED), *((f"auto@{b:g}", "auto", b) for b in args.budgets)]
            for name, level, budget in names:
                r = {"lam": lam, "draw": draw, "level": name,
                     **solve_row(problem(level, lam, draw, dist, budget), args.limit)}
                rows.append(r)
                print(f"lam {lam:g} draw {draw} {name}: latency {r['latency_s']:.4f} s, energy {r['energy_j']:.3f} J, "
                      f"objective {r['objective']:.4f}, gap {r['gap']:.1%}, {r['wall_s']:.2f} s wall, "
                      f"{r['cpu_s']:.2f} CPU s; {r.get('levels', '')} slowest {r.get('levels_slowest_edge', '')} "
                      f"distortion {r.get('distortion', 0):.3g}/{r.get('budget') or 0:.3g}", flush=True)
    out = {"commit": commit(CODE_PATHS), "load": os.getloadavg(), "limit_s": args.limit, "rows": rows,
           "note": "2-core shared container; the limit is wall time, so plans move a little with the load"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
