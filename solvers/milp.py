"""Placement repair when the greedy cover runs out of memory: a small MILP per edge (cvxpy + HiGHS).

min sum_im w_im x_im  s.t.  sum_i n_i x_im >= demand_m (coverage),  sum_m mem_m x_im <= M_i (memory),
x binary, x <= eligible. Weights are per-sample prices of the greedy; the MILP only decides *which*
devices can carry which modules when memory binds, so it is solved for the few edges that need it. Every solve has
a time limit and a relative gap (MILP_TIME_LIMIT_S, MILP_GAP): the weights are heuristic prices, so a good feasible
cover is all the caller needs, and a memory-tight edge of 100 devices must not hold up the round for minutes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np

from solvers.instance import RoundProblem

MILP_TIME_LIMIT_S = 5.0
"""Wall seconds HiGHS may spend on one edge's placement repair; its best cover so far is taken at the limit."""
MILP_GAP = 0.01
"""Relative gap at which HiGHS stops (the prices are heuristic: proving the last percent buys nothing)."""


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
                   time_limit_s: float = MILP_TIME_LIMIT_S) -> np.ndarray | None:
    """Placement [n_e, M] of edge `edge` (local rows) or None if memory and coverage are incompatible (HiGHS proved
    it); MilpTimeout if the time limit passed before any cover was found."""
    import cvxpy as cp

    p = problem
    d = p.edge_devices(edge)
    demand = p.coverage_demand()[edge]
    elig = p.eligible[d] & (p.samples[d] > 0)[:, None] & (p.module_memory_bytes[None, :] <= p.memory_bytes[d, None])
    x = cp.Variable((d.size, p.num_modules), boolean=True)
    mem_scale = max(float(p.module_memory_bytes.max()), 1.0)
    n_scale = max(float(p.samples[d].max()), 1.0)
    cons = [x <= elig.astype(float),
            x @ (p.module_memory_bytes / mem_scale) <= p.memory_bytes[d] / mem_scale * (1 + 1e-12),
            (p.samples[d] / n_scale) @ x >= demand / n_scale * (1 - 1e-9)]
    w = np.where(np.isfinite(weights), weights, 1e6)
    w = w / max(float(np.abs(w).max()), 1e-300)
    prob = cp.Problem(cp.Minimize(cp.sum(cp.multiply(w, x))), cons)
    with quiet_stdout():  # HiGHS prints a banner
        prob.solve(solver="HIGHS", output_flag=False, time_limit=float(time_limit_s), mip_rel_gap=MILP_GAP)
    if prob.status in ("infeasible", "infeasible_inaccurate"):
        return None
    xe = None if x.value is None else np.asarray(x.value) > 0.5
    if xe is None or not _fits(p, d, demand, xe):
        raise MilpTimeout(f"coverage: the placement repair of edge {p.edge_ids[edge]!r} found no cover within "
                          f"{time_limit_s:g} s (HiGHS status {prob.status}); not a proof that none exists")
    return xe


def _fits(p: RoundProblem, d: np.ndarray, demand: np.ndarray, xe: np.ndarray) -> bool:
    """Memory and coverage of a rounded MILP answer (a limit-stopped incumbent is checked, not trusted)."""
    mem = xe.astype(float) @ p.module_memory_bytes <= p.memory_bytes[d] * (1 + 1e-9)
    cov = p.samples[d] @ xe.astype(float) >= demand * (1 - 1e-9)
    return bool(mem.all() and cov.all() and not np.any(xe & ~p.eligible[d]))
