"""Where the time of a lambda > 0 one-edge round goes: heuristics, certified bound, the edge MILP (build, HiGHS).

For each instance of experiments/solver_model_bench.py (one edge, N devices x 6 modules), `solve(p, "joint",
time_limit_s=T)` runs with its phases timed in CPU s (process time): the heuristic plan, the round's certified bound
(solvers/bounds.py), the edge model (solvers/edge_model.py) with each of its MILPs: building the rows, HiGHS's run
(and HiGHS's nodes and LP iterations), its bound. Then, outside the solve, the first MILP's model is rebuilt from the
same incumbent and its LP relaxation alone solved (time and value): how much of a MILP is its root LP, and how far
the relaxation sits below the plan. --cpu-clock: the solver's deadlines read process time (what the time limit gives
on a quiet machine; HiGHS's own limits stay wall time).

    python experiments/solver_edge_profile.py [--sizes 8,12] [--lams 0.5,5] [--seeds 1] [--mode one-hop]
        [--time-limit 2] [--cpu-clock [--scale-highs]] --out experiments/results/solver_edge/profile.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from code_version import CODE_PATHS, commit
from cpu_clock import cpu_deadlines, wall_clock
from solver_grid import add_grid, grid, write_results
from solver_model_bench import instance

import solvers.column_milp as column_milp
import solvers.edge_model as edge_model
import solvers.joint as joint
from solvers import solve
from solvers.highs import bare_highs


def timed(log: list, name: str, fn):  # noqa: ANN001, ANN201
    """fn wrapped: each call appends (name, CPU s) to log."""

    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        c = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            log.append((name, time.process_time() - c))

    return wrapper


def lp_relaxation(rows, cost, usable, extra) -> tuple[float, float, int]:  # noqa: ANN001
    """(CPU s, value, simplex iterations) of the MILP's LP relaxation (binaries continuous in [0, 1])."""
    highspy, bare = bare_highs()
    if isinstance(rows, list):  # dict rows (an older solvers/column_milp.py)
        starts = np.cumsum([0] + [len(r[0]) for r in rows])
        index = np.array([j for r in rows for j in r[0]], dtype=np.int32)
        value = np.array([v for r in rows for v in r[0].values()], dtype=float)
        lo, hi, m = np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), len(rows)
    else:
        starts, index, value, lo, hi = rows.csr()
        m = rows.m
    k, ne = cost.size, len(extra.cost)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = k + ne, m
    lp.col_cost_ = np.concatenate([np.where(usable, cost, 0.0), np.array(extra.cost)])
    lp.col_lower_ = np.zeros(k + ne)
    lp.col_upper_ = np.concatenate([usable.astype(float), np.minimum(np.array(extra.upper), highspy.kHighsInf)])
    lp.row_lower_, lp.row_upper_ = np.maximum(lo, -highspy.kHighsInf), np.minimum(hi, highspy.kHighsInf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = starts.astype(np.int32), index, value
    h = bare()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", 60.0)
    h.passModel(lp)
    c = time.process_time()
    h.run()
    info = h.getInfo()
    return time.process_time() - c, float(info.objective_function_value), int(info.simplex_iteration_count)


def profile(n: int, mode: str, lam: float, seed: int, limit: float) -> dict:
    p = instance(n, mode, lam, seed)
    log: list = []
    milps: list[dict] = []
    first: dict = {}
    orig_run, orig_rows = column_milp.run_milp, edge_model.EdgeModel._rows

    def run_milp(rows, cost, usable, extra, time_limit, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        c, w = time.process_time(), wall_clock()
        status, val, bound = orig_run(rows, cost, usable, extra, time_limit, *args, **kwargs)
        m = len(rows) if isinstance(rows, list) else rows.m
        milps.append(
            {
                "rows": m,
                "columns": int(cost.size + len(extra.cost)),
                "usable": int(usable.sum()),
                "limit_s": time_limit,
                "cpu_s": time.process_time() - c,
                "wall_s": wall_clock() - w,
                "status": status,
                "bound": bound,
            }
        )
        if not first:
            first.update(rows=rows, cost=cost, usable=usable, extra=extra)
        return status, val, bound

    edge_model.run_milp = run_milp
    edge_model.EdgeModel._rows = timed(log, "edge model: build rows", orig_rows)
    patches = [(joint, "round_lower_bound"), (joint, "_heuristic"), (joint, "improve")]
    saved = [(mod, name, getattr(mod, name)) for mod, name in patches]
    for mod, name in patches:
        setattr(mod, name, timed(log, f"{mod.__name__.split('.')[-1]}.{name}", getattr(mod, name)))
    try:
        c, w = time.process_time(), wall_clock()
        plan = solve(p, "joint", time_limit_s=limit)
        total_cpu, total_wall = time.process_time() - c, wall_clock() - w
    finally:
        edge_model.run_milp, edge_model.EdgeModel._rows = orig_run, orig_rows
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    phases: dict[str, float] = {}
    for name, s in log:
        phases[name] = phases.get(name, 0.0) + s
    row = {
        "devices": n,
        "mode": mode,
        "lambda": lam,
        "seed": seed,
        "objective": plan.objective,
        "lower_bound": plan.lower_bound,
        "gap": plan.gap,
        "status": plan.status,
        "cpu_s": total_cpu,
        "wall_s": total_wall,
        "load_1min": os.getloadavg()[0],
        "phases_cpu_s": phases,
        "milps": milps,
    }
    if first:
        lp_s, lp_val, iters = lp_relaxation(first["rows"], first["cost"], first["usable"], first["extra"])
        row["first_milp_lp"] = {"cpu_s": lp_s, "value_x_incumbent": lp_val, "iterations": iters}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.5,5", seeds=1, mode="one-hop")
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--cpu-clock", action="store_true")
    ap.add_argument(
        "--scale-highs",
        action="store_true",
        help="with --cpu-clock: HiGHS's (wall) time limits x the process's wall / CPU ratio so far",
    )
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with cpu_deadlines(a.cpu_clock, scale_highs=a.scale_highs):
        run(a)


def run(a: argparse.Namespace) -> None:
    version = commit(CODE_PATHS)
    solve(instance(4, "one-hop", 0.5, 99), "joint", time_limit_s=0.5)  # warm: lazy imports
    rows = []
    for n, lam, seed in grid(a):
        row = profile(n, a.mode, lam, seed, a.time_limit)
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
    write_results(a.out, rows, {"commit": version, "time_limit_s": a.time_limit, "cpu_clock": a.cpu_clock,
                                "scale_highs": a.scale_highs})


if __name__ == "__main__":
    main()
