"""solvers/pair_moves.py: module transfers and exchanges between two devices on edges above the model's size
(lambda = 0): each move priced exactly at the edge's latency, the plan feasible and faster, relays kept, and the
round's certified bound unchanged by the moves (so still never above the optimum)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import solvers.improve as improve
from solvers import check_plan, random_instance
from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock
from solvers.energy import edge_latency
from solvers.evaluate import round_timeline
from solvers.exact import exact_solve
from solvers.joint import joint_solve
from solvers.pair_moves import _moves, pair_moves


@pytest.mark.parametrize(("n", "modules", "seed"), [(100, 6, 0), (100, 9, 1), (60, 4, 2)])
def test_pair_moves_give_a_faster_feasible_plan(n, modules, seed):
    p = random_instance(n, 1, modules, seed)
    plan = joint_solve(p, time_limit_s=0)  # the heuristics alone
    x, relay, t = pair_moves(p, plan.placement, plan.relay, Clock())
    moved = np.flatnonzero(relay != np.arange(n))
    assert np.all(relay[relay[moved]] == relay[moved])  # one hop
    assert np.all(p.link_rate(moved, relay[moved]) > 0)
    assert t < plan.latency_s * (1 - 1e-6)
    assert t == pytest.approx(float(edge_latency(p, [(x, relay)])[0][0]), rel=1e-12)
    assert not np.any(x & ~p.eligible)
    assert np.all(p.samples @ x >= p.coverage_demand()[0] * (1 - 1e-9))
    assert np.all(x.astype(float) @ p.module_memory_bytes <= p.memory_bytes * (1 + 1e-9))


def _summed_band(p, x, relay, t):
    """The exact band every uploader of plan (x, relay) needs to finish by t, summed."""
    tl = round_timeline(p, x, relay)
    up = tl.uploader
    return float(min_bandwidth(tl.bits[up] / (t - tl.start[up]), p.snr_hz[up]).sum())


@pytest.mark.parametrize(("modules", "seed", "tx"), [(7, 4, 1.0), (6, 5, 0.05)])
def test_each_move_is_priced_as_the_summed_band_it_changes(modules, seed, tx):
    p = random_instance(100, 1, modules, seed)
    if tx != 1.0:  # weak uplinks: relay groups in the plan, moves of their members priced through the relay
        p = dataclasses.replace(p, tx_power_w=np.full(100, tx))
    plan = joint_solve(p, time_limit_s=0)
    x, relay, t = plan.placement, plan.relay, plan.latency_s
    delta, rows = _moves(p, x, relay, t)
    kinds = (rows[:, 3] >= 0) * 1 + (rows[:, 4] >= 0) * 2 + (rows[:, 5] >= 0) * 3
    assert {0, 1, 2} <= set(kinds.tolist())  # transfers, exchanges and merges (relay moves where they pay)
    grouped = relay != np.arange(p.num_devices)
    base = _summed_band(p, x, relay, t)
    picks = [int(np.flatnonzero(kinds == j)[0]) for j in set(kinds.tolist())] + list(range(40))
    if tx != 1.0:  # moves of relayed devices
        assert grouped.any()
        picks += np.flatnonzero(grouped[rows[:, 0]] | (rows[:, 1] >= 0) & grouped[rows[:, 1]])[:20].tolist()
        assert len(picks) > 43
    for i in picks:
        y, rel = _apply(x, relay, rows[i])
        assert delta[i] < 0
        assert _summed_band(p, y, rel, t) - base == pytest.approx(delta[i], rel=1e-7, abs=1e-5)


def _apply(x, relay, row):
    a, b, k, l2, c, r = row
    y, rel = x.copy(), relay.copy()
    if r >= 0:
        rel[a] = r
        return y, rel
    y[a, k], y[b, k] = False, True
    if l2 >= 0:
        y[b, l2], y[a, l2] = False, True
    if c >= 0:
        y[c, k] = False
    return y, rel


def test_relay_moves_are_priced_on_both_uploaders():
    """Onto a relay (a plan without relays, weak uplinks) and back to direct (a plan with relays, strong uplinks)."""
    strong = random_instance(100, 1, 6, 5)
    weak = dataclasses.replace(strong, tx_power_w=np.full(100, 0.05))
    plan = joint_solve(weak, time_limit_s=0)
    assert np.any(plan.relay != np.arange(100))
    for p, relay, onto in ((weak, np.arange(100), True), (strong, plan.relay, False)):
        x = plan.placement
        t = float(edge_latency(p, [(x, relay)])[0][0])
        delta, rows = _moves(p, x, relay, t)
        pick = np.flatnonzero((rows[:, 5] >= 0) & ((rows[:, 5] != rows[:, 0]) == onto))
        assert pick.size > 0
        base = _summed_band(p, x, relay, t)
        for i in pick[:30]:
            y, rel = _apply(x, relay, rows[i])
            assert _summed_band(p, y, rel, t) - base == pytest.approx(delta[i], rel=1e-7, abs=1e-5)


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


def test_bisected_thresholds_stay_below_the_optimum(monkeypatch):
    """improve.bisect_slowest on edges made "large": never above exact_solve's optimum, never below the plan's
    bound, and above it on some seeded round (else the test could not fail)."""
    monkeypatch.setattr(improve, "MODEL_MAX_DEVICES", 2)
    raised = 0
    for seed in (40, 47, 59, 61):
        p = random_instance(10, 2, 4, seed)
        plan = joint_solve(p, enum_max=0, local_rounds=0, time_limit_s=0)
        got = improve.bisect_slowest(p, plan, math.inf, steps=20, edges=2)
        assert plan.lower_bound * (1 - 1e-12) <= got.lower_bound <= exact_solve(p).objective * (1 + 1e-9)
        raised += got.lower_bound > plan.lower_bound * (1 + 1e-6)
    assert raised > 0
