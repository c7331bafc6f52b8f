"""Command line: `python -m solvers solve INSTANCE.json -o PLAN.json [--method joint]`, `python -m solvers bench`,
`python -m solvers generate -n 40 -e 10 -m 5 --seed 0 -o INSTANCE.json`,
`python -m solvers pareto INSTANCE.json -o OUT_DIR` (latency-energy front: front.json + front.png).

Bad input (a file, a field, an option) is one line on stderr naming it, and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

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
    s.add_argument("--workers", type=int, default=None,
                   help="joint: processes over independent edges at lambda = 0 (default: 2 from 20,000 devices on, "
                        "else 1); the plan is the same for any value")
    s.add_argument("--layout", default="columns", choices=("columns", "records"),
                   help="plan JSON: lists in device order (default, compact) or objects keyed by device id")
    b = sub.add_parser("bench", help="benchmark the methods on random instances")
    b.add_argument("--out", default=None,
                   help="results folder (default: a new outputs/solver_bench/<time>; never overwrites by default)")
    b.add_argument("--sizes", default="10,100,1000,10000")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--exact-sizes", default="4,8,12")
    b.add_argument("--exact-seeds", type=int, default=10)
    b.add_argument("--lams", default="0,0.05,0.5,5,10", help="lambdas of the exact suite")
    f = sub.add_parser("pareto", help="sweep lambda: the latency-energy front of one instance")
    f.add_argument("instance")
    f.add_argument("-o", "--out", default="pareto")
    f.add_argument("--lams", default="", help="comma-separated lambdas (default: 0 and 13 around T0/E0)")
    g = sub.add_parser("generate", help="write a random instance (the network model of docs/network-model.md)")
    g.add_argument("-n", "--devices", type=int, default=40)
    g.add_argument("-e", "--edges", type=int, default=10)
    g.add_argument("-m", "--modules", type=int, default=5)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("-o", "--out", required=True)
    g.add_argument("--layout", default="columns", choices=("columns", "records"),
                   help="instance JSON: one list per field (default, compact) or one object per device")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd in ("solve", "generate"):
        why = _writable(args.out, "-o/--out")
        if why:
            return _fail(why)
    if args.cmd == "solve":
        t0 = time.perf_counter()
        try:
            problem = RoundProblem.load(args.instance)
        except (OSError, ValueError, RecursionError) as exc:
            return _fail(f"{args.instance}: {_one_line(exc)}")
        method = METHODS[args.method]
        why = method.refusal(problem)
        if why:
            return _fail(f"--method {args.method}: {why}")
        if args.workers is not None and (args.workers < 1 or "workers" not in method.options_for(problem)):
            takes = [m.name for m in METHODS.values() if "workers" in m.options_for(problem)]
            return _fail(f"--workers {args.workers}: an integer >= 1, for --method {' or '.join(takes)} only")
        t1 = time.perf_counter()
        try:
            plan = solve(problem, args.method, **({} if args.workers is None else {"workers": args.workers}))
        except ValueError as exc:  # the exact reference refuses an instance too large for it
            return _fail(f"--method {args.method}: {_one_line(exc)}")
        t2 = time.perf_counter()
        try:
            plan.save(args.out, problem, layout=args.layout)
        except OSError as exc:
            return _fail(f"-o/--out {args.out}: cannot write the plan ({_one_line(exc)})")
        t3 = time.perf_counter()
        # solve() already ran check_plan on every plan it returns as solved (else it falls back): check fallbacks only
        bad = check_plan(problem, plan, allow_coverage=True, check_cost=plan.status != "infeasible") \
            if plan.fallback else []
        seconds = {"read": t1 - t0, "solve": plan.solve_seconds, "check": t2 - t1 - plan.solve_seconds,
                   "write": t3 - t2}  # check: solve()'s feasibility check of the plan (and its bookkeeping)
        print(json.dumps({**{k: getattr(plan, k) for k in ("latency_s", "energy_j", "objective", "lower_bound",
                                                            "solver", "status", "solve_seconds", "fallback")},
                          "seconds": seconds}))
        if plan.status == "infeasible":  # the plan file is written (null costs), the exit code says it is no plan
            return _fail(f"{args.instance}: infeasible: {_one_line(Exception(plan.message))}")
        return 1 if bad else 0
    if args.cmd == "pareto":
        from solvers.pareto import sweep, write_front

        try:
            problem = RoundProblem.load(args.instance)
            lams = [float(v) for v in args.lams.split(",") if v] or None
        except (OSError, ValueError, RecursionError) as exc:
            return _fail(f"{args.instance} / --lams: {_one_line(exc)}")
        result = sweep(problem, lams)
        js, png = write_front(result, args.out, title=str(args.instance))
        print(json.dumps({"front_points": len(result["front"]), "json": str(js), "png": str(png)}))
        return 0
    if args.cmd == "generate":
        try:
            instance = random_instance(args.devices, args.edges, args.modules, args.seed)
        except ValueError as exc:
            return _fail(f"generate: {_one_line(exc)}")
        try:
            instance.save(args.out, layout=args.layout)
        except OSError as exc:
            return _fail(f"-o/--out {args.out}: cannot write the instance ({_one_line(exc)})")
        return 0
    from solvers.bench import run_bench

    try:
        sizes = [int(v) for v in args.sizes.split(",")]
        exact_sizes = [int(v) for v in args.exact_sizes.split(",") if v]
        bench_lams = tuple(float(v) for v in args.lams.split(",") if v)
    except ValueError:
        return _fail(f"--sizes {args.sizes!r} / --exact-sizes {args.exact_sizes!r} / --lams {args.lams!r}: "
                     "comma-separated numbers, e.g. --sizes 10,100")
    out = args.out or f"outputs/solver_bench/{time.strftime('%Y-%m-%d_%H-%M-%S')}_{time.time_ns() % 10**9:09d}"
    print(f"writing to {out}", file=sys.stderr)
    run_bench(out, sizes, args.repeats, exact_sizes, args.exact_seeds, bench_lams)
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _writable(path: str, option: str) -> str | None:
    """Why ``path`` cannot be written, checked before any work (None when it can)."""
    folder = Path(path).parent
    if not folder.is_dir():
        return f"{option} {path}: folder {str(folder)!r} does not exist; create it first"
    if Path(path).is_dir():
        return f"{option} {path}: is a folder; give a file name"
    return None


if __name__ == "__main__":
    raise SystemExit(main())
