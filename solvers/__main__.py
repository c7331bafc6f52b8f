"""Command line: `python -m solvers solve INSTANCE.json -o PLAN.json [--method joint]`, `python -m solvers bench`,
`python -m solvers generate -n 40 -e 10 -m 5 --seed 0 -o INSTANCE.json`."""

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
    b.add_argument("--out", default="experiments/results/solver_bench")
    b.add_argument("--sizes", default="10,100,1000,10000")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--exact-sizes", default="4,8,12")
    b.add_argument("--exact-seeds", type=int, default=10)
    g = sub.add_parser("generate", help="write a random instance (the network model of docs/network-model.md)")
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
        bad = check_plan(problem, plan, allow_coverage=plan.fallback)
        print(json.dumps({k: plan.to_dict(problem)[k] for k in ("latency_s", "energy_j", "objective", "solver",
                                                                   "status", "solve_seconds", "fallback")}))
        return 1 if bad else 0
    if args.cmd == "generate":
        random_instance(args.devices, args.edges, args.modules, args.seed).save(args.out)
        return 0
    from solvers.bench import run_bench

    run_bench(args.out, [int(v) for v in args.sizes.split(",")], args.repeats,
              [int(v) for v in args.exact_sizes.split(",") if v], args.exact_seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
