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


@pytest.mark.parametrize(("n", "lam", "seed"), [(4, 0.5, 0), (5, 5.0, 1), (5, 0.05, 0)])
def test_pair_dual_with_payload_classes_stays_below_the_optimum(
    n: int, lam: float, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`CLASSES` 2 (a relay's own columns in two payload buckets, each route priced from its bucket's largest own
    payload): still never above exact_solve's energy at the optimum's latency, and at T = inf at least the one-class
    LP's value less the generation's tolerance (more pair rows, dearer relayed bits: a tighter LP)."""
    p = random_instance(n, 1, 4, 900 + 7 * n + seed, lam=lam, d2d_neighbours=3)
    plan = exact_solve(p)
    got = {}
    for classes in (1, 2):
        monkeypatch.setattr(pair_dual, "CLASSES", classes)
        pairs = PairDual(p)
        pairs.solve()
        assert pairs.duals
        for t in (plan.latency_s, math.inf):
            val = float(np.sum(pairs.energy_edges(t, np.zeros(1), np.zeros(1))))
            assert val <= plan.energy_j * (1 + 1e-9), (classes, t, val, plan.energy_j)
        got[classes] = pairs.duals[0].value(math.inf)
    assert got[2] >= got[1] - 2e-4 * abs(got[1]) - 1e-9, got


def test_route_lp_columns_keep_their_rows_ascending() -> None:
    """RouteLP sorts its entries by column alone (stable), relying on each block adding a column's rows in ascending
    order; `generate` reads a column's first entry as its device row and its last as its pair (or coverage) row.
    Every column's rows ascend strictly, with covers, union and band rows and two payload classes."""
    for seed, agg in ((0, False), (1, True), (2, False)):
        p = random_instance(8, 1, 4, 60 + seed, lam=0.5, relay_aggregates=agg, d2d_neighbours=3)
        demand = EnergyBound.of(p).demand[0]
        for kw in ({}, {"covers": True}, {"union": agg, "band_row": True}, {"classes": 2}):
            ee = EdgeEnergy.of(p, 0, demand, **kw)
            assert ee is not None
            lp = ee.lp
            for j in range(lp.start.size - 1):
                rows = lp.index[lp.start[j] : lp.start[j + 1]]
                assert np.all(np.diff(rows) > 0), (seed, kw, j, rows)


@pytest.mark.parametrize("classes", [1, 2])
def test_pair_rows_are_route_lps_rows_without_its_matrix(classes: int) -> None:
    """solvers/pair_rows.py: the same row bounds as `RouteLP` (no covers, union or band rows), A^T lambda equal to
    RouteLP's sparse product for random lambda, and each column's entries (rows, values, ascending) as RouteLP's;
    with two payload classes (relays' direct columns in several pair rows) and relays that train nothing."""
    from solvers.pair_rows import PairRows

    p = random_instance(150, 1, 5, 17, lam=0.5, d2d_neighbours=3)
    demand = EnergyBound.of(p).demand[0]
    ee = EdgeEnergy.of(p, 0, demand, classes=classes)
    assert ee is not None
    lp = ee.lp
    rows = PairRows(ee.dev, ee.mbits, p.samples, demand, ee.lcol, ee.ldst, ee.lcls, ee.ccls)
    assert (rows.n, rows.m) == (lp.n, lp.m)
    assert np.array_equal(rows.row_lo, lp.row_lo) and np.array_equal(rows.row_hi, lp.row_hi)
    rng = np.random.default_rng(0)
    for _ in range(3):
        lam = rng.normal(size=lp.m)
        ref = np.zeros(lp.n)
        col = np.repeat(np.arange(lp.n), np.diff(lp.start))
        np.add.at(ref, col, lp.value * lam[lp.index])
        assert np.allclose(rows.shift(lam), ref, rtol=1e-12, atol=1e-12)
    cols = np.sort(rng.choice(lp.n, size=500, replace=False))
    start, index, value = rows.entries(cols)
    for i, c in enumerate(cols):
        lo_, hi_ = lp.start[c], lp.start[c + 1]
        assert np.array_equal(index[start[i]:start[i + 1]], lp.index[lo_:hi_]), c
        assert np.allclose(value[start[i]:start[i + 1]], lp.value[lo_:hi_], rtol=1e-15), c
    assert np.array_equal(rows.devrow, lp.index[lp.start[:-1]])
    last = lp.index[lp.start[1:] - 1]
    assert np.array_equal(rows.group, np.where(last >= rows.npair0, last, -1))
    assert np.any(ee.ccls[: ee.dev.size] == 0)  # relays' empty columns are in
