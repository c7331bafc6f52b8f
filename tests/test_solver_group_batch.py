"""Batched pricing of relay groups with relays that aggregate (solvers/group_batch.py): the same least reduced cost
per uploader as the per-uploader pricing (`GroupPricing.price`, itself checked against every group enumerated in
tests/test_solver_group_price.py) on recorded masters' multipliers, real groups, and the same masters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import solvers.group_columns as gc
import solvers.group_price as gp
from solvers import random_instance, solve
from solvers.group_batch import price_union_all, union_layout
from solvers.group_columns import GroupBound
from solvers.group_parts import edge_parts


def _recorded(n: int, seed: int, lam: float, monkeypatch: pytest.MonkeyPatch) -> tuple:  # noqa: ANN001
    """An aggregating edge, its heuristic plan and a master run with the per-uploader pricing (its multipliers)."""
    p = random_instance(n, 1, 4, seed, lam=lam, relay_aggregates=True, d2d_neighbours=3)
    plan = solve(p, "joint", time_limit_s=0)
    monkeypatch.setattr(gc, "BATCH", False)
    g = GroupBound(p, 0, edge_parts(p, 0))
    g.energy(plan.latency_s, plan.energy_j, seed=g.plan_groups(plan.placement, plan.relay, plan.bandwidth_hz))
    g.scale = 1.0
    return p, plan, g


@pytest.mark.parametrize("n,seed,lam", [(4, 0, 0.5), (5, 1, 5.0), (6, 2, 0.05), (7, 3, 50.0)])
def test_batched_pricing_prices_as_the_per_uploader_one(
    n: int, seed: int, lam: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, plan, g = _recorded(n, seed, lam, monkeypatch)
    lay = union_layout(g)
    lazies = (16, 2, 0) if n <= 6 else (16,)
    slack = 1e-9 * plan.energy_j  # a cell the cheap term skips may lie within the upload term's 1e-9 of the least
    negative = 0
    for d, tilt in itertools.product(g.duals[:1] + g.duals[-1:], (1.0, 1.6) if n <= 6 else (1.6,)):
        red = d.red * np.where(d.red < 0, tilt, 1.0)  # more negative parts: more cells worth pricing
        for t, lazy in itertools.product((0.5 * plan.latency_s, plan.latency_s, 2.0 * plan.latency_s), lazies):
            monkeypatch.setattr(gp, "LAZY", lazy)
            got = price_union_all(g, lay, t, red, d.mu, d.nu, many=3)
            for j, (rc, groups) in zip(g.devices.tolist(), got, strict=True):
                want, _ = g.price(j, t, red, d.mu, d.nu, many=3)
                assert rc == pytest.approx(want, rel=1e-12, abs=slack)
                assert (rc < 0) == bool(groups) and len(groups) <= 3
                for group in groups:  # real groups of j's (its own part first) that finish by t
                    assert group[0][0] == j and g.column(j, group, t, d.nu / g.band) is not None
                negative += rc < 0
            bare = price_union_all(g, lay, t, red, d.mu, d.nu, groups=False)
            assert [rc for rc, _ in bare] == [rc for rc, _ in got] and not any(gr for _, gr in bare)
    assert negative > 0


def test_batched_masters_match_the_per_uploader_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    p, plan, g = _recorded(6, 4, 0.5, monkeypatch)
    monkeypatch.setattr(gc, "BATCH", True)
    h = GroupBound(p, 0, edge_parts(p, 0))
    h.energy(plan.latency_s, plan.energy_j, seed=h.plan_groups(plan.placement, plan.relay, plan.bandwidth_hz))
    assert len(h.duals) == len(g.duals) > 1
    for a, b in zip(g.duals, h.duals, strict=True):
        assert b.const == pytest.approx(a.const, rel=1e-9, abs=1e-12)
        for t in (0.7 * plan.latency_s, plan.latency_s, 1.5 * plan.latency_s):  # the Lagrangian passes too
            assert h.lagrangian(t, b) == pytest.approx(g.lagrangian(t, a), rel=1e-9, abs=1e-12)
