"""Under budget="work", what stops HiGHS's branch and bound on large MILPs: the node limit priced at a flat NODE_S,
or priced at a node's expected iterations (solvers/clock.py NODE_ITERATIONS_PER_ROW x the MILP's rows).

HiGHS's MIP ignores simplex_iteration_limit in its sub-LPs, so under a work budget the node limit is what stops a
MILP; on the memory-tight 200-device rounds of experiments/solver_work_calibration.py a node of a 100-device repair
MILP (106 rows) takes 100-450 iterations. Each round is solved under the work budget with NODE_ITERATIONS_PER_ROW
= 0 (a node costs NODE_S, as before) and at its current value, alternating, and per solve this records the meter's
work seconds, its iterations and nodes, CPU and wall seconds, the plan's objective, and each HiGHS MILP call (rows,
its share of seconds, iterations, nodes, why it stopped). A call that ran into its wall-clock backstop stopped on
time, not work: then the plan depends on the machine's load. The machine is shared (2 cores): the 1-minute load
average is recorded with each row.

Run: python experiments/solver_work_nodes.py [--limit 2] [--out DIR]
(writes experiments/results/solver_work/nodes.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from code_version import CODE_PATHS, commit

import solvers.clock as clock
import solvers.milp as milp
from solvers import random_instance, solve
from solvers.clock import under_budget

OUT = Path(__file__).resolve().parent / "results" / "solver_work"
CASES = [(200, 2, 6, 0, 0.0), (200, 2, 6, 1, 0.5), (300, 3, 6, 2, 0.0)]
"""(devices, edges, modules, seed, lambda), memory 0.5-0.7 of the eligible modules' (the repair MILPs branch)."""


def watch_repairs(calls: list[dict[str, Any]]) -> None:
    """Record each placement-repair MILP call (solvers/milp.py) of the next solves in `calls`."""
    original = milp._solve_highs

    def solve_highs(*args: Any) -> tuple[str, Any]:
        before = clock.current_meter()
        its = (before.iterations, before.nodes) if before is not None else (0, 0)
        c0 = time.process_time()
        status, x = original(*args)
        after = clock.current_meter()
        calls.append({"rows": int(args[1].shape[0] + args[1].shape[1]), "share_s": float(args[6]), "status": status,
                      "iterations": after.iterations - its[0] if after else None,
                      "nodes": after.nodes - its[1] if after else None, "cpu_s": time.process_time() - c0})
        return status, x

    milp._solve_highs = solve_highs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=float, default=2.0, help="time_limit_s of every solve")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    code = commit(CODE_PATHS)
    current = clock.NODE_ITERATIONS_PER_ROW
    solve(random_instance(8, 2, 3, 0), "joint", time_limit_s=0.1)  # imports before the first measured solve
    calls: list[dict[str, Any]] = []
    watch_repairs(calls)
    rows = []
    for k, (n, e, m, seed, lam) in enumerate(CASES):
        p = random_instance(n, e, m, seed, lam=lam, memory_fraction=(0.5, 0.7))
        for per_row in ((0.0, current) if k % 2 == 0 else (current, 0.0)):
            clock.NODE_ITERATIONS_PER_ROW = per_row
            calls.clear()
            load = os.getloadavg()[0]
            with under_budget("work") as meter:
                c0, w0 = time.process_time(), time.perf_counter()
                plan = solve(p, "joint", time_limit_s=args.limit, budget="work")
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            assert meter is not None
            rows.append({"case": [n, e, m, seed, lam], "node_iterations_per_row": per_row, "work_s": meter.seconds(),
                         "iterations": meter.iterations, "nodes": meter.nodes, "cpu_s": cpu, "wall_s": wall,
                         "objective": plan.objective, "status": plan.status, "load_1min": load,
                         "repairs": list(calls)})
            print(json.dumps({k2: v for k2, v in rows[-1].items() if k2 != "repairs"}), flush=True)
    clock.NODE_ITERATIONS_PER_ROW = current
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nodes.json").write_text(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs",
        "commit": code, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "limit_s": args.limit,
        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
