"""Placement repair when the greedy cover runs out of memory: a small MILP per edge (cvxpy + HiGHS).

min sum_im w_im x_im  s.t.  sum_i n_i x_im >= demand_m (coverage),  sum_m mem_m x_im <= M_i (memory),
x binary, x <= eligible. Weights are per-sample prices of the greedy; the MILP only decides *which*
devices can carry which modules when memory binds, so it is solved for the few edges that need it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np

from solvers.instance import RoundProblem


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


def milp_placement(problem: RoundProblem, edge: int, weights: np.ndarray) -> np.ndarray | None:
    """Placement [n_e, M] of edge `edge` (local rows) or None if memory and coverage are incompatible."""
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
        prob.solve(solver="HIGHS", output_flag=False)
    if prob.status not in ("optimal", "optimal_inaccurate") or x.value is None:
        return None
    return np.asarray(x.value) > 0.5
