"""The subset-column Lagrangian bound (solvers/subset_dual.py): never above the exact optimum (solvers/exact.py,
enumeration, written apart from it), at least the knapsack it starts from, and above it where subsets' compute
times bind."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from solvers import random_instance, subset_dual
from solvers.bounds import subset_lower_bound
from solvers.energy_bound import EnergyBound, tradeoff_lower_bound
from solvers.evaluate import evaluate
from solvers.exact import exact_solve
from solvers.subset_dual import SubsetDual

CASES = [(n, lam, seed, kind) for n in (4, 6) for lam in (0.05, 0.5, 5.0) for seed in range(2)
         for kind in ("relays", "aggregates", "direct")]


def _instance(n: int, lam: float, seed: int, kind: str):
    """relays / aggregates: 3 D2D neighbours, 2 edges at 6 devices (loose: the relay prices are the weak part);
    direct: one edge, no D2D, every eligible module covered (gamma 1): there the bound comes within 0.1-5 % of the
    optimum's energy at lambda 5, so a column priced above what it costs would show."""
    if kind == "direct":
        return random_instance(n, 1, 3 + seed % 2, 900 + 7 * n + seed, lam=lam, d2d_neighbours=0, gamma=1.0)
    return random_instance(n, max(1, n // 3), 3 + seed % 2, 900 + 7 * n + seed, lam=lam,
                           relay_aggregates=kind == "aggregates")


@pytest.mark.parametrize(("n", "lam", "seed", "kind"), CASES)
def test_subset_dual_never_exceeds_the_exact_optimum(n: int, lam: float, seed: int, kind: str) -> None:
    p = _instance(n, lam, seed, kind)
    plan = exact_solve(p)
    sd = SubsetDual.of(p, iterations=15)
    assert sd is not None
    # at the optimum's own latency and above it (no plan of latency <= t spends less than E_lb(t) <= E*), at the
    # knapsack's band prices and at others (every price is valid)
    for t in (plan.latency_s, 3 * plan.latency_s):
        _, nu = sd.eb.prices(t)
        for scale in (0.0, 1.0, 3.0):
            got = sd.energy_edges(t, nu * scale, np.zeros(p.num_edges))
            assert float(np.sum(got)) <= plan.energy_j * (1 + 1e-9), (t, scale, got, plan.energy_j)
    t_lb = subset_lower_bound(p, evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s)
    lb = tradeoff_lower_bound(p, t_lb, budget=6, subset=SubsetDual.of(p, iterations=10))
    assert lb <= plan.objective * (1 + 1e-9), (lb, plan.objective)


def test_subset_dual_starts_at_the_knapsack_and_sees_subsets_compute_times() -> None:
    """A 1,000-device round at lambda 0.5: at every latency at least the knapsack's value per edge; near the
    latency bound (T = 15 s: many devices cannot train all their modules by then) well above it."""
    p = random_instance(1000, 10, 8, 1_000_000, lam=0.5)
    sd = SubsetDual.of(p)
    assert sd is not None
    eb = EnergyBound.of(p)
    for t in (15.0, 85.0):
        knap, nu = eb.prices(t)
        got = sd.energy_edges(t, nu, np.zeros(p.num_edges))
        assert np.all(got >= knap * (1 - 1e-9))
        if t == 15.0:
            assert float(np.sum(got)) > 1.2 * float(np.sum(knap))


def test_subset_dual_declines_power_frequency_and_huge_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    p = random_instance(6, 2, 3, 3, lam=0.5)
    decisions = dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())
    assert decisions.has_power_frequency and SubsetDual.of(decisions) is None
    monkeypatch.setattr(subset_dual, "MAX_COLUMNS", 10)
    assert SubsetDual.of(p) is None
