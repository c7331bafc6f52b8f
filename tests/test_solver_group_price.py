"""Pricing of relay groups (solvers/group_price.py) against every group enumerated: never above the least real
reduced cost (what keeps the group bound valid), with its pruning (combinations that cannot turn negative, bits that
cannot finish), its Pareto filter, the combinations kept across latencies (`memo`) and several columns a pass."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solvers import random_instance, solve
from solvers.bandwidth import min_bandwidth
from solvers.evaluate import LN2
from solvers.group_columns import GroupBound
from solvers.group_parts import edge_parts, pareto3
from solvers.upload_table import golden_bracket


def _brute(g: GroupBound, j: int, t: float, red: np.ndarray, mu: np.ndarray, nu: float) -> tuple[float, float]:
    """Over every group j uploads by t (own part or none, each member out or one part): (the least reduced cost with
    the upload term's lower bound `upload_lb`, the least with each group's upload at its best band, found by golden
    section: a real band, so at least the exact least)."""
    pa, p = g.parts, g.p
    row = g.row_of
    own = [k for k in g.by_dev[j] if pa.tau[k] < t]
    sides = [[(-1, 0.0, 0.0, 0, mu[row[j]])] + [(k, pa.tau[k], pa.bits[k], pa.mask[k], red[k] + mu[row[j]])
                                                for k in own]]
    for i, r in g.into[j]:
        opts = [(-2, 0.0, 0.0, 0, 0.0)]
        for k in g.by_dev[i]:
            arrive = pa.tau[k] + pa.bits[k] / r
            if arrive < t:
                opts.append((k, arrive, pa.bits[k], pa.mask[k], red[k] + p.d2d_power_w[i] * pa.bits[k] / r + mu[row[i]]))
        sides.append(opts)
    combos = list(itertools.product(*sides))
    start = np.array([max(c[1] for c in combo) for combo in combos])
    cost = np.array([sum(c[4] for c in combo) for combo in combos])
    if p.relay_aggregates:
        union = np.array([np.bitwise_or.reduce([c[3] for c in combo]) for combo in combos])
        u = 8.0 * (((union[:, None] >> np.arange(p.num_modules)) & 1) @ p.module_bytes)
    else:
        u = np.array([sum(c[2] for c in combo) for combo in combos])
    nu_hz = nu / g.band
    low = cost + g.upload_lb(j, u, t - start, nu_hz)
    a, pw = float(p.snr_hz[j]), float(p.tx_power_w[j])
    need = min_bandwidth(u / (t - start), np.full(u.shape, a))
    ok = (need <= g.band) & (u > 0)
    lo, hi = np.log(np.maximum(need[ok], 1e-9 * g.band)), np.full(int(ok.sum()), np.log(g.band))

    def f(x: np.ndarray) -> np.ndarray:
        b = np.exp(x)
        return pw * u[ok] * LN2 / (b * np.log1p(a / b)) + nu_hz * b

    lo, hi = golden_bracket(f, lo, hi, 80)
    up = np.full(u.shape, np.inf)
    up[u <= 0] = 0.0
    up[ok] = np.minimum(f(lo), f(hi))
    return float(low.min()), float((cost + up).min())


@pytest.mark.parametrize("aggregates", [False, True])
@pytest.mark.parametrize("seed,lam", [(0, 0.5), (1, 5.0)])
def test_price_is_the_least_over_every_group(seed: int, lam: float, aggregates: bool) -> None:
    p = random_instance(4, 1, 4, seed, lam=lam, relay_aggregates=aggregates, d2d_neighbours=3)
    plan = solve(p, "joint", time_limit_s=0)
    g = GroupBound(p, 0, edge_parts(p, 0))
    g.energy(plan.latency_s, plan.energy_j, seed=g.plan_groups(plan.placement, plan.relay, plan.bandwidth_hz))
    g.scale = 1.0
    checked = 0
    for d, tilt in itertools.product(g.duals[:1] + g.duals[-1:], (1.0, 1.6)):  # early and final multipliers, and
        red = d.red * np.where(d.red < 0, tilt, 1.0)  # more negative parts (more groups worth pricing)
        memo: dict = {}
        for t in (0.5 * plan.latency_s, plan.latency_s, 2.0 * plan.latency_s):
            for j in g.devices:
                least, real = _brute(g, int(j), t, red, d.mu, d.nu)
                for kept in (None, memo):
                    rc, groups = g.price(int(j), t, red, d.mu, d.nu, kept, many=3)
                    # valid: never above a real group's reduced cost; and no lower than the bound's own least (it
                    # prices a subset of the groups, those that may be least, with the same upload term)
                    assert min(least, 0.0) - 1e-9 <= rc <= min(real, 0.0) + 1e-9
                    assert (rc < 0) == bool(groups) and len(groups) <= 3
                    for group in groups:  # each a real group of j's that finishes by t
                        assert group[0][0] == int(j) and g.column(int(j), group, t, d.nu / g.band) is not None
                checked += real < 0
    assert checked > 0  # some uploader had a group worth adding


def test_pareto3_keeps_exactly_the_undominated_points() -> None:
    rng = np.random.default_rng(0)
    for n in (40, 600):  # the dense path and the staircase
        r, b, c = rng.integers(0, 6, n).astype(float), rng.integers(0, 6, n).astype(float), rng.normal(size=n)
        c[:5] = c[5:10]
        r[:5], b[:5] = r[5:10], b[5:10]  # five exact duplicates: one of each pair is kept
        keep = pareto3(r, b, c)
        dom = (r[None, :] <= r[:, None]) & (b[None, :] <= b[:, None]) & (c[None, :] <= c[:, None])
        same = (r[None, :] == r[:, None]) & (b[None, :] == b[:, None]) & (c[None, :] == c[:, None])
        strictly = (dom & ~same).any(axis=1)
        assert not (keep & strictly).any()  # nothing kept that another beats
        assert all(keep[same[i]].sum() == 1 for i in np.flatnonzero(~strictly))  # one of each undominated point


@pytest.mark.parametrize("aggregates", [False, True])
def test_cheap_upload_term_never_above_the_real_one(aggregates: bool) -> None:
    """`upload_cheap` (the chords of the unconstrained least upload, the whole band's energy per bit) is below the
    upload at its best feasible band, for any window (what lets `_lazy` skip entries)."""
    p = random_instance(4, 1, 4, 3, lam=0.5, relay_aggregates=aggregates, d2d_neighbours=3)
    g = GroupBound(p, 0, edge_parts(p, 0))
    rng = np.random.default_rng(1)
    for j in g.devices.tolist():
        a, pw = float(p.snr_hz[j]), float(p.tx_power_w[j])
        u = np.concatenate([[0.0], rng.uniform(0, 1, 200) ** 3 * 8.0 * p.module_bytes.sum() * 4])
        for nu in (0.0, 1e-9, 1e-6, 1e-3):
            cheap = g.upload_cheap(j, u, nu)
            for w in (1e-3, 0.1, 1.0, 10.0):
                need = min_bandwidth(u / w, np.full(u.shape, a))
                ok = (need <= g.band) & (u > 0)
                lo, hi = np.log(np.maximum(need[ok], 1e-9 * g.band)), np.full(int(ok.sum()), np.log(g.band))

                def f(
                    x: np.ndarray, uu: np.ndarray = u[ok], nu: float = nu, a: float = a, pw: float = pw
                ) -> np.ndarray:
                    b = np.exp(x)
                    return pw * uu * LN2 / (b * np.log1p(a / b)) + nu * b

                lo, hi = golden_bracket(f, lo, hi, 80)
                real = np.minimum(f(lo), f(hi))
                assert np.all(cheap[ok] <= real * (1 + 1e-9))
                assert np.all(cheap[ok] <= g.upload_lb(j, u[ok], w, nu) * (1 + 1e-6))  # at most the exact term
        assert cheap[0] == 0.0


@pytest.mark.parametrize("aggregates", [False, True])
def test_lazy_upload_term_prices_as_the_eager_one(aggregates: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pricing with the upload term taken lazily (`LAZY` entries first, then only where the cheap term is below the
    many-th least) finds the same least reduced cost as with the term on every entry."""
    import solvers.group_price as gp  # noqa: PLC0415

    p = random_instance(6, 1, 4, 2, lam=5.0, relay_aggregates=aggregates, d2d_neighbours=4)
    plan = solve(p, "joint", time_limit_s=0)
    g = GroupBound(p, 0, edge_parts(p, 0))
    g.energy(plan.latency_s, plan.energy_j, seed=g.plan_groups(plan.placement, plan.relay, plan.bandwidth_hz))
    g.scale = 1.0
    negative = 0
    for d in g.duals[:1] + g.duals[-1:]:
        for t in (0.7 * plan.latency_s, plan.latency_s, 1.5 * plan.latency_s):
            for j in g.devices.tolist():
                got = {}
                for lazy in (0, 2, 4):
                    monkeypatch.setattr(gp, "LAZY", lazy)
                    got[lazy] = g.price(j, t, d.red, d.mu, d.nu, many=3)
                assert got[2][0] == pytest.approx(got[0][0], rel=1e-12, abs=1e-12) == got[4][0]
                negative += got[0][0] < 0
    assert negative > 0
