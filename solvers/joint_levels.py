"""`joint` with compression levels as decisions: the full-size plan, each device's level, and the joint level model
where it applies (solvers/level_model.py, solvers/level_energy.py)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from solvers.bounds import round_lower_bound, subset_lower_bound
from solvers.clock import Clock, now
from solvers.energy import plan_bandwidth
from solvers.evaluate import evaluate
from solvers.improve import STATUS_PROVEN, STATUS_TIME, STATUS_UNPROVEN
from solvers.instance import RoundProblem
from solvers.level_model import MESSAGE as LEVEL_MODEL_MESSAGE
from solvers.level_model import applies as level_model_applies
from solvers.level_model import refusal as level_model_refusal
from solvers.level_model import solve_levels
from solvers.levels import choose_levels, fewer_bytes
from solvers.plan import RoundPlan

LEVEL_BOUND_SHARE = 0.25
"""Levels at lambda > 0: the share of the time left after the warm start that the relaxed round's latency-energy
bound may take before the level model (unclocked it took 1.5 of a 2 s limit on 8 devices, leaving the model
nothing)."""


def with_levels(problem: RoundProblem, solve_full: Callable[..., RoundPlan], **opts: Any) -> RoundPlan:
    # solve_full: joint_solve; opts: its keywords
    """Compression levels as decisions: placement and relays at full size (the plan above), then each device's
    level by the exact small program of solvers/levels.py, then the band for those payloads; the lower bound is
    the full bound of the relaxed round (every payload at the smallest factor, distortion free). On edges the
    column model takes (solvers/level_model.py; at lambda > 0 with energy by tangents, solvers/level_energy.py),
    that plan is the incumbent of the joint level model, which chooses placement, relays and levels together and
    certifies them within the time limit; where it takes no edge the message says why."""
    t0, wall = now(), time.perf_counter()
    p = problem
    full = dataclasses.replace(p, level_names=(), level_factor=None, level_distortion=None, distortion_budget=None,
                               distortion_penalty=0.0)
    plan = solve_full(full, **{**opts, "bound": False})  # the heuristic plan at full size
    x, r = plan.placement, plan.relay
    choice = choose_levels(p, x, r)
    level, b, cost = _fewer_bytes(p, x, r, choice.level)
    bound, limit, gap = opts.get("bound", True), float(opts["time_limit_s"]), float(opts["gap"])
    t_floor = float(subset_lower_bound(p.relaxed(), cost.edge_latency_s)) if bound else 0.0  # the latency's
    lower = t_floor
    if p.lam > 0 and bound:  # the relaxed round's latency-energy bound: a share of the time left when the model runs
        clock = Clock.start(limit, t0).share(LEVEL_BOUND_SHARE) if limit > 0 and level_model_applies(p) else None
        lower = float(round_lower_bound(p.relaxed(), cost.edge_latency_s, upper=cost.objective, clock=clock))
    how = ("levels exact given placement and relays" if choice.exact else
           f"levels heuristic (lambda > 0 or edges of over {len(p.level_names)}^n vectors: "
           f"{choice.edges_enumerated}/{p.num_edges} edges enumerated)")
    model = level_model_applies(p)
    if not model:
        how += f"; {level_model_refusal(p)}"
    status = plan.status
    if bound and limit > 0 and lower < (1 - gap) * cost.objective and opts.get("bandwidth") != "cvxpy" and model:
        got = solve_levels(p, x, r, level, t_floor, t0 + limit, gap)
        if got.objective < cost.objective:
            x, r = got.x, got.relay
            level, b, cost = _fewer_bytes(p, x, r, got.level)
        lower = max(lower, got.lower_bound)
        proven = lower >= (1 - gap) * cost.objective
        status = STATUS_PROVEN if proven else STATUS_TIME if now() >= t0 + limit - 0.06 else \
            STATUS_UNPROVEN
        how = f"{LEVEL_MODEL_MESSAGE}: {got.settled} trial latencies settled, {got.milps} MILPs"
    elif bound and limit > 0:
        status = STATUS_PROVEN if lower >= (1 - gap) * cost.objective else STATUS_UNPROVEN
    return plan.with_(placement=x, relay=r, bandwidth_hz=b, level=level, latency_s=cost.latency_s,
                      energy_j=cost.energy_j, objective=cost.objective, lower_bound=min(lower, cost.objective),
                      message=how, status=status, solve_seconds=time.perf_counter() - wall)


def _fewer_bytes(p: RoundProblem, x: np.ndarray, r: np.ndarray, level: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, Any]:
    """The levels, band and cost of (x, r, level) after the tie-break of solvers/levels.py (fewest bytes among
    levels the model cannot tell apart), kept only where the round's objective did not grow."""
    chosen = p.with_levels(level)
    b = plan_bandwidth(chosen, x, r)
    cost = evaluate(chosen, x, r, b)
    tied = fewer_bytes(p, x, level)
    if np.array_equal(tied, level):
        return level, b, cost
    q = p.with_levels(tied)
    b2 = plan_bandwidth(q, x, r)
    cost2 = evaluate(q, x, r, b2)
    if cost2.objective <= cost.objective * (1 + 1e-12):
        return tied, b2, cost2
    return level, b, cost


