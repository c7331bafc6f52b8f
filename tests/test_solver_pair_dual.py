"""The pair-row subset LP's dual at every latency (solvers/pair_dual.py): never above the exact optimum
(solvers/exact.py, enumeration, written apart from it), equal to the LP's own value at unlimited latency (column
generation converged, the bound read off the multipliers), at most the LP solved at each latency (any multipliers
bound the LP from below), and in the round's bound (solvers/bounds.py) at least where it was without it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvers import bounds, pair_dual, random_instance, solve
from solvers.bounds import round_lower_bound, subset_lower_bound
from solvers.clock import Clock
from solvers.energy_bound import EnergyBound, tradeoff_lower_bound
from solvers.evaluate import evaluate
from solvers.exact import exact_solve
from solvers.pair_dual import PairDual, edge_dual
from solvers.subset_energy import EdgeEnergy

CASES = [(n, lam, seed, agg) for n in (4, 5) for lam in (0.05, 0.5, 5.0) for seed in range(2) for agg in (False, True)]


@pytest.mark.parametrize(("n", "lam", "seed", "agg"), CASES)
def test_pair_dual_never_exceeds_the_exact_optimum(n: int, lam: float, seed: int, agg: bool) -> None:
    """No plan of latency <= t spends less than E_lb(t), so at the optimum's latency and above E_lb <= E*; and the
    latency-energy bound with it stays at most the optimum's objective."""
    p = random_instance(n, 1, 3 + seed % 2, 700 + 11 * n + seed, lam=lam, relay_aggregates=agg)
    plan = exact_solve(p)
    pairs = PairDual(p)
    pairs.solve()
    assert pairs.duals  # the edge was reached
    for t in (plan.latency_s, 2 * plan.latency_s, math.inf):
        got = pairs.energy_edges(t, np.zeros(p.num_edges), np.zeros(p.num_edges))
        assert float(np.sum(got)) <= plan.energy_j * (1 + 1e-9), (t, got, plan.energy_j)
    t_lb = subset_lower_bound(p, evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s)
    lb = tradeoff_lower_bound(p, t_lb, budget=6, subset=pairs)
    assert lb <= plan.objective * (1 + 1e-9), (lb, plan.objective)


@pytest.mark.parametrize("agg", [False, True])
def test_pair_dual_is_the_lp_at_unlimited_latency_and_below_it_elsewhere(agg: bool) -> None:
    """A 100-device edge: at T = inf the bound from the multipliers equals the LP over every column (HiGHS, solved
    directly; column generation stops within 1e-4 of it); at finite T it is at most the LP at T (weak duality) and at least its value at inf."""
    p = random_instance(200, 2, 5, 41, lam=0.5, relay_aggregates=agg)
    eb = EnergyBound.of(p)
    _, nu = eb.prices(math.inf)
    e = 0
    dual = edge_dual(p, e, eb.demand[e], float(nu[e]))
    assert dual is not None
    ee = EdgeEnergy.of(p, e, eb.demand[e])
    assert ee is not None
    lp_inf = ee.value(math.inf, float(nu[e]), 0.0)
    scale = abs(lp_inf) + float(nu[e] * p.edge_bandwidth_hz[e])  # the LP's objective before the band charge
    assert lp_inf - 2e-4 * scale <= dual.value(math.inf) <= lp_inf + 1e-6 * scale  # generation stops within 1e-4
    for t in (20.0, 40.0, 80.0):
        lp_t = ee.value(t, float(nu[e]), 0.0)
        assert dual.value(math.inf) * (1 - 1e-9) <= dual.value(t) <= lp_t + 1e-6 * abs(lp_t), (t, dual.value(t), lp_t)


def test_round_bound_with_pair_dual_at_least_without(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clocked 200-device round at lambda 0.5 (over SUBSET_CLOCKED_DEVICES: the subset Lagrangian's path): the
    bound with the pair-row LPs is at least the bound without them, and above the knapsack's floor, still at most a
    feasible plan's objective."""
    p = random_instance(200, 2, 5, 43, lam=0.5)
    plan = solve(p, "greedy")
    t_edge = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    got = {}
    for on in (False, True):
        monkeypatch.setattr(pair_dual, "PAIR_DUAL", on)
        got[on] = round_lower_bound(p, t_edge, upper=plan.objective, clock=Clock.start(60.0))
    assert got[True] >= got[False] * (1 - 1e-9)
    assert got[True] > got[False]
    assert got[True] <= plan.objective * (1 + 1e-9)
    assert bounds.SUBSET_CLOCKED_DEVICES < p.num_devices
