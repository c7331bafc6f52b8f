"""Load levels of a relay in the pair-row LP (solvers/relay_levels.py): each level's chord stays below the relay's
extra upload for every own payload up to its class's largest and every load in the level (brute force over the band);
the pair-row LP with levels stays below the exact optimum's energy (solvers/exact.py, enumeration written apart from
it) at the optimum's latency and above, tight edges and loose ones; and on a 100-device edge its multipliers' bound
is the LP over every column at unlimited latency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvers import pair_dual, random_instance
from solvers.energy_bound import EnergyBound
from solvers.evaluate import uplink_rate
from solvers.exact import exact_solve
from solvers.pair_dual import PairDual, edge_dual
from solvers.relay_levels import breakpoints
from solvers.relay_price import band_energy, level_chord
from solvers.subset_energy import EdgeEnergy


def _brute(u: np.ndarray, pw: np.ndarray, a: np.ndarray, nu: float, band: float) -> np.ndarray:
    b = band * np.geomspace(1e-9, 1.0, 40001)
    return np.min(pw[:, None] * u[:, None] / uplink_rate(b[None, :], a[:, None]) + nu * b[None, :], axis=1)


def test_level_chord_stays_below_the_relays_extra_upload() -> None:
    rng = np.random.default_rng(3)
    n, band = 150, 2e7
    pw = 10 ** rng.uniform(-1.5, 0, n)
    a = 10 ** rng.uniform(5, 10, n)
    for nu in (0.0, 1e-9, 1e-7, 1e-5):
        top = np.where(rng.random(n) < 0.2, 0.0, 10 ** rng.uniform(5, 9, n))
        own = top * rng.random(n)
        lo = np.where(rng.random(n) < 0.3, 0.0, 10 ** rng.uniform(5, 9, n))
        hi = lo + 10 ** rng.uniform(4, 9, n)
        load = lo + (hi - lo) * rng.random(n)
        slope, icpt = level_chord(lo, hi, top, pw, a, nu, band)
        assert np.all(np.isfinite(slope)) and np.all(icpt[lo == 0] == 0)
        lo_own, _ = band_energy(own, pw, a, nu, band)
        whole = _brute(own + load, pw, a, nu, band)
        assert np.all(lo_own + icpt + slope * load <= whole * (1 + 1e-9))
        # not loose where it counts: at the level's right end, the median within 5 % of the true increment
        g_hi = _brute(top + hi, pw, a, nu, band) - np.where(top > 0, _brute(top, pw, a, nu, band), 0.0)
        assert np.median((icpt + slope * hi) / g_hi) >= 0.95, np.median((icpt + slope * hi) / g_hi)
    slope, icpt = level_chord(np.array([5.0]), np.array([5.0]), np.array([1.0]), pw[:1], a[:1], 1e-7, band)
    assert np.isinf(slope[0]) and np.isinf(icpt[0])  # an empty level


def test_breakpoints_sum_the_largest_in_neighbour_payloads() -> None:
    own = np.array([4.0, 1.0, 2.0, 7.0, 0.0])
    src, dst = np.array([0, 1, 2, 3, 1]), np.array([4, 4, 4, 0, 3])
    bp = breakpoints(own, src, dst, 3)
    assert bp[4].tolist() == [0.0, 4.0, 6.0, 7.0]
    assert bp[0].tolist() == [0.0, 7.0, 7.0, 7.0]  # one in-neighbour: the higher levels are empty
    assert bp[3].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert bp[2].tolist() == [0.0, 0.0, 0.0, 0.0]


CASES = [(n, lam, seed) for n in (4, 5) for lam in (0.05, 0.5, 5.0) for seed in range(2)]


@pytest.mark.parametrize(("n", "lam", "seed"), CASES)
@pytest.mark.parametrize("levels", [2, 3])
def test_levels_never_exceed_the_exact_optimum(
    n: int, lam: float, seed: int, levels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = random_instance(n, 1, 3 + (n + seed) % 3, 1300 + 17 * n + seed, lam=lam, d2d_neighbours=3)
    plan = exact_solve(p)
    monkeypatch.setattr(pair_dual, "LEVELS", levels)
    pairs = PairDual(p)
    pairs.solve()
    assert pairs.duals
    for t in (plan.latency_s, 1.5 * plan.latency_s, math.inf):
        val = float(np.sum(pairs.energy_edges(t, np.zeros(1), np.zeros(1))))
        assert val <= plan.energy_j * (1 + 1e-9), (levels, t, val, plan.energy_j)


def test_levels_lp_is_its_multipliers_bound_at_unlimited_latency() -> None:
    """A 100-device edge with 2 levels: the multipliers' bound equals the LP over every column (copies and routes
    per level consistent), and it lies above the LP without levels there."""
    p = random_instance(200, 2, 5, 41, lam=0.5)
    eb = EnergyBound.of(p)
    _, nu = eb.prices(math.inf)
    e = 0
    dual = edge_dual(p, e, eb.demand[e], float(nu[e]), levels=2)
    assert dual is not None
    ee = EdgeEnergy.of(p, e, eb.demand[e], levels=2)
    flat = EdgeEnergy.of(p, e, eb.demand[e])
    assert ee is not None and flat is not None and ee.dev.size > flat.dev.size
    lp_inf = ee.value(math.inf, float(nu[e]), 0.0)
    scale = abs(lp_inf) + float(nu[e] * p.edge_bandwidth_hz[e])
    assert lp_inf - 2e-4 * scale <= dual.value(math.inf) <= lp_inf + 1e-6 * scale
    assert lp_inf > flat.value(math.inf, float(nu[e]), 0.0)
