"""solvers/enum_prune.py: the cheap objective floor never exceeds a choice's exact least objective, and the pruned
enumeration of a one-edge round finds the exact optimum (exact_solve enumerates and prices every choice) with a
bound that does not exceed it."""

from __future__ import annotations

import numpy as np
import pytest

from solvers import random_instance, solve
from solvers.candidates import EdgeCandidates, select_exact
from solvers.edgebatch import EdgeView
from solvers.enum_prune import objective_floor, pruned_candidates
from solvers.exact import exact_solve, placements_upto, relay_maps


def _edge(n: int, m: int, seed: int, lam: float, aggregates: bool = False):
    p = random_instance(n, 1, m, seed, lam=lam, relay_aggregates=aggregates)
    return p, EdgeView.of(p, 0)


@pytest.mark.parametrize("aggregates", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_floor_below_each_choice(seed, aggregates):
    """tlb <= T_min and tlb + lam L <= T_min + lam E(inf) <= T + lam E(T) for T >= T_min, on every choice; tight
    (equal) on some, loose on others."""
    lam = 0.5
    p, v = _edge(4, 5, seed, lam, aggregates)
    maps = np.array(relay_maps(v.rate, p.relay_capacity))
    pl = placements_upto(v, None)
    a, b = np.divmod(np.arange(len(pl) * len(maps)), len(maps))
    x, relay = pl[a], maps[b]
    tlb, floor = objective_floor(v, x, relay, lam)
    c = EdgeCandidates.of(v, x, relay)
    least = c.t_min + lam * c.e_inf
    assert np.all(tlb <= c.t_min * (1 + 1e-9))
    assert np.all(floor <= least * (1 + 1e-9))
    ratio = floor / least
    assert ratio.max() > 1 - 1e-6  # tight where one device uploads
    assert ratio.min() < 0.99


@pytest.mark.parametrize(("n", "m", "seed", "lam", "aggregates"), [
    (4, 6, 0, 0.05, False), (4, 6, 1, 5.0, False), (5, 4, 0, 0.5, False), (5, 4, 1, 50.0, False),
    (4, 6, 0, 0.5, True), (5, 4, 2, 5.0, True), (5, 3, 3, 0.05, True)])
def test_pruned_enumeration_is_exact(n, m, seed, lam, aggregates):
    p, v = _edge(n, m, seed, lam, aggregates)
    c = pruned_candidates(v, lam, 400_000, 50_000)
    assert c is not None
    sel = select_exact([c.pareto()], lam)
    opt = exact_solve(p).objective
    assert sel.value == pytest.approx(opt, rel=1e-6)
    assert sel.lower_bound <= opt * (1 + 1e-7)
    assert c.size < len(relay_maps(v.rate, p.relay_capacity)) * len(placements_upto(v, None))


def test_limits_give_none():
    p, v = _edge(5, 6, 1, 5.0)  # 153,468 choices
    assert pruned_candidates(v, 5.0, 100_000, 50_000) is None
    assert pruned_candidates(v, 5.0, 400_000, 100) is None


def test_joint_certifies_a_large_small_edge():
    """A 5-device edge of 153,468 choices (over the plain pool of 50,000): joint's plan is the optimum, certified."""
    p, _ = _edge(5, 6, 1, 0.5)
    plan = solve(p, "joint", time_limit_s=2)
    assert plan.status == "optimal" and plan.gap < 1e-4
    opt = 61.41813560110453  # exact_solve(p).objective (about 4 CPU s: every choice priced)
    assert plan.objective == pytest.approx(opt, rel=1e-7)
    assert plan.lower_bound <= opt * (1 + 1e-7)


def test_two_edges_not_pruned():
    """Only a one-edge round prunes (a choice's floor needs the whole round's objective)."""
    p = random_instance(8, 2, 4, 0, lam=0.5)
    from solvers.tradeoff import small_edge_candidates

    small = small_edge_candidates(p, 3000, extra=47_000)
    for e, c in small.items():
        v = EdgeView.of(p, e)
        assert c.size == len(relay_maps(v.rate, p.relay_capacity)) * len(placements_upto(v, None))
