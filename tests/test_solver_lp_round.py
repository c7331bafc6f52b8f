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
from solvers.bounds import EdgeRoutes
from solvers.exact import exact_solve
from solvers.joint import joint_solve
from solvers.lp_round import lp_candidates, round_columns, round_edge
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
