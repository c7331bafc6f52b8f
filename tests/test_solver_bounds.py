"""Certified bounds at lambda > 0 (solvers/energy_bound.py): never above the exact optimum (solvers/exact.py,
enumeration, written apart from the bound), and tighter than the infinite-band energy bound they replace."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvers import random_instance
from solvers.bounds import energy_lower_bound, round_lower_bound, subset_lower_bound
from solvers.clock import Clock
from solvers.energy_bound import EnergyBound, per_bit_cost, tradeoff_lower_bound, unwindowed_cost
from solvers.evaluate import evaluate, uplink_rate
from solvers.exact import exact_solve


def test_per_bit_cost_is_below_the_brute_force_minimum() -> None:
    rng = np.random.default_rng(0)
    power, a = rng.uniform(0.1, 1.0, 40), 10 ** rng.uniform(5, 9, 40)
    umax, cap = 10 ** rng.uniform(5, 8, 40), 10 ** rng.uniform(5, 7, 40)
    nu = np.concatenate([np.zeros(8), 10 ** rng.uniform(-12, -4, 32)])
    b = cap[:, None] * np.geomspace(1e-9, 1.0, 20001)[None, :]
    for t in (0.5, 5.0, 50.0, math.inf):
        r = uplink_rate(b, a[:, None])
        brute = (power[:, None] / r + nu[:, None] * b / np.minimum(umax[:, None], t * r)).min(axis=1)
        k, b_hi, k_up = per_bit_cost(power, a, umax, cap, t, nu)
        assert np.all(k_up >= k) and np.all(k_up <= brute * (1 + 1e-3))
        assert np.all(k <= brute * (1 + 1e-12))
        assert np.all(k >= brute * (1 - 1e-3))  # and tight: the search finds the minimum
        assert np.all(b_hi <= cap * (1 + 1e-12))


def test_unwindowed_cost_brackets_the_brute_force_minimum() -> None:
    """The table-based per-bit cost at unlimited latency: below the brute-force minimum over b <= cap, its upper
    value above it, its band at least the minimizer, both sides within 0.1 % (nu = 0: the cap binds)."""
    rng = np.random.default_rng(1)
    power, a = rng.uniform(0.1, 1.0, 60), 10 ** rng.uniform(5, 9, 60)
    umax, cap = 10 ** rng.uniform(5, 8, 60), 10 ** rng.uniform(5, 7, 60)
    nu = np.concatenate([np.zeros(10), 10 ** rng.uniform(-14, -4, 50)])
    b = cap[:, None] * np.geomspace(1e-12, 1.0, 40001)[None, :]
    g = power[:, None] / uplink_rate(b, a[:, None]) + nu[:, None] * b / umax[:, None]
    brute, arg = g.min(axis=1), b[np.arange(60), g.argmin(axis=1)]
    k, b_hi, k_up = unwindowed_cost(power, a, umax, cap, nu)
    assert np.all(k <= brute * (1 + 1e-12)) and np.all(k >= brute * (1 - 1e-3))
    assert np.all(k_up >= brute * (1 - 1e-6)) and np.all(k_up <= brute * (1 + 1e-3))  # the grid: 7e-4 a step
    assert np.all(b_hi >= arg * (1 - 1e-3)) and np.all(b_hi <= cap * (1 + 1e-12))
    k_gold, _, _ = per_bit_cost(power, a, umax, cap, math.inf, nu)
    assert np.allclose(k, k_gold, rtol=1e-3)


CASES = [(n, lam, seed, agg) for n in (4, 8) for lam in (0.05, 0.5, 5.0) for seed in range(2)
         for agg in (False, True)]


@pytest.mark.parametrize(("n", "lam", "seed", "agg"), CASES)
def test_tradeoff_bound_never_exceeds_the_exact_optimum(n: int, lam: float, seed: int, agg: bool) -> None:
    p = random_instance(n, max(1, n // 4), 3 + seed % 2, 500 + 7 * n + seed, lam=lam, relay_aggregates=agg)
    plan = exact_solve(p)
    t_lb = subset_lower_bound(p, evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s)
    assert t_lb <= plan.latency_s * (1 + 1e-9)
    lb = tradeoff_lower_bound(p, t_lb)
    assert lb <= plan.objective * (1 + 1e-9), (lb, plan.objective)
    # E_lb(T) at the optimum's own latency bounds its energy
    assert EnergyBound.of(p).energy(plan.latency_s) <= plan.energy_j * (1 + 1e-9)
    assert round_lower_bound(p, np.full(p.num_edges, plan.latency_s)) <= plan.objective * (1 + 1e-9)


@pytest.mark.parametrize(("n", "lam", "seed"), [(4, 0.5, 0), (8, 5.0, 1), (8, 0.05, 0)])
def test_tradeoff_bound_with_the_clock_out_never_exceeds_the_exact_optimum(n: int, lam: float, seed: int) -> None:
    """The fewest steps (the clock has run out: E_lb at t0 and at t0 + lam e0, 0 past it) stay a valid bound."""
    p = random_instance(n, max(1, n // 4), 3 + seed % 2, 500 + 7 * n + seed, lam=lam)
    plan = exact_solve(p)
    t_lb = subset_lower_bound(p, evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s)
    lb = tradeoff_lower_bound(p, t_lb, clock=Clock(0.0))  # a deadline long passed
    assert 0 < lb <= plan.objective * (1 + 1e-9), (lb, plan.objective)


def test_tradeoff_bound_beats_the_infinite_band_bound() -> None:
    """A 1,000-device round at lambda = 0.5: the band-priced bound is well above T_lb + lambda E_inf-band."""
    p = random_instance(1000, 10, 6, 1000_001, lam=0.5)
    t_lb = subset_lower_bound(p, np.full(p.num_edges, 60.0))
    loose = t_lb + p.lam * energy_lower_bound(p)
    assert tradeoff_lower_bound(p, t_lb) > 1.5 * loose


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_latency_bound_with_minimal_covers_is_valid_and_no_lower(seed: int, monkeypatch) -> None:
    """The latency LP with each module's minimal covers (bounds.LATENCY_COVERS) never exceeds the exact least
    latency of a 5-device edge, reaches 0.99 of it (without the covers: 0.73-0.85 on these seeds) and never falls
    below the LP without them; scipy's HiGHS agrees with the fast path."""
    import solvers.bounds as bounds

    p = random_instance(5, 1, 4, seed)
    best = exact_solve(p).objective
    upper = np.array([best * 1.5])
    with_covers = subset_lower_bound(p, upper, refine=8)
    monkeypatch.setattr(bounds, "LATENCY_COVERS", False)
    without = subset_lower_bound(p, upper, refine=8)
    assert without * (1 - 1e-9) <= with_covers <= best * (1 + 1e-9)
    assert with_covers >= 0.99 * best
    routes = bounds.EdgeRoutes.of(p, 0, [0])
    demand = p.coverage_demand()[0]
    fast = bounds.EdgeLP(routes.dev, routes.mbits, p.samples, demand, covers=True)
    slow = bounds.EdgeLP(routes.dev, routes.mbits, p.samples, demand, backend="scipy", covers=True)
    assert fast.ny > 0
    c = np.random.default_rng(seed).uniform(0.1, 2.0, routes.dev.size)
    (s1, v1), (s2, v2) = fast.solve(c), slow.solve(c)
    assert s1 == s2 == "optimal" and v1 == pytest.approx(v2, rel=1e-7)


