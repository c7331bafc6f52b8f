"""The joint level model (solvers/level_model.py) against its warm start (levels chosen after the full-size placement).

    .venv/bin/python experiments/solver_level_model.py --out experiments/results/solver_level_model.json
    .venv/bin/python experiments/solver_level_model.py --lams 0.05 0.5 5 --preset \
        --out experiments/results/solver_level_model_lambda.json

Rows: seeded random rounds with three levels (none, int8, topk: factors 1 / 0.26 / 0.12, distortions 0 / 0.01 /
0.4, a budget of 0.4 x devices / 4, i.e. about one top-k sender per four devices), at 6-12 devices over 2-3 edges
and 3-4 modules, plus (with --preset) the first round of the 40-device preset that experiments/compression.py runs
(experiment=hffm model=tiny, auto's measured levels). Each row: the warm start's objective (`joint`,
time_limit_s=0), the model's objective and certified gap at --limit seconds, and the CPU seconds of both; with
--lams, the same rows at each lambda (at lambda > 0 the warm start's bound is the relaxed round's latency-energy
bound and the model is solvers/level_energy.py's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.code_version import commit  # noqa: E402
from solvers import RoundProblem, random_instance, solve  # noqa: E402

NAMES = ("none", "int8", "topk")
FACTOR = np.array([1.0, 0.26, 0.12])
DISTORTION = np.array([0.0, 0.01, 0.4])
SIZES = [(6, 2, 3), (8, 2, 4), (12, 3, 3), (12, 3, 4)]


def offer(p: RoundProblem) -> RoundProblem:
    return dataclasses.replace(p, level_names=NAMES, level_factor=FACTOR, level_distortion=DISTORTION,
                               distortion_budget=0.4 * p.num_devices / 4)


def preset_problem() -> RoundProblem:
    from experiments.compression import BASE, compose
    from hffm.federation.loop import eligible_modules
    from hffm.federation.planning import build_problem
    from hffm.run import make_world

    dist = json.loads((Path(__file__).parent / "results/compression/distortion.json").read_text())["distortion"]
    cfg = compose([*BASE, "federation.compression=auto",
                   *[f"federation.compression_distortion.{c}={v:.6g}" for c, v in dist.items()]])
    world = make_world(cfg)
    channel = world.draw_channel(np.random.default_rng(0))
    parts = list(range(world.num_devices))
    return build_problem(world, channel, parts, {d: eligible_modules(world, d) for d in parts}, cfg.federation,
                         **cfg.solver.options())


def row(name: str, p: RoundProblem, limit: float) -> dict[str, Any]:
    c0 = time.process_time()
    warm = solve(p, "joint", time_limit_s=0)
    c1 = time.process_time()
    plan = solve(p, "joint", time_limit_s=limit)
    c2 = time.process_time()
    r = {"instance": name, "warm_objective": warm.objective, "warm_gap": warm.gap, "objective": plan.objective,
         "lower_bound": plan.lower_bound, "gap": plan.gap, "status": plan.status,
         "ratio": plan.objective / warm.objective, "warm_cpu_s": c1 - c0, "cpu_s": c2 - c1,
         "message": plan.message}
    print(f"{name}: {r['ratio']:.3f} of the warm start, gap {r['gap']:.1%} (warm {r['warm_gap']:.1%}), "
          f"{r['cpu_s']:.2f} CPU s; {plan.message}", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--limit", type=float, default=2.0)
    ap.add_argument("--preset", action="store_true", help="also the 40-device preset's first round (imports hffm)")
    ap.add_argument("--lams", type=float, nargs="+", default=[0.0],
                    help="lambda of every row (lambda > 0: the model of solvers/level_energy.py)")
    args = ap.parse_args()
    rows = []
    preset = preset_problem() if args.preset else None
    for lam in args.lams:
        for n, e, m in SIZES:
            for seed in range(args.seeds):
                p = offer(random_instance(n, e, m, seed, d2d_neighbours=2, lam=lam))
                rows.append({"lam": lam, **row(f"lambda {lam:g}, {n} devices, {e} edges, {m} modules, seed {seed}",
                                               p, args.limit)})
        if preset is not None:
            rows.append({"lam": lam, **row(f"lambda {lam:g}, 40-device preset, round 0",
                                           dataclasses.replace(preset, lam=lam), args.limit)})
    out = {"commit": commit(), "limit_s": args.limit, "load": os.getloadavg(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
