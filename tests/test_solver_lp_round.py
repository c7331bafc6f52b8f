"""solvers/lp_round.py: plans read off the subset LP on edges above the model's size (lambda = 0, relays that
forward): feasible minimal covers, never slower than the plan they replace, and the LP threshold they report never
above the optimum (checked against the exact reference, solvers/exact.py, on edges made "large")."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

import solvers.improve as improve
from solvers import check_plan, random_instance
from solvers.bandwidth import min_bandwidth
from solvers.bounds import EdgeRoutes
from solvers.exact import exact_solve
from solvers.joint import joint_solve
from solvers.lp_round import group_cost, lp_candidates, round_columns, round_edge
from solvers.model import exact_cost


@pytest.mark.parametrize(("n", "seed"), [(40, 0), (40, 1), (100, 3)])
def test_round_edge_is_faster_feasible_and_priced_exactly(n, seed):
    p = random_instance(n, 1, 6, seed)
    plan = joint_solve(p, time_limit_s=0)  # the heuristics alone: the incumbent rounding must beat
    r = round_edge(p, plan.latency_s, time.perf_counter() + 30)
    assert r.x is not None and r.relay is not None
    assert r.latency < plan.latency_s
    assert r.latency == pytest.approx(exact_cost(p, r.x, r.relay), rel=1e-9)
    assert 0 < r.lower_bound <= r.latency


def test_rounded_covers_are_minimal_and_cover_the_demand():
    p = random_instance(60, 1, 5, 2)
    plan = joint_solve(p, time_limit_s=0)
    cands, _ = lp_candidates(p, plan.latency_s, time.perf_counter() + 30)
    assert cands
    demand = p.coverage_demand()[0]
    for x, relay in cands:
        assert not np.any(x & ~p.eligible)
        for k in np.flatnonzero(demand > 0):
            got = p.samples[x[:, k]].sum()
            assert got >= demand[k] * (1 - 1e-9)
            assert np.all(got - p.samples[x[:, k]] < demand[k] * (1 - 1e-9))  # no holder can go
        moved = np.flatnonzero(relay != np.arange(p.num_devices))
        assert np.all(relay[relay[moved]] == relay[moved])  # one hop


def test_round_columns_repairs_an_empty_lp_solution():
    p = random_instance(30, 1, 4, 5)
    route = EdgeRoutes.of(p, 0, [0])
    x = round_columns(p, route, np.zeros(route.dev.size), 50.0)
    demand = p.coverage_demand()[0]
    assert np.all(p.samples @ x >= demand * (1 - 1e-9))


@pytest.mark.parametrize(("seed", "tx"), [(40, 1.0), (47, 1.0), (49, 1.0), (59, 0.05), (56, 0.05)])
def test_large_edge_rounding_keeps_the_bound_valid(monkeypatch, seed, tx):
    p = random_instance(10, 2, 4, seed)
    if tx != 1.0:  # weak uplinks: relays worth it
        p = dataclasses.replace(p, tx_power_w=np.full(10, tx))
    best = exact_solve(p).objective
    monkeypatch.setattr(improve, "MODEL_MAX_DEVICES", 2)  # 5-device edges count as large: rounding, no model
    monkeypatch.setattr(improve, "LARGE_EDGE_SHARE", 1.0)
    plain = joint_solve(p, enum_max=0, local_rounds=0, time_limit_s=0)
    plan = joint_solve(p, enum_max=0, local_rounds=0, time_limit_s=20)
    assert check_plan(p, plan) == []
    assert plan.lower_bound <= best * (1 + 1e-7)  # valid
    assert plan.objective >= best * (1 - 1e-7)
    assert plan.objective <= plain.objective * (1 + 1e-12)
    assert plan.lower_bound >= plain.lower_bound * (1 - 1e-12)
    assert plan.objective < plain.objective or plan.lower_bound > plain.lower_bound  # the rounding did something


def test_group_cost_charges_joining_a_group_at_least_alone_and_never_a_relay_that_relays():
    p = random_instance(40, 1, 5, 1)
    p = dataclasses.replace(p, tx_power_w=np.full(40, 0.05))  # weak uplinks: relayed routes worth it
    plan = joint_solve(p, time_limit_s=0)
    route = EdgeRoutes.of(p, 0, [0])
    t = plan.latency_s
    alone = route.column_cost(t)
    joined = group_cost(p, route, plan.placement, plan.relay, t)
    assert np.all(joined >= alone * (1 - 1e-12))
    # a device whose every neighbour relays itself can only go direct: its columns cost their direct band (one
    # whose relayed routes are cheaper than direct for some subset, so that the check can fail)
    band = _direct_band(route, t)  # every route's band alone
    rel = route.up != route.dev[route.col]
    direct_of = np.full(route.dev.size, np.inf)
    np.minimum.at(direct_of, route.col[~rel], band[~rel])
    i = int(route.dev[route.col[np.flatnonzero(rel & (band < direct_of[route.col]))[0]]])
    relay = np.arange(p.num_devices)
    nbrs = p.d2d_dst[p.d2d_src == i]
    for j in nbrs:  # each neighbour of i relays through one of its own other neighbours
        other = [k for k in p.d2d_dst[p.d2d_src == j] if k != i and k not in nbrs]
        if other:
            relay[j] = other[0]
    assert np.all(relay[nbrs] != nbrs)  # the instance allows it (else the check below says nothing)
    cut = group_cost(p, route, plan.placement, relay, t)
    cols = np.flatnonzero(route.dev == i)
    d_routes = np.flatnonzero(route.up == route.dev[route.col])
    direct = np.full(route.dev.size, np.inf)
    np.minimum.at(direct, route.col[d_routes], _direct_band(route, t)[d_routes])
    assert np.allclose(cut[cols], direct[cols], rtol=1e-12)


def _direct_band(route, t):
    slack = t - route.ready
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(slack > 0, route.pay[route.col] / np.where(slack > 0, slack, 1.0), np.inf)
    return min_bandwidth(q, route.a)
