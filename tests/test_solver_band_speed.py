"""The faster band evaluations of the heuristics against the plain computations they replaced: the water level's
derivative in the deadline, `best_deadline` by regula falsi on f' (a golden-section
search here), and the local search's neighbours priced at the current latency first (`EdgeView.latency(below=)`)."""

from __future__ import annotations

import numpy as np
import pytest

from solvers import random_instance, solve
from solvers.edgebatch import EdgeView
from solvers.energy import best_deadline, deadline_energy, deadline_energy_slope, round_uploads
from solvers.exact import minimal_covers
from solvers.local import neighbours


def _uploads(seed: int, n: int = 6, ng: int = 2) -> tuple:
    rng = np.random.default_rng(seed)
    group = np.sort(np.concatenate([np.arange(ng), rng.integers(0, ng, n - ng)]))
    start, bits = rng.uniform(0, 5, n), 10 ** rng.uniform(5, 8, n)
    a, power = 10 ** rng.uniform(6, 9, n), rng.uniform(0.1, 1, n)
    budget = 10 ** rng.uniform(6.5, 7.5, ng)
    return group, start, bits, a, power, budget


@pytest.mark.parametrize("seed", range(6))
def test_the_water_levels_slope_is_the_energys_derivative(seed: int) -> None:
    """dE_g / dT_g of `deadline_energy_slope` against central differences of the energy, at deadlines where some
    uploaders are held at their least band and where none is (slope 0)."""
    group, start, bits, a, power, budget = _uploads(seed)
    ng = budget.size
    t0 = np.array([np.max(start[group == g] + bits[group == g] * np.log(2) / a[group == g] * 3) for g in range(ng)])
    for f in (1.0, 1.5, 3.0, 1e3):
        t = t0 * f
        e, _, d = deadline_energy_slope(group, start, bits, a, power, budget, t)
        if not np.all(np.isfinite(e)):
            continue
        h = 1e-6 * t
        up = deadline_energy(group, start, bits, a, power, budget, t + h)[0]
        down = deadline_energy(group, start, bits, a, power, budget, t - h)[0]
        assert np.all(d <= 0)
        assert d == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-9 * np.max(e / t))


def _golden(up, lam: float) -> float:
    """The least T + lam E(T) by a 200-step golden-section search over [T_min, far] (the search it replaced)."""
    lo = float(up.min_latency().max()) * (1 + 1e-9)
    hi = 1e3 * lo

    def f(t: float) -> float:
        return t + lam * up.energy_at(t)[0]

    r = (np.sqrt(5.0) - 1) / 2
    a, b = lo, hi
    best = min(f(lo), f(hi))
    for _ in range(200):
        x1, x2 = b - r * (b - a), a + r * (b - a)
        f1, f2 = f(x1), f(x2)
        best = min(best, f1, f2)
        a, b = (a, x2) if f1 <= f2 else (x1, b)
    return best


@pytest.mark.parametrize(("mode", "lam", "seed"), [("one-hop", 0.05, 0), ("one-hop", 5.0, 1),
                                                   ("aggregates", 0.5, 0), ("aggregates", 50.0, 2)])
def test_best_deadline_reaches_the_golden_section_optimum(mode: str, lam: float, seed: int) -> None:
    p = random_instance(8, 1, 6, seed, lam=lam, relay_aggregates=mode == "aggregates", d2d_neighbours=3)
    plan = solve(p, "greedy")
    up, _ = round_uploads(p, plan.placement, plan.relay)
    t, b = best_deadline(up, lam)
    got = t + lam * float(np.sum(up.power * up.bits / (b * np.log2(1 + up.a / b))))
    assert got == pytest.approx(_golden(up, lam), rel=1e-11)
    t_hint, _ = best_deadline(up, lam, hint=1.01 * t)
    assert t_hint + lam * up.energy_at(t_hint)[0] == pytest.approx(got, rel=1e-11)


@pytest.mark.parametrize(("n", "agg", "seed"), [(8, False, 0), (8, True, 1), (12, False, 2), (12, True, 3)])
def test_latency_below_solves_exactly_the_neighbours_that_finish_by_then(n: int, agg: bool, seed: int) -> None:
    p = random_instance(n, 1, 6, seed, lam=0.0, relay_aggregates=agg, d2d_neighbours=3)
    view = EdgeView.of(p, 0)
    plan = solve(p, "greedy")
    d = view.dev
    covers = [minimal_covers(p.samples[d], p.eligible[d, k], view.demand[k]) for k in range(p.num_modules)]
    xa, ra = neighbours(view, plan.placement[d], np.searchsorted(d, plan.relay[d]), compound=n <= 8, covers=covers)
    t = view.latency(xa, ra)
    for below in np.quantile(t, [0.0, 0.1, 0.5, 1.0]) * (1 + 1e-7):
        tb = view.latency(xa, ra, below=float(below))
        kept = np.isfinite(tb)
        assert np.array_equal(tb[kept], t[kept])  # the same numbers where solved
        assert np.all(t[~kept] > below) and np.all(t[kept] <= below * (1 + 1e-8))
