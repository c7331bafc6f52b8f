"""lambda > 0 relay moves of every edge at once (solvers/relay_sweep.py): priced moves never save more than they
are priced to, each kept step lowers every edge's exact energy at the deadline, relays stay one-hop on existing
links within the relay capacity, and the result matches the exact per-move search of solvers/relay_search.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import solvers.joint as joint
from solvers import check_plan, random_instance, solve
from solvers.clock import Clock
from solvers.edgebatch import EdgeView
from solvers.energy import best_deadline, round_uploads
from solvers.evaluate import round_timeline
from solvers.relay_search import improve_relays
from solvers.relay_sweep import _edge_cost, _moves, sweep_relays


def _start(p):  # the plan before any relay moves, and its best deadline
    with pytest.MonkeyPatch.context() as mp:  # the plan without relay moves
        mp.setattr(joint, "RELAY_SEARCH", False)
        plan = solve(p, "joint", time_limit_s=0, bound=False)
    t, _ = best_deadline(round_uploads(p, plan.placement, plan.relay)[0], p.lam)
    return plan, t


@pytest.mark.parametrize("aggregates", [False, True])
def test_priced_saving_is_optimistic(aggregates: bool) -> None:
    p = random_instance(60, 2, 5, 3, lam=0.5, relay_aggregates=aggregates)
    plan, t = _start(p)
    x, r = plan.placement, plan.relay
    base, tl = _edge_cost(p, x, r, t)
    mover, target, saving = _moves(p, x, r, tl, t, np.ones(p.num_edges, dtype=bool))
    assert mover.size > 0
    for i, j, s in zip(mover, target, saving, strict=True):
        r2 = r.copy()
        r2[i] = j
        exact = base - _edge_cost(p, x, r2, t)[0]
        assert exact[p.device_edge[i]] <= s * (1 + 1e-6) + 1e-9 * base.sum()


@pytest.mark.parametrize(("aggregates", "capacity"), [(False, None), (True, None), (False, 2)])
def test_sweep_lowers_every_edge_and_stays_valid(aggregates: bool, capacity: int | None) -> None:
    p = random_instance(80, 2, 4, 7, lam=0.5, relay_aggregates=aggregates)
    if capacity is not None:
        p = dataclasses.replace(p, relay_capacity=capacity)
    plan, t = _start(p)
    relay, rounds = sweep_relays(p, plan.placement, plan.relay, t, [0, 1])
    before, after = _edge_cost(p, plan.placement, plan.relay, t)[0], _edge_cost(p, plan.placement, relay, t)[0]
    assert rounds > 0 and (after <= before).all() and after.sum() < before.sum()
    for e in range(p.num_edges):
        view = EdgeView.of(p, e)
        assert view.relay_ok(np.searchsorted(view.dev, relay[view.dev])[None]).all()
    assert round_timeline(p, plan.placement, relay).relayed.sum() > 0


def test_matches_the_exact_search() -> None:
    p = random_instance(100, 1, 5, 11, lam=0.5)
    plan, t = _start(p)
    swept, _ = sweep_relays(p, plan.placement, plan.relay, t, [0])
    searched, moves = improve_relays(p, plan.placement, plan.relay, t, [0], Clock())
    e_sweep, e_search = (_edge_cost(p, plan.placement, r, t)[0][0] for r in (swept, searched))
    assert moves > 0 and e_sweep <= e_search * (1 + 1e-3)


def test_joint_plan_feasible_deterministic_and_no_worse() -> None:
    p = random_instance(60, 2, 4, 8, lam=0.5)
    opts = dict(budget="work", time_limit_s=0.3)
    with pytest.MonkeyPatch.context() as mp:  # the plan without relay moves
        mp.setattr(joint, "RELAY_SEARCH", False)
        a = solve(p, "joint", **opts)
    b, c = solve(p, "joint", **opts), solve(p, "joint", **opts)
    assert check_plan(p, b) == [] and not b.fallback
    assert b.objective < a.objective and b.objective == c.objective and np.array_equal(b.relay, c.relay)
    assert b.lower_bound <= b.objective
