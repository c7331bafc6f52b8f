"""lambda > 0 relay moves on large edges (solvers/relay_search.py): each accepted step lowers the edge's energy at
the round's deadline, the relays stay one-hop on existing links, and the whole plan stays feasible and no worse."""

from __future__ import annotations

import numpy as np
import pytest

import solvers.joint as joint
from solvers import check_plan, random_instance, solve
from solvers.candidates import EdgeCandidates
from solvers.clock import Clock
from solvers.edgebatch import EdgeView
from solvers.energy import best_deadline, round_uploads
from solvers.relay_search import improve_relays


def test_moves_lower_the_edge_cost_at_the_deadline() -> None:
    p = random_instance(40, 1, 4, 5, lam=0.5)
    with pytest.MonkeyPatch.context() as mp:  # the plan without relay moves
        mp.setattr(joint, "RELAY_SEARCH", False)
        plan = solve(p, "joint", time_limit_s=0, bound=False)
    t, _ = best_deadline(round_uploads(p, plan.placement, plan.relay)[0], p.lam)
    relay, moves = improve_relays(p, plan.placement, plan.relay, t, [0], Clock())
    view = EdgeView.of(p, 0)
    both = np.stack([plan.relay, relay])
    cost = EdgeCandidates.of(view, np.stack([plan.placement] * 2), both).energy(np.array([t]))[0]
    assert view.relay_ok(both).all()
    assert moves > 0 and cost[1] < cost[0]


def test_plan_feasible_and_no_worse() -> None:
    p = random_instance(60, 2, 4, 8, lam=0.5)
    with pytest.MonkeyPatch.context() as mp:  # the plan without relay moves
        mp.setattr(joint, "RELAY_SEARCH", False)
        a = solve(p, "joint", time_limit_s=0, bound=False)
    b = solve(p, "joint", time_limit_s=0, bound=False)
    assert check_plan(p, b) == [] and not b.fallback
    assert b.objective <= a.objective * (1 + 1e-9)
