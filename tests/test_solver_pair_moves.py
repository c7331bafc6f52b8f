"""solvers/pair_moves.py: module transfers and exchanges between two devices on edges above the model's size
(lambda = 0): each move priced exactly at the edge's latency, the plan feasible and faster, relays kept, and the
round's certified bound unchanged by the moves (so still never above the optimum)."""

from __future__ import annotations

import numpy as np
import pytest

import solvers.improve as improve
from solvers import check_plan, random_instance
from solvers.clock import Clock
from solvers.energy import edge_latency
from solvers.exact import exact_solve
from solvers.joint import joint_solve
from solvers.pair_moves import _bands, _moves, pair_moves


@pytest.mark.parametrize(("n", "modules", "seed"), [(100, 6, 0), (100, 9, 1), (60, 4, 2)])
def test_pair_moves_give_a_faster_feasible_plan(n, modules, seed):
    p = random_instance(n, 1, modules, seed)
    plan = joint_solve(p, time_limit_s=0)  # the heuristics alone
    x, relay, t = pair_moves(p, plan.placement, plan.relay, Clock())
    assert np.array_equal(relay, plan.relay)
    assert t < plan.latency_s * (1 - 1e-6)
    assert t == pytest.approx(float(edge_latency(p, [(x, relay)])[0][0]), rel=1e-12)
    assert not np.any(x & ~p.eligible)
    assert np.all(p.samples @ x >= p.coverage_demand()[0] * (1 - 1e-9))
    assert np.all(x.astype(float) @ p.module_memory_bytes <= p.memory_bytes * (1 + 1e-9))


def test_each_move_is_priced_as_the_summed_band_it_changes():
    p = random_instance(100, 1, 7, 4)
    plan = joint_solve(p, time_limit_s=0)
    x, relay, t = plan.placement, plan.relay, plan.latency_s
    moves = _moves(p, x, relay, t)
    assert moves and any(m[4] >= 0 for m in moves)  # exchanges among them
    base = _bands(p, x, t).sum()
    for delta, a, b, k, l2 in moves[:40]:
        y = x.copy()
        y[a, k], y[b, k] = False, True
        if l2 >= 0:
            y[b, l2], y[a, l2] = False, True
        assert delta < 0
        assert _bands(p, y, t).sum() - base == pytest.approx(delta, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("seed", [40, 47, 59])
def test_moves_on_large_edges_keep_the_bound_valid(monkeypatch, seed):
    """Edges made "large" (MODEL_MAX_DEVICES 2) get the moves in joint; the plan stays valid and its bound never
    exceeds the exact optimum."""
    p = random_instance(10, 2, 4, seed)
    monkeypatch.setattr(improve, "MODEL_MAX_DEVICES", 2)
    plan = joint_solve(p, enum_max=0, local_rounds=0, time_limit_s=2)
    assert check_plan(p, plan) == []
    ref = exact_solve(p)
    assert plan.lower_bound <= ref.objective * (1 + 1e-9)
    assert plan.objective >= ref.objective * (1 - 1e-9)
