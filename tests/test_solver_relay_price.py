"""solvers/relay_price.py: a relayed bit priced by the secant of its relay's upload energy from the relay's own
payload class. The charge (own column + relayed bits) stays below a brute-force least upload energy of the whole
payload, and the subset LP split by class stays below the exact optimum's energy at its latency (`exact_solve`,
relays that train and relays that train nothing) and never below the LP of one class."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import solvers.relay_price as rp
from solvers import random_instance
from solvers.energy_bound import EnergyBound
from solvers.evaluate import uplink_rate
from solvers.exact import exact_solve
from solvers.relay_price import at_band, band_energy, payload_classes, relayed_price
from solvers.subset_energy import SubsetEnergy


def _brute(u: np.ndarray, pw: np.ndarray, a: np.ndarray, nu: float, band: float) -> np.ndarray:
    b = band * np.geomspace(1e-9, 1.0, 40001)
    return np.min(pw[:, None] * u[:, None] / uplink_rate(b[None, :], a[:, None]) + nu * b[None, :], axis=1)


def test_own_column_plus_relayed_bits_stay_below_the_whole_upload() -> None:
    rng = np.random.default_rng(0)
    n, band = 120, 2e7
    pw = 10 ** rng.uniform(-1.5, 0, n)
    a = 10 ** rng.uniform(5, 10, n)
    for nu in (0.0, 1e-9, 1e-7, 1e-5):
        top = np.where(rng.random(n) < 0.2, 0.0, 10 ** rng.uniform(5, 9, n))
        own = top * rng.random(n)  # the relay's own payload: at most its class's largest
        room = 10 ** rng.uniform(5, 9, n)
        relayed = room * rng.random(n)  # at most the room
        bits = relayed * rng.random(n)  # one route's part of it
        price = relayed_price(bits, top, room, pw, a, nu, band)
        lo_own, up_own = band_energy(own, pw, a, nu, band)
        whole = _brute(own + relayed, pw, a, nu, band)
        assert np.all(np.isfinite(price))
        assert np.all(lo_own + relayed * price <= whole * (1 + 1e-9))
        alone = np.where(own > 0, _brute(own, pw, a, nu, band), 0.0)
        assert np.all(lo_own <= alone * (1 + 1e-9))
        assert np.all(up_own >= alone * (1 - 1e-6))  # the grid's minimum is within 1e-7 of the true one
        assert np.all(price >= pw / uplink_rate(np.full(n, band), a) * (1 - 1e-12))  # the floor
        # below the true secant from the class's largest payload over the whole room (brute force)
        secant = (_brute(top + room, pw, a, nu, band) - np.where(top > 0, _brute(top, pw, a, nu, band), 0.0)) / room
        assert np.all(price <= secant * (1 + 1e-6) + 1e-18)
    assert np.isinf(relayed_price(np.array([2.0]), np.array([1.0]), np.array([1.0]), pw[:1], a[:1], 1e-7, band)[0])


def test_at_band_stays_below_the_banded_upload_and_is_exact_where_the_band_binds() -> None:
    """phi_B(u) >= g(B) - max(g'(B), 0) B (g convex in the band): never above a brute-force minimum over the band,
    equal to it (pw u / R(B) + nu B) where the band binds, where the table's unconstrained minimum falls short."""
    rng = np.random.default_rng(5)
    n, band = 400, 2e6
    pw = 10 ** rng.uniform(-1.5, 0, n)
    a = 10 ** rng.uniform(5, 9, n)
    u = 10 ** rng.uniform(4, 10, n)
    rb = uplink_rate(np.full(n, band), a)
    for nu in (0.0, 1e-10, 1e-8, 1e-6, 1e-4):
        whole = _brute(u, pw, a, nu, band)
        got = at_band(u, pw, a, nu, band, rb)
        assert np.all(got <= whole * (1 + 1e-9)), nu
        lo, _ = band_energy(u, pw, a, nu, band)
        assert np.all(lo <= whole * (1 + 1e-9)) and np.all(lo >= got * (1 - 1e-12)), nu
        x = a / band
        binds = nu * rb**2 <= pw * u * (np.log1p(x) - x / (1 + x)) / np.log(2)  # the least g lies at the band
        if nu > 0:
            assert binds.sum() >= 10 and (~binds).sum() >= 10, (nu, binds.sum())  # both cases are tried
        np.testing.assert_allclose(got[binds], (pw * u / rb + nu * band)[binds], rtol=1e-12)
        np.testing.assert_allclose(got[binds], whole[binds], rtol=1e-9)
    assert at_band(np.zeros(1), pw[:1], a[:1], 1e-6, band, rb[:1])[0] == 0.0  # nothing to send: phi_B(0) = 0


def test_payload_classes_are_buckets_of_each_relays_payloads() -> None:
    dev = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    pay = np.array([0.0, 1.0, 2.0, 3.0, 3.0, 5.0, 0.0, 4.0])
    got = payload_classes(dev, pay, np.array([0, 1]), 2)
    assert list(got) == [0, 1, 1, 2, 2, 1, 0, 1]
    assert list(payload_classes(dev, pay, np.array([0, 1]), 1)) == [0, 1, 1, 1, 1, 1, 0, 1]


def _trained_hub(seed: int, lam: float, n: int = 4, m: int = 3):
    """Device 0 has the one good uplink, fast D2D links both ways and trains; the others' uplinks are 50x worse."""
    p = random_instance(n, 1, m, seed, lam=lam)
    g = 0.02 * p.uplink_gain
    g[0] = 50.0 * p.uplink_gain.max()
    others = np.arange(1, n)
    src = np.concatenate([others, np.zeros(n - 1, dtype=int)])
    dst = np.concatenate([np.zeros(n - 1, dtype=int), others])
    return dataclasses.replace(p, uplink_gain=g, d2d_src=src, d2d_dst=dst, d2d_rate_bps=np.full(src.size, 5e7))


def _values(p, t: float, nu: float, classes: int, monkeypatch) -> tuple[list[float], float]:
    """(E_lb(t) at band prices nu x 0.3, 1, 3; the searched E_lb(t)) with `classes` payload classes."""
    monkeypatch.setattr(rp, "RELAY_CLASSES", classes)
    se = SubsetEnergy(p, thetas=(0.0,), covers=True, band_row=True)
    ee = se.edge(0)
    assert ee is not None
    fixed = [ee.value(t, nu * f, 0.0) for f in (0.3, 1.0, 3.0)]
    return fixed, float(se.energy_edges(t, np.array([nu]), np.full(1, -np.inf))[0])


CASES = [("hub", 0, 0.5), ("hub", 1, 5.0), ("hub", 2, 50.0), ("random", 3, 0.5), ("random", 1, 50.0)]


@pytest.mark.parametrize("kind,seed,lam", CASES)
def test_the_class_split_keeps_the_optimum_and_never_lowers_the_lp(kind, seed, lam, monkeypatch) -> None:
    p = _trained_hub(seed, lam) if kind == "hub" else random_instance(5, 1, 4, seed, lam=lam)
    best = exact_solve(p)
    if kind == "hub":  # the case: a relay that trains uploads others' bits
        assert np.any(best.relay != np.arange(p.num_devices)) and best.placement[0].any()
    t = best.latency_s * (1 + 1e-9)
    _, nu = EnergyBound.of(p).prices(t)
    one, _ = _values(p, t, float(nu[0]), 1, monkeypatch)
    for classes in (1, 2, 4, 64):
        fixed, searched = _values(p, t, float(nu[0]), classes, monkeypatch)
        assert max(fixed + [searched]) <= best.energy_j * (1 + 1e-7), (classes, fixed, searched, best.energy_j)
        assert all(f >= o - 1e-7 * abs(o) for f, o in zip(fixed, one, strict=True)), (classes, fixed, one)
