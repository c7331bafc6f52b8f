"""`solve`: the one entry point of the training loop. Never raises on a failed or infeasible solve.

A failure (coverage impossible within memory, solver error, a plan the checker rejects) returns a
feasible fallback plan: equal bandwidth, direct uploads, the greedy minimal cover if one exists, else
every eligible module that fits in memory (coverage relaxed); `fallback=True`, `status`, `message` say why,
and one warning is logged. A malformed problem or unknown method/option raises ValueError.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable

import numpy as np

from solvers.baselines import _plan as _equal_share_plan
from solvers.baselines import equal_plan, full_placement, greedy_plan, random_plan
from solvers.check import check_plan
from solvers.exact import exact_solve
from solvers.instance import RoundProblem
from solvers.joint import CoverageError, check_limits, greedy_placement, joint_solve
from solvers.parallel import resolve_workers
from solvers.plan import RoundPlan
from solvers.tree import tree_rule_plan, tree_solve

log = logging.getLogger("solvers")

METHODS: dict[str, Callable[..., RoundPlan]] = {
    "joint": joint_solve, "greedy": greedy_plan, "equal": equal_plan, "random": random_plan, "exact": exact_solve,
}


def solve(problem: RoundProblem, method: str = "joint", **opts: object) -> RoundPlan:
    """Plan one round with `method` in joint, greedy, equal, random, exact (opts go to that method)."""
    if not isinstance(problem, RoundProblem):
        raise ValueError(f"problem: expected a RoundProblem, got {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; choose one of {sorted(METHODS)}")
    fn = METHODS[method]
    try:
        inspect.signature(fn).bind(problem, **opts)
    except TypeError as exc:
        raise ValueError(f"opts: {exc} (method {method!r} takes {list(inspect.signature(fn).parameters)[1:]})") from exc
    if "workers" in opts:  # a malformed option raises (no fallback), like an unknown one
        resolve_workers(problem, opts["workers"])  # type: ignore[arg-type]
    if "time_limit_s" in opts or "gap" in opts:  # the same for the model's limits
        check_limits(opts.get("time_limit_s", 0.0), opts.get("gap", 0.0))  # type: ignore[arg-type]
    t0 = time.perf_counter()
    try:
        if problem.tree_aggregation:  # one D2D tree per edge (solvers/tree.py); baselines run the fixed rule
            plan = tree_solve(problem, exact=method == "exact") if method in ("joint", "exact") else \
                tree_rule_plan(problem, method)
        else:
            plan = fn(problem, **opts)
        bad = check_plan(problem, plan, rtol=1e-6)
        if bad:
            raise RuntimeError(f"plan failed the feasibility check: {'; '.join(bad[:3])}")
        return plan
    except Exception as exc:  # noqa: BLE001 - any solver failure must become a fallback plan
        kind = "infeasible" if isinstance(exc, CoverageError) else "solver_error"
        cause = f"{type(exc).__name__}: {exc}"
        log.warning("solvers.solve(method=%s): %s (%s); using the fallback plan", method, kind, cause)
        return fallback_plan(problem, status=kind, message=cause, t0=t0)


def fallback_plan(problem: RoundProblem, status: str = "fallback", message: str = "",
                  t0: float | None = None) -> RoundPlan:
    """Equal bandwidth, no relay; greedy minimal cover, or full placement within memory if coverage fails."""
    t0 = time.perf_counter() if t0 is None else t0
    note = ""
    try:
        x = greedy_placement(problem, np.full(problem.num_devices, np.inf))
    except Exception as exc:  # noqa: BLE001
        x = full_placement(problem)
        note = f"; coverage relaxed ({exc})"
    plan = _equal_share_plan(problem, x, np.arange(problem.num_devices), "fallback", t0)
    if problem.tree_aggregation:  # the fixed tree rule, if the D2D graph connects every cluster
        try:
            plan = tree_rule_plan(problem, "fallback")
        except ValueError as exc:
            note += f"; no tree ({exc}), direct uploads"
    return plan.with_(status=status, fallback=True, message=message + note)
