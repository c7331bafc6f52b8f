"""Under budget="work", which HiGHS calls meet their wall-clock backstop (solvers/clock.py BACKSTOP_S), and does the
plan stay the same when the machine is slower?

Each case is solved under the work budget with every HiGHS run of solvers/highs.py watched (also in the worker
processes of solvers/parallel.py): per call its caller, rows, columns, whether it is a MILP, its simplex iteration
and node limits, the iterations and nodes it ran, its wall seconds and whether it stopped at the backstop. Per
case the plan's objective, bound, status and a digest of its placement, relays and bands. `--slow F` makes the
machine look F times slower (Python's clocks and every HiGHS time limit skewed, as tests/test_solver_work.py
does): a plan that changes with F is decided by time, not work. `--hogs K` runs K CPU-burning processes (at this
process's niceness) beside the solves instead. The machine is shared: the 1-minute load average is printed with each
case.

Run: python experiments/solver_work_backstop.py [--cases pf12,mem,ra] [--slow 5] [--hogs 0] [--calls] [--dump DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import solvers.clock as clock  # noqa: E402
import solvers.highs as highs  # noqa: E402
from solvers import RoundProblem, random_instance, solve  # noqa: E402
from solvers.clock import under_budget  # noqa: E402
from solvers.slower_machine import slow_down  # noqa: E402


def power_frequency(n: int, lam: float, seed: int) -> RoundProblem:
    p = random_instance(n, 1, 6, seed, lam=lam, d2d_neighbours=3)
    return dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())


def scale_round(devices: int, seed: int, **kw: Any) -> RoundProblem:  # experiments/solver_grid.py's
    modules = int(np.random.default_rng(seed).integers(3, 11))
    return random_instance(devices, max(1, round(devices / 100)), modules, seed, **kw)


CASES = {
    "pf12": (lambda: power_frequency(12, 0.5, 0), 2.0),
    "pf12s1": (lambda: power_frequency(12, 0.5, 1), 2.0),
    "pf8": (lambda: power_frequency(8, 0.5, 0), 2.0),
    "mem": (lambda: random_instance(1000, 10, 6, 0, lam=0.5, memory_fraction=(0.5, 0.7)), 2.0),
    "mem200": (lambda: random_instance(200, 2, 6, 0, memory_fraction=(0.5, 0.7)), 1.0),
    "ra": (lambda: scale_round(1000, 0, relay_aggregates=True), 2.0),
    "ra1": (lambda: scale_round(1000, 1, relay_aggregates=True), 2.0),
    "ra2": (lambda: scale_round(1000, 2, relay_aggregates=True), 2.0),
    "lam": (lambda: scale_round(1000, 0, lam=0.5), 2.0),
    "agg12": (lambda: random_instance(12, 1, 6, 0, lam=0.5, relay_aggregates=True), 2.0),
    "hop12": (lambda: random_instance(12, 1, 6, 1, lam=0.5), 2.0),
}
"""name: (the round, its time_limit_s)."""

LOG = Path(tempfile.gettempdir()) / f"solver_work_backstop_{os.getpid()}.jsonl"


def watch() -> None:
    """Record every run of solvers/highs.py (in every module that imported it) as a line of LOG."""
    original = highs.run

    def run(h: Any) -> Any:
        w0 = time.perf_counter()
        original(h)
        wall = time.perf_counter() - w0
        met = clock.current_meter() is not None and h.getModelStatus().name == "kTimeLimit"
        info = h.getInfo()
        f = sys._getframe(1)
        caller = f"{Path(f.f_code.co_filename).stem}.{f.f_code.co_name}"
        if f.f_code.co_name in ("run_lp", "run_milp"):
            g = f.f_back
            caller += f"<{Path(g.f_code.co_filename).stem}.{g.f_code.co_name}" if g else ""
        opt = {k: h.getOptionValue(k)[1] for k in ("simplex_iteration_limit", "mip_max_nodes", "time_limit")}
        dump = os.environ.get("WORK_BACKSTOP_DUMP")
        seconds = (opt["time_limit"] - clock.BACKSTOP_S) / clock.BACKSTOP
        if dump and int(info.mip_node_count) >= 0 and (met or wall > 2 * seconds + 0.5):
            name = f"{dump}/{caller.replace('<', '_')}_{h.getNumRow()}_{os.getpid()}_{time.time_ns() % 10**9}"
            h.writeModel(name + ".mps")
            Path(name + ".json").write_text(json.dumps({**opt, "seconds": seconds, "wall_s": wall}))
        with LOG.open("a") as out:
            out.write(
                json.dumps(
                    {
                        "caller": caller,
                        "rows": h.getNumRow(),
                        "cols": h.getNumCol(),
                        "milp": int(info.mip_node_count) >= 0,
                        "iter_limit": opt["simplex_iteration_limit"],
                        "node_limit": opt["mip_max_nodes"],
                        "time_limit": opt["time_limit"],
                        "iterations": int(info.simplex_iteration_count),
                        "nodes": int(info.mip_node_count),
                        "wall_s": wall,
                        "status": h.getModelStatus().name,
                        "backstop": met,
                    }
                )
                + "\n"
            )
        return h

    import solvers.model as model

    cvx = model.run_highs

    def run_highs(prob: Any, time_limit: float, gap: float, cutoff: float | None) -> Any:
        w0 = time.perf_counter()
        out = cvx(prob, time_limit, gap, cutoff)
        with LOG.open("a") as f:
            f.write(
                json.dumps(
                    {
                        "caller": "model.run_highs (cvxpy)",
                        "milp": True,
                        "seconds": time_limit,
                        "wall_s": time.perf_counter() - w0,
                        "status": out[0],
                        "backstop": time.perf_counter() - w0 > clock.BACKSTOP * time_limit,
                    }
                )
                + "\n"
            )
        return out

    for mod in list(sys.modules.values()):
        if mod is None or not mod.__name__.startswith("solvers"):
            continue
        if getattr(mod, "run", None) is original:
            mod.run = run  # type: ignore[attr-defined]
        if getattr(mod, "run_highs", None) is cvx:
            mod.run_highs = run_highs  # type: ignore[attr-defined]


def _burn() -> None:  # at the niceness of this process
    a = np.random.default_rng(0).random((120, 120))
    while True:
        a = a @ a
        a /= np.abs(a).max()


def digest(plan: Any) -> str:
    h = hashlib.sha1()
    for a in (plan.placement, plan.relay, plan.bandwidth_hz):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="pf12,mem,ra", help=f"comma-separated, of {','.join(CASES)}")
    ap.add_argument("--slow", type=float, default=1.0, help="look this many times slower (1: as it is)")
    ap.add_argument("--hogs", type=int, default=0, help="CPU-burning processes beside the solves")
    ap.add_argument("--calls", action="store_true", help="print every MILP call and every call over 0.2 s")
    ap.add_argument("--dump", type=Path, help="write each MILP that met its backstop (or ran past 2x + 0.5 s) here")
    args = ap.parse_args()
    solve(random_instance(8, 2, 3, 0), "joint", time_limit_s=0.1)  # imports before the first measured solve
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        os.environ["WORK_BACKSTOP_DUMP"] = str(args.dump)
    watch()
    if args.slow != 1.0:
        slow_down(args.slow)
    hogs = [mp.Process(target=_burn, daemon=True) for _ in range(args.hogs)]
    for p_ in hogs:
        p_.start()
    try:
        for name in args.cases.split(","):
            make, limit = CASES[name]
            p = make()
            LOG.write_text("")
            load = os.getloadavg()[0]
            c0, w0 = time.process_time(), time.perf_counter()
            with under_budget("work") as meter:
                plan = solve(p, "joint", time_limit_s=limit, budget="work")
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            calls = [json.loads(s) for s in LOG.read_text().splitlines()]
            met = [c for c in calls if c["backstop"]]
            print(
                json.dumps(
                    {
                        "case": name,
                        "objective": plan.objective,
                        "lower_bound": plan.lower_bound,
                        "status": plan.status,
                        "digest": digest(plan),
                        "work_s": meter.seconds() if meter else None,
                        "cpu_s": round(cpu, 2),
                        "wall_s": round(wall, 2),
                        "load_1min": load,
                        "slow": args.slow,
                        "hogs": args.hogs,
                        "calls": len(calls),
                        "milps": sum(c["milp"] for c in calls),
                        "backstops": len(met),
                    }
                ),
                flush=True,
            )
            for c in calls:
                if c["backstop"] or (args.calls and (c["milp"] or c["wall_s"] > 0.2)):
                    print("   ", json.dumps(c), flush=True)
    finally:
        for p_ in hogs:
            p_.terminate()
        LOG.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
