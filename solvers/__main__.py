"""Command line: `python -m solvers solve INSTANCE.json -o PLAN.json [--method joint]`, `python -m solvers bench`,
`python -m solvers generate -n 40 -e 10 -m 5 --seed 0 -o INSTANCE.json`,
`python -m solvers pareto INSTANCE.json -o OUT_DIR` (latency-energy front: front.json + front.png)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from solvers.api import METHODS, solve
from solvers.check import check_plan
from solvers.generate import random_instance
from solvers.instance import RoundProblem


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m solvers", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("solve", help="solve one instance file")
    s.add_argument("instance")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--method", default="joint", choices=sorted(METHODS))
    b = sub.add_parser("bench", help="benchmark the methods on random instances")
    b.add_argument("--out", default="solver_bench", help="output folder (the committed results live in "
                   "experiments/results/solver_bench: name it to overwrite them)")
    b.add_argument("--sizes", default="10,100,1000,10000")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--exact-sizes", default="4,8,12")
    b.add_argument("--exact-seeds", type=int, default=10)
    b.add_argument("--lams", default="0,0.05,0.5,5,10", help="lambdas of the exact suite")
    f = sub.add_parser("pareto", help="sweep lambda: the latency-energy front of one instance")
    f.add_argument("instance")
    f.add_argument("-o", "--out", default="pareto")
    f.add_argument("--lams", default="", help="comma-separated lambdas (default: 0 and 13 around T0/E0)")
    g = sub.add_parser("generate", help="write a random instance (design.md network model)")
    g.add_argument("-n", "--devices", type=int, default=40)
    g.add_argument("-e", "--edges", type=int, default=10)
    g.add_argument("-m", "--modules", type=int, default=5)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("-o", "--out", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "solve":
        try:
            problem = RoundProblem.load(args.instance)
        except (OSError, ValueError) as exc:
            print(f"error: {args.instance}: {exc}", file=sys.stderr)
            return 2
        plan = solve(problem, args.method)
        plan.save(args.out, problem)
        # solve() already ran check_plan on every plan it returns as solved (else it falls back): check fallbacks only
        bad = check_plan(problem, plan, allow_coverage=True) if plan.fallback else []
        print(json.dumps({k: getattr(plan, k) for k in ("latency_s", "energy_j", "objective", "lower_bound", "solver",
                                                        "status", "solve_seconds", "fallback")}))
        return 1 if bad else 0
    if args.cmd == "pareto":
        from solvers.pareto import sweep, write_front

        try:
            problem = RoundProblem.load(args.instance)
        except (OSError, ValueError) as exc:
            print(f"error: {args.instance}: {exc}", file=sys.stderr)
            return 2
        result = sweep(problem, [float(v) for v in args.lams.split(",") if v] or None)
        js, png = write_front(result, args.out, title=str(args.instance))
        print(json.dumps({"front_points": len(result["front"]), "json": str(js), "png": str(png)}))
        return 0
    if args.cmd == "generate":
        random_instance(args.devices, args.edges, args.modules, args.seed).save(args.out)
        return 0
    from solvers.bench import run_bench

    run_bench(args.out, [int(v) for v in args.sizes.split(",")], args.repeats,
              [int(v) for v in args.exact_sizes.split(",") if v], args.exact_seeds,
              tuple(float(v) for v in args.lams.split(",") if v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
