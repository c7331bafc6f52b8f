"""A/B of the lambda > 0 relay moves on large edges, priced at the round's deadline, at scale (solvers/relay_sweep.py
since it replaced the per-edge exact pricing of solvers/relay_search.py in `joint`).

Instances of experiments/solver_scale_gap.py at lambda = 0.5 (`random_instance(N, N / 100, M, seed, lam=0.5)`, M in
3..10 from the seed), `solve(p, "joint")` at the default limit (2 s) with `solvers.joint.RELAY_SEARCH` off (A) and
on (B), alternating A, B, A, B in one process (after a warm-up solve), so both see the same load. --flag names
another switch (module.NAME, e.g. solvers.improve.UNION_DUAL), --case aggregates the `relay_aggregates` instances at
lambda = 0 of the same script, --case memory the memory-tight lambda = 0.5 instances of
experiments/solver_memory_tight.py (6 modules, memory 0.5-0.7 of the full sub-model, seeds as given). Per run:
objective, lower bound, certified gap, CPU and wall s, the 1-minute load before it, `check_plan`. --cpu-clock: the
solver's deadlines read this process's CPU time (time.perf_counter = time.process_time), so a loaded machine does
not cut one side short (HiGHS's own time limits, wall time, are multiplied by the process's wall / CPU ratio so far,
as solver_ab.py --scale-highs does); --unbounded: time_limit_s = 0 (no clock: the heuristics and the bound run to
their end).

Run: python experiments/solver_relay_search_ab.py [--devices 1000,10000] [--seeds 0,1,2] [--cpu-clock] [--unbounded]
     [--flag solvers.joint.RELAY_SEARCH] [--case lambda|aggregates|memory]
     [--out experiments/results/solver_scale_gap/relay_search_ab.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from code_version import CODE_PATHS, commit
from cpu_clock import cpu_deadlines, wall_clock

OUT = Path(__file__).resolve().parent / "results" / "solver_scale_gap" / "relay_search_ab.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", default="1000,10000")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cpu-clock", action="store_true")
    ap.add_argument("--unbounded", action="store_true")
    ap.add_argument("--flag", default="solvers.joint.RELAY_SEARCH")
    ap.add_argument("--case", choices=("lambda", "aggregates", "memory"), default="lambda")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    with cpu_deadlines(args.cpu_clock, scale_highs=True):
        run(args)


def run(args: argparse.Namespace) -> None:
    wall = wall_clock
    import importlib

    from solvers import check_plan, random_instance, solve

    module, name = args.flag.rsplit(".", 1)
    switch = importlib.import_module(module)
    lam, aggregates = (0.0, True) if args.case == "aggregates" else (0.5, False)
    code = commit(CODE_PATHS)
    limit = 0.0 if args.unbounded else 2.0
    solve(random_instance(40, 10, 5, 0, lam=0.5), "joint")  # warm-up: lazy imports
    rows = []
    for n in (int(v) for v in args.devices.split(",")):
        for s in (int(v) for v in args.seeds.split(",")):
            seed = s if args.case == "memory" else 1000 * n + s
            modules = 6 if args.case == "memory" else int(np.random.default_rng(seed).integers(3, 11))
            tight = {"memory_fraction": (0.5, 0.7)} if args.case == "memory" else {}
            p = random_instance(n, max(1, round(n / 100)), modules, seed, lam=lam, relay_aggregates=aggregates,
                                **tight)
            for flag in (False, True, False, True):
                setattr(switch, name, flag)
                load = os.getloadavg()[0]
                w0, c0 = wall(), time.process_time()
                plan = solve(p, "joint", time_limit_s=limit)
                cpu, w = time.process_time() - c0, wall() - w0
                rows.append({"devices": n, "seed": seed, "modules": modules, "on": flag,
                             "objective": plan.objective, "lower_bound": plan.lower_bound,
                             "gap": 1 - plan.lower_bound / plan.objective, "cpu_s": cpu, "wall_s": w,
                             "load_1min": load, "feasible": not plan.fallback and check_plan(p, plan) == []})
                r = rows[-1]
                print(f"{n} seed {seed} {'B' if flag else 'A'}: objective {r['objective']:.1f} bound "
                      f"{r['lower_bound']:.1f} gap {100 * r['gap']:.2f} % cpu {cpu:.2f} wall {w:.2f} "
                      f"load {load:.1f} ok {r['feasible']}", flush=True)
    summary = []
    for n in sorted({r["devices"] for r in rows}):
        for flag in (False, True):
            sel = [r for r in rows if r["devices"] == n and r["on"] == flag]
            summary.append({"devices": n, "on": flag, "runs": len(sel),
                            "median_gap": statistics.median(r["gap"] for r in sel),
                            "median_objective_ratio": statistics.median(
                                r["objective"] / next(q["objective"] for q in rows if q["seed"] == r["seed"]
                                                      and not q["on"]) for r in sel),
                            "median_cpu_s": statistics.median(r["cpu_s"] for r in sel),
                            "median_wall_s": statistics.median(r["wall_s"] for r in sel),
                            "max_wall_s": max(r["wall_s"] for r in sel),
                            "load": statistics.median(r["load_1min"] for r in sel),
                            "all_feasible": all(r["feasible"] for r in sel)})
        print(json.dumps(summary[-2:]), flush=True)
    machine = f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "commit": code, "cpu_clock": args.cpu_clock,
                                    "flag": args.flag, "case": args.case,
                                    "unbounded": args.unbounded,
                                    "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                    "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
