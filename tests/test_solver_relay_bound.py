"""EnergyBound._relayed prices a relay's relayed bits at p_j / R_j(b_bar) with b_bar from a window that starts at 0.
A relay starts late (after its in-neighbours' compute and D2D hops), so its band can exceed b_bar; the bound stays
valid because the relay's own bits then take the band price (module doc of solvers/energy_bound.py). These tests
check that on relay-heavy instances (slow compute, cheap D2D, weak uplinks), against the exact optimum and against
plans whose relays start late and take most of the band, at every band price of a sweep."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from solvers import random_instance
from solvers.bandwidth import min_bandwidth
from solvers.bounds import subset_lower_bound
from solvers.energy_bound import EnergyBound, tradeoff_lower_bound
from solvers.evaluate import evaluate, round_timeline
from solvers.exact import exact_solve
from solvers.instance import RoundProblem


def relay_heavy(seed: int, lam: float, agg: bool) -> RoundProblem:
    """4 devices on one edge: fast D2D, a thin uplink band, and slow CPUs on some devices (late relays)."""
    rng = np.random.default_rng(seed)
    p = random_instance(
        4,
        1,
        int(rng.integers(2, 4)),
        7100 + seed,
        lam=lam,
        relay_aggregates=agg,
        d2d_bandwidth_hz=float(10 ** rng.uniform(6.5, 8)),
        bandwidth_per_device_hz=float(10 ** rng.uniform(5.5, 7.0)),
        gamma=float(rng.uniform(0.4, 0.9)),
    )
    slow = rng.uniform(size=p.num_devices) < 0.5
    return dataclasses.replace(p, cpu_hz=np.where(slow, p.cpu_hz * 10 ** rng.uniform(-3.0, -1.5), p.cpu_hz))


def late_relay_plans(p: RoundProblem, rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, ...]]:
    """Star plans: every neighbour of a relay j sends through it; the band gives each uploader what it needs to
    finish by a common T and the rest mostly to j (a plan the bound's window-from-0 reasoning does not describe)."""
    out = []
    n = p.num_devices
    for _ in range(count * 4):
        j = int(rng.integers(n))
        relay = np.arange(n)
        src = p.d2d_src[p.d2d_dst == j]
        relay[src[rng.uniform(size=src.size) < 0.9]] = j
        if np.all(relay == np.arange(n)):
            continue
        x = p.eligible & (rng.uniform(size=p.eligible.shape) < 0.85)
        if np.any((p.samples[:, None] * x).sum(axis=0) < p.coverage_demand()[0] * (1 - 1e-12)):
            continue
        tl = round_timeline(p, x, relay)
        up = np.flatnonzero(tl.uploader)
        lo, hi = float(tl.start[up].max()), float(tl.start[up].max()) + 1e7
        for _ in range(100):  # the least common T the band allows
            mid = 0.5 * (lo + hi)
            need = min_bandwidth(tl.bits[up] / (mid - tl.start[up]), p.snr_hz[up])
            lo, hi = (mid, hi) if need.sum() > p.edge_bandwidth_hz[0] else (lo, mid)
        t = tl.start[up].max() + (hi - tl.start[up].max()) * float(rng.uniform(1.0, 1.5))
        need = min_bandwidth(tl.bits[up] / (t - tl.start[up]), p.snr_hz[up])
        b = np.zeros(n)
        b[up] = need
        b[j] += 0.9 * (p.edge_bandwidth_hz[0] - need.sum())
        out.append((x, relay, b))
        if len(out) == count:
            break
    return out


CASES = [(seed, lam, agg) for seed in (0, 2) for lam in (0.05, 0.5, 5.0, 50.0) for agg in (False, True)]


@pytest.mark.parametrize(("seed", "lam", "agg"), CASES)
def test_relayed_pricing_never_exceeds_the_exact_optimum(seed: int, lam: float, agg: bool) -> None:
    p = relay_heavy(seed, lam, agg)
    plan = exact_solve(p)
    eb = EnergyBound.of(p)
    nus = np.concatenate([[0.0], eb.nu_ref[0] * np.geomspace(1e-5, 1e3, 17)])
    for nu in nus:  # every band price gives a valid bound, not only the searched one
        assert eb.edge_energy(plan.latency_s, np.array([nu]))[0] <= plan.energy_j * (1 + 1e-9), nu
    assert eb.earliest() <= plan.latency_s  # no plan is faster than its modules' compute allows
    t_lb = subset_lower_bound(p, evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s)
    assert tradeoff_lower_bound(p, t_lb) <= plan.objective * (1 + 1e-9)
    assert tradeoff_lower_bound(p, 0.0) <= plan.objective * (1 + 1e-9)  # from the compute floor alone


@pytest.mark.parametrize("seed", range(5))
def test_relayed_pricing_holds_for_late_relays_with_most_of_the_band(seed: int) -> None:
    p = relay_heavy(seed, 0.5, seed % 2 == 1)
    rng = np.random.default_rng(seed)
    eb = EnergyBound.of(p)
    nus = np.concatenate([[0.0], eb.nu_ref[0] * np.geomspace(1e-5, 1e3, 17)])
    plans = late_relay_plans(p, rng, 8)
    assert plans, "no star plan covers the demand: change the instance"
    late = 0
    for x, relay, b in plans:
        cost = evaluate(p, x, relay, b)
        assert math.isfinite(cost.latency_s)
        tl = round_timeline(p, x, relay)
        late += int(np.any(tl.start[tl.uploader & (tl.bits > tl.payload_bits)] > 0.1 * cost.latency_s))
        for nu in nus:
            assert eb.edge_energy(cost.latency_s, np.array([nu]))[0] <= cost.energy_j * (1 + 1e-9), nu
    assert late > 0  # the case in question occurs: a relay starts well after 0
