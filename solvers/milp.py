"""Placement repair when the greedy cover runs out of memory: a small MILP per edge (HiGHS).

min sum_im w_im x_im  s.t.  sum_i n_i x_im >= demand_m (coverage),  sum_m mem_m x_im <= M_i (memory),
x binary, x <= eligible. Weights are per-sample prices of the greedy; the MILP only decides *which*
devices can carry which modules when memory binds, so it is solved for the few edges that need it. Every solve has
a time limit (the caller's, from the round's clock: solvers/clock.py) and a relative gap (MILP_GAP): the weights are
heuristic prices, so a good feasible cover is all the caller needs, and a memory-tight edge of 100 devices must not
hold up the round. HiGHS is called through highspy's bare solver (no cvxpy import, no compile: 0.05-0.3 s to a
first cover of a 100-device edge); where that object is missing, the same MILP through cvxpy.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from solvers.clock import MILP_CAP_S, charge, highs_limits
from solvers.highs import bare_highs, cvxpy_milp_options, highs, highs_lp, run
from solvers.instance import RoundProblem

MILP_TIME_LIMIT_S = MILP_CAP_S
"""Default wall seconds HiGHS may spend on one edge's placement repair; its best cover so far is taken at the limit."""
MILP_GAP = 0.01
"""Relative gap at which HiGHS stops (the prices are heuristic: proving the last percent buys nothing)."""


MILP_HEURISTIC_EFFORT = 0.3
"""HiGHS's share of effort on primal heuristics (default 0.05): at a 0.2-0.3 s limit it finds covers 10-40 % cheaper
on memory-tight 100-device edges (measured on random_instance(1000, 10, 6, 0, memory_fraction=(0.5, 0.7)))."""


class MilpTimeout(RuntimeError):
    """The repair MILP hit its time limit before finding any cover (not a proof that none exists)."""


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence file descriptor 1 (HiGHS writes its banner from C, past sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def milp_placement(problem: RoundProblem, edge: int, weights: np.ndarray,
                   time_limit_s: float = MILP_TIME_LIMIT_S, backend: str = "auto",
                   first_cover: bool = False) -> np.ndarray | None:
    """Placement [n_e, M] of edge `edge` (local rows) or None if memory and coverage are incompatible (HiGHS proved
    it); MilpTimeout if the time limit passed before any cover was found. backend: auto (highspy's bare solver
    where it exists), or cvxpy. first_cover: stop at the first cover HiGHS finds."""
    p = problem
    d = p.edge_devices(edge)
    demand = p.coverage_demand()[edge]
    elig = p.eligible[d] & (p.samples[d] > 0)[:, None] & (p.module_memory_bytes[None, :] <= p.memory_bytes[d, None])
    mem_scale = max(float(p.module_memory_bytes.max()), 1.0)
    n_scale = max(float(p.samples[d].max()), 1.0)
    w = np.where(np.isfinite(weights), weights, 1e6)
    w = w / max(float(np.abs(w).max()), 1e-300)
    args = (w, elig, p.module_memory_bytes / mem_scale, p.memory_bytes[d] / mem_scale * (1 + 1e-12),
            p.samples[d] / n_scale, demand / n_scale * (1 - 1e-9), float(time_limit_s), first_cover)
    status, xe = _solve_cvxpy(*args) if backend == "cvxpy" else _solve_highs(*args)
    if status == "infeasible":
        return None
    if xe is None or not _fits(p, d, demand, xe):
        raise MilpTimeout(f"coverage: the placement repair of edge {p.edge_ids[edge]!r} found no cover within "
                          f"{time_limit_s:g} s (HiGHS status {status}); not a proof that none exists")
    return xe


def _solve_highs(cost: np.ndarray, upper: np.ndarray, mem: np.ndarray, cap: np.ndarray, samples: np.ndarray,
                 demand: np.ndarray, time_limit_s: float, first_cover: bool) -> tuple[str, np.ndarray | None]:
    """The repair MILP through highspy's bare solver: (status, x [n, M] or None)."""
    fast = bare_highs()
    if fast is None:
        return _solve_cvxpy(cost, upper, mem, cap, samples, demand, time_limit_s, first_cover)
    highspy, bare = fast
    n, m = upper.shape
    # Column i * m + k is x_ik: one memory row (i) and one coverage row (n + k).
    indptr = np.arange(0, 2 * n * m + 1, 2, dtype=np.int32)
    indices = np.stack([np.repeat(np.arange(n), m), n + np.tile(np.arange(m), n)], axis=1).ravel().astype(np.int32)
    data = np.stack([np.tile(mem, n), np.repeat(samples, m)], axis=1).ravel().astype(float)
    lp = highs_lp(highspy, cost.ravel().astype(float), np.zeros(n * m), upper.ravel() * 1.0,
                  np.concatenate([np.full(n, -highspy.kHighsInf), demand]),
                  np.concatenate([cap, np.full(m, highspy.kHighsInf)]), indptr, indices, data, integer=[True] * (n * m))
    first: dict[str, Any] = {"mip_max_improving_sols": 1} if first_cover else {}
    h = run(highs(bare, lp, time_limit_s, mip_rel_gap=MILP_GAP, mip_heuristic_effort=MILP_HEURISTIC_EFFORT, **first))
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return "infeasible", None
    sol = h.getSolution()
    if not sol.value_valid:
        return h.modelStatusToString(status), None
    return h.modelStatusToString(status), np.asarray(sol.col_value).reshape(n, m) > 0.5


def _solve_cvxpy(cost: np.ndarray, upper: np.ndarray, mem: np.ndarray, cap: np.ndarray, samples: np.ndarray,
                 demand: np.ndarray, time_limit_s: float, first_cover: bool = False) -> tuple[str, np.ndarray | None]:
    """The same MILP through cvxpy + HiGHS (the fallback and a cross-check)."""
    import cvxpy as cp

    x = cp.Variable(upper.shape, boolean=True)
    cons = [x <= upper.astype(float), x @ mem <= cap, samples @ x >= demand]
    prob = cp.Problem(cp.Minimize(cp.sum(cp.multiply(cost, x))), cons)
    with quiet_stdout():  # HiGHS prints a banner
        extra = {"mip_max_improving_sols": 1} if first_cover else {}
        prob.solve(solver="HIGHS", output_flag=False, mip_rel_gap=MILP_GAP,
                   **highs_limits(time_limit_s, upper.shape[0] + upper.shape[1]), **extra, **cvxpy_milp_options())
    charge(None if prob.solver_stats is None else prob.solver_stats.extra_stats)
    if prob.status in ("infeasible", "infeasible_inaccurate"):
        return "infeasible", None
    return str(prob.status), None if x.value is None else np.asarray(x.value) > 0.5


def _fits(p: RoundProblem, d: np.ndarray, demand: np.ndarray, xe: np.ndarray) -> bool:
    """Memory and coverage of a rounded MILP answer (a limit-stopped incumbent is checked, not trusted)."""
    mem = xe.astype(float) @ p.module_memory_bytes <= p.memory_bytes[d] * (1 + 1e-9)
    cov = p.samples[d] @ xe.astype(float) >= demand * (1 - 1e-9)
    return bool(mem.all() and cov.all() and not np.any(xe & ~p.eligible[d]))
