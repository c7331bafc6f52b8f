"""The latency bound when relays aggregate (solvers/union_bound.py via solvers/bounds.py): a relayed subset is charged
at its relay (each group at least its largest member's band), not at 0, so relay-heavy aggregating edges get a
positive bound that stays at or below the exact optimum (exact_solve) at every lambda."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from solvers import random_instance
from solvers.bounds import round_lower_bound, subset_lower_bound
from solvers.evaluate import evaluate
from solvers.exact import exact_solve
from solvers.instance import RoundProblem


def relay_heavy(n: int, seed: int, lam: float = 0.0) -> RoundProblem:
    """One edge, every device a D2D neighbour of every other over fast links, a thin uplink band, aggregating relays:
    relaying costs almost nothing, so routes priced at 0 let the old LP prove nothing (seed 0: bound 0)."""
    rng = np.random.default_rng(seed)
    return random_instance(
        n,
        1,
        int(rng.integers(2, 5)),
        9100 + seed,
        lam=lam,
        relay_aggregates=True,
        d2d_neighbours=n - 1,
        d2d_bandwidth_hz=float(10 ** rng.uniform(7, 8.5)),
        bandwidth_per_device_hz=float(10 ** rng.uniform(5.0, 6.0)),
        gamma=float(rng.uniform(0.4, 0.9)),
    )


def bounds_and_optimum(p: RoundProblem) -> tuple[float, float, float]:
    """(subset_lower_bound from the optimal plan's edge latency, the same with the pricing the union LP replaced
    (relayed subsets at 0: the union LP turned off), the exact optimum's objective)."""
    import solvers.bounds as bounds

    ex = exact_solve(p)
    t = evaluate(p, ex.placement, ex.relay, ex.bandwidth_hz).edge_latency_s
    lb = subset_lower_bound(p, t)
    keep, bounds.UNION_MAX_ROUTES = bounds.UNION_MAX_ROUTES, -1
    covers, bounds.LATENCY_COVERS = bounds.LATENCY_COVERS, False  # the same LP family (the union LP has none)
    try:
        old = subset_lower_bound(p, t)
    finally:
        bounds.UNION_MAX_ROUTES, bounds.LATENCY_COVERS = keep, covers
    return lb, old, ex.objective


def test_positive_where_free_relays_gave_zero() -> None:
    lb, old, best = bounds_and_optimum(relay_heavy(5, 0))
    assert old == 0.0  # the case in question: every device "relays" for free, no trial latency is refuted
    assert 0.3 * best < lb <= best * (1 + 1e-9)


@pytest.mark.parametrize(("n", "seed"), [(4, 0), (4, 1), (4, 2), (5, 1), (5, 3)])
def test_valid_and_never_below_the_free_pricing(n: int, seed: int) -> None:
    lb, old, best = bounds_and_optimum(relay_heavy(n, seed))
    assert old * (1 - 1e-9) <= lb <= best * (1 + 1e-9)  # each group's band >= its own subset's: the LP only rises


@pytest.mark.parametrize(("seed", "lam"), [(0, 0.05), (0, 5.0), (2, 0.5), (3, 50.0)])
def test_round_bound_valid_at_lambda(seed: int, lam: float) -> None:
    """lambda > 0: the latency-energy bound built on it stays at or below the exact optimum."""
    p = dataclasses.replace(relay_heavy(4 + seed % 2, seed), lam=lam)
    ex = exact_solve(p)
    t = evaluate(p, ex.placement, ex.relay, ex.bandwidth_hz).edge_latency_s
    lb = round_lower_bound(p, t)
    assert 0 < lb <= ex.objective * (1 + 1e-9)
