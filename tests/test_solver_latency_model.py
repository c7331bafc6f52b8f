"""solvers/latency_model.py: the lambda = 0 column model at a trial latency, against the exact references."""

from __future__ import annotations

import time

import numpy as np
import pytest

from solvers import random_instance, solve
from solvers.evaluate import evaluate
from solvers.exact import exact_solve
from solvers.joint import joint_solve
from solvers.latency_model import LatencyModel
from solvers.latency_search import search_latency
from solvers.model import exact_cost
from solvers.reference import reference_power_frequency
from solvers.union_model import UnionModel

# Single edges of 4-5 devices (the reference enumerates every minimal cover x relay map), with and without a relay
# capacity; the weak uplinks (tx 0.05 W) make relays worth it on some seeds.
SUITE = [(n, m, seed, cap, tx) for n, m, seed, cap, tx in (
    (4, 4, 0, None, 1.0), (4, 5, 1, None, 0.05), (5, 4, 2, None, 1.0), (5, 4, 3, 1, 0.05), (4, 4, 4, None, 0.05),
    (4, 3, 5, None, 1.0))]


def _instance(n, m, seed, cap, tx):
    p = random_instance(n, 1, m, seed, relay_capacity=cap)
    if tx != 1.0:
        import dataclasses
        p = dataclasses.replace(p, tx_power_w=np.full(n, tx))
    return p


def _reference(p) -> float:
    """The reference's optimum with power and frequency pinned at the instance's values (no decision left)."""
    import dataclasses
    fixed = dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=p.cpu_hz.copy(), f_max=p.cpu_hz.copy())
    return reference_power_frequency(fixed).objective


def _plain(p):
    """A plain incumbent (no enumeration, no local search, no model), so the search has work to do."""
    return joint_solve(p, enum_max=0, local_rounds=0, time_limit_s=0)


@pytest.mark.parametrize("n,m,seed,cap,tx", SUITE)
def test_search_is_within_the_gap_of_the_reference_and_its_bound_is_valid(n, m, seed, cap, tx):
    p = _instance(n, m, seed, cap, tx)
    best = _reference(p)  # enumeration + 1-D convex programs, no model
    inc = _plain(p)
    s = search_latency(p, inc.placement, inc.relay, inc.objective, time.perf_counter() + 60.0, gap=0.01)
    assert s.proven and s.lower_bound >= 0.99 * s.latency
    assert s.lower_bound <= best * (1 + 1e-7)  # valid
    assert best * (1 - 1e-7) <= s.latency <= best * 1.01  # a real plan, within the gap
    assert s.latency == pytest.approx(exact_cost(p, s.x, s.relay), rel=1e-9)


@pytest.mark.parametrize("n,m,seed,cap,tx", SUITE[:4])
def test_trial_latency_is_decided_exactly_on_both_sides_of_the_optimum(n, m, seed, cap, tx):
    """Just below the optimum no plan fits (a certificate); just above, the MILP's plan really finishes in time."""
    p = _instance(n, m, seed, cap, tx)
    best = _reference(p)
    lm = LatencyModel(p)
    below = lm.at(best * 0.998, time.perf_counter() + 60.0)
    assert below.feasible is False
    above = lm.at(best * 1.002, time.perf_counter() + 60.0)
    assert above.feasible is True and above.cols is not None
    x, relay = lm.plan(above.cols)
    assert exact_cost(p, x, relay) <= best * 1.002 * (1 + 1e-9)


def test_joint_certifies_an_eight_device_edge():
    p = random_instance(8, 1, 5, seed=2)
    plan = solve(p, "joint", enum_max=0, local_rounds=0, time_limit_s=120)
    assert plan.status == "optimal" and plan.lower_bound >= 0.99 * plan.objective
    assert plan.objective == pytest.approx(evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).objective)


# relay_aggregates: the union model (solvers/union_model.py) against the exact reference of the project
AGGREGATES = [(n, m, seed) for n, m, seed in ((4, 4, 0), (4, 4, 1), (5, 4, 2), (5, 4, 5), (6, 3, 4))]


@pytest.mark.parametrize("n,m,seed", AGGREGATES)
def test_union_model_decides_trial_latencies_exactly_with_aggregating_relays(n, m, seed):
    p = random_instance(n, 1, m, seed, relay_aggregates=True)
    if seed % 2:  # weak uplinks: relays pay
        import dataclasses
        p = dataclasses.replace(p, tx_power_w=np.full(n, 0.05))
    best = exact_solve(p).objective
    um = UnionModel(p)
    assert um.at(best * 0.998, time.perf_counter() + 60.0).feasible is False
    above = um.at(best * 1.002, time.perf_counter() + 60.0)
    assert above.feasible is True and above.cols is not None
    assert exact_cost(p, *um.plan(above.cols)) <= best * 1.002 * (1 + 1e-9)
    inc = _plain(p)
    s = search_latency(p, inc.placement, inc.relay, inc.objective, time.perf_counter() + 60.0, gap=0.01)
    assert s.proven and s.lower_bound <= best * (1 + 1e-7) and s.latency <= best * 1.01


def test_union_model_tightens_the_bound_of_an_eight_device_edge():
    """Aggregating relays on 8 devices: the heuristics' bound is 20 % off (29 % before the union latency bound of
    solvers/union_bound.py); the union model's ladder certifies
    within 16 % in a few seconds (the tight 1 % test does not finish: README, where the targets stand)."""
    p = random_instance(8, 1, 6, seed=0, relay_aggregates=True)
    alone = solve(p, "joint", time_limit_s=0)
    plan = solve(p, "joint", time_limit_s=6)
    assert alone.gap > 0.18 and plan.gap < 0.16 and plan.lower_bound <= plan.objective


def test_one_edge_only():
    with pytest.raises(ValueError, match="num_edges"):
        LatencyModel(random_instance(4, 2, 3, seed=0))
