"""Plans built group by group with aggregating relays (solvers/union_build.py) and the band-priced relay moves
(solvers/union_moves.py): stars follow D2D links and the relay capacity, a build covers every module's demand where
it says so, every returned plan passes check_plan with the latency it reports, no edge ever gets slower, and on
seeded 100-device edges the builds beat the price-guided greedy somewhere."""

from __future__ import annotations

import numpy as np
import pytest

import solvers.joint as joint
from solvers import check_plan, random_instance, solve
from solvers.energy import edge_latency, plan_bandwidth
from solvers.evaluate import evaluate, link_rates
from solvers.plan import RoundPlan
from solvers.union_build import build, grouped_plans, star_groups
from solvers.union_moves import band_moves


def _round(seed: int, cap: int | None = None, n: int = 90, edges: int = 3, modules: int = 5):  # noqa: ANN202
    return random_instance(n, edges, modules, seed, relay_aggregates=True, relay_capacity=cap)


def _greedy(p) -> RoundPlan:  # noqa: ANN001
    """joint's plan without the builds (its heuristics alone)."""
    was = joint.UNION_BUILD
    joint.UNION_BUILD = False
    try:
        return solve(p, "joint", time_limit_s=0)
    finally:
        joint.UNION_BUILD = was


def _plan(p, x: np.ndarray, relay: np.ndarray) -> RoundPlan:  # noqa: ANN001
    b = plan_bandwidth(p, x, relay)
    c = evaluate(p, x, relay, b)
    return RoundPlan(
        placement=x,
        relay=relay,
        bandwidth_hz=b,
        latency_s=c.latency_s,
        energy_j=c.energy_j,
        objective=c.objective,
        solver="test",
        status="solved",
        solve_seconds=0.0,
        lower_bound=0.0,
    )


@pytest.mark.parametrize(("seed", "cap", "members"), [(0, None, None), (1, 2, None), (2, None, 1), (3, 3, 2)])
def test_stars_follow_links_and_capacity(seed: int, cap: int | None, members: int | None) -> None:
    p = _round(seed, cap)
    owner = star_groups(p, members)
    n = p.num_devices
    moved = np.flatnonzero(owner != np.arange(n))
    assert np.all(owner[owner] == owner)  # an uploader owns itself
    assert np.all(p.link_rate(moved, owner[moved]) > 0)
    most = min(x for x in (cap, members, n) if x is not None)
    assert np.bincount(owner[moved], minlength=n).max(initial=0) <= most
    assert np.all(np.isinf(link_rates(p, owner)[owner == np.arange(n)]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_build_covers_and_checks(seed: int) -> None:
    p = _round(seed, cap=2 if seed % 2 else None)
    owner = star_groups(p)
    greedy = _greedy(p)
    t = edge_latency(p, [(greedy.placement, greedy.relay)])[0]
    x, relay, ok = build(p, t[p.device_edge], owner, link_rates(p, owner))
    assert ok.all()
    got = np.zeros((p.num_edges, p.num_modules))
    np.add.at(got, p.device_edge, x * p.samples[:, None])
    assert np.all(got >= p.coverage_demand() * (1 - 1e-9))
    assert check_plan(p, _plan(p, x, relay)) == []
    assert np.all((relay == np.arange(p.num_devices)) | x.any(axis=1))  # only devices that train relay


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_grouped_plans_never_slower(seed: int) -> None:
    p = _round(seed, cap=2 if seed % 3 == 1 else None)
    greedy = _greedy(p)
    t0 = edge_latency(p, [(greedy.placement, greedy.relay)])[0]
    x, relay, t = grouped_plans(p, greedy.placement, greedy.relay, t0, np.ones(p.num_edges, dtype=bool), near=0.0)
    assert np.all(t <= t0 * (1 + 1e-12))
    assert np.allclose(t, edge_latency(p, [(x, relay)])[0], rtol=1e-6)
    assert check_plan(p, _plan(p, x, relay)) == []
    # an edge left out keeps its plan
    keep = np.zeros(p.num_edges, dtype=bool)
    keep[0] = True
    x1, r1, t1 = grouped_plans(p, greedy.placement, greedy.relay, t0, keep, near=0.0)
    rest = p.device_edge != 0
    assert np.array_equal(x1[rest], greedy.placement[rest]) and np.array_equal(r1[rest], greedy.relay[rest])
    assert np.array_equal(t1[1:], t0[1:])


def test_builds_beat_the_greedy_somewhere() -> None:
    better = 0
    for seed in range(4):
        p = _round(seed, n=200, edges=2, modules=6)
        greedy = _greedy(p)
        t0 = edge_latency(p, [(greedy.placement, greedy.relay)])[0]
        _, _, t = grouped_plans(p, greedy.placement, greedy.relay, t0, np.ones(p.num_edges, dtype=bool), near=0.0)
        better += int(np.sum(t < 0.995 * t0))
    assert better >= 3, better


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_band_moves_never_slower(seed: int) -> None:
    p = _round(seed, cap=1 if seed == 2 else None)
    greedy = _greedy(p)
    t0 = edge_latency(p, [(greedy.placement, greedy.relay)])[0]
    relay, t = band_moves(p, greedy.placement, greedy.relay, t0, np.ones(p.num_edges, dtype=bool))
    assert np.all(t <= t0 * (1 + 1e-12))
    assert np.allclose(t, edge_latency(p, [(greedy.placement, relay)])[0], rtol=1e-6)
    assert check_plan(p, _plan(p, greedy.placement, relay)) == []


def test_joint_keeps_the_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    p = _round(7, n=80, edges=2, modules=5)
    monkeypatch.setattr(joint, "UNION_BUILD", False)
    before = solve(p, "joint", time_limit_s=0)
    monkeypatch.setattr(joint, "UNION_BUILD", True)
    after = solve(p, "joint", time_limit_s=0)
    again = solve(p, "joint", time_limit_s=0)
    assert check_plan(p, after) == []
    assert after.objective <= before.objective * (1 + 1e-9)
    assert np.array_equal(after.placement, again.placement) and np.array_equal(after.relay, again.relay)