@pytest.mark.parametrize(("n", "lam", "seed", "agg"), [c for c in CASES if c[0] == 4 and c[2] == 0])
def test_capped_round_bound_never_exceeds_the_exact_optimum(n: int, lam: float, seed: int, agg: bool) -> None:
    """The fixed-power bound given a known plan's objective (bounds.LATENCY_CAP: the latency search ends at
    upper - lambda E_lb(inf)) stays below the exact optimum: upper a plan 20 % worse (about 0.4 CPU s), and with the
    clock out (the fewest steps) upper the optimum itself or that plan."""
    import solvers.bounds as bounds

    assert bounds.LATENCY_CAP
    p = random_instance(n, max(1, n // 4), 3 + seed % 2, 500 + 7 * n + seed, lam=lam, relay_aggregates=agg)
    plan = exact_solve(p)
    t_known = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    lb = round_lower_bound(p, t_known, upper=1.2 * plan.objective)
    assert 0 < lb <= plan.objective * (1 + 1e-9), (lb, plan.objective)
    for upper in (plan.objective, 1.2 * plan.objective):
        clocked = round_lower_bound(p, t_known, upper=upper, clock=Clock(0.0))
        assert 0 < clocked <= plan.objective * (1 + 1e-9), (clocked, upper, plan.objective)
