"""solvers/tree_energy.py and tree_lagrange.py: the Steiner energies are the least arborescences, every tree plan rooted at r dominates
one of r's (T, E) pairs and costs at least r's coupled value (checked over every enumerated plan of seeded small edges, with and without
relay_capacity), and the bound `joint` reports on trees stays at or below the exact reference."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from solvers import random_instance, solve
from solvers.edgebatch import EdgeView
from solvers.exact import placements_upto
from solvers.reference import reference_trees
from solvers.tree import all_trees, tree_cost, tree_search
from solvers.tree_bound import edge_root_bounds, threshold_value
from solvers.tree_energy import edge_parts, flat_pairs, ladder_pairs, root_values, steiner
from solvers.tree_lagrange import coupled_latency, coupled_root, coupled_value, latency_columns


def _tree(n: int, seed: int, lam: float, cap: int | None = None, links: int = 3):
    p = random_instance(n, 1, 3, seed=seed, lam=lam, d2d_neighbours=min(n - 2, links))
    return dataclasses.replace(p, tree_aggregation=True, relay_capacity=cap)


def test_steiner_is_the_least_arborescence_of_every_subset():
    """Against brute force: the least cost, over every spanning in-tree to v, of the arcs on the paths from H."""
    p = _tree(5, 3, 0.5)
    v = EdgeView.of(p, 0)
    cost = np.where(v.rate > 0, 1.0 / np.where(v.rate > 0, v.rate, 1.0), np.inf)
    dp = steiner(cost)
    trees = all_trees(v.rate)
    assert trees is not None and len(trees) > 0
    for h in range(1, 1 << v.n):
        for root in range(v.n):
            best = np.inf
            for par in trees[trees[:, root] == root]:
                used = set()
                for k in np.flatnonzero((h >> np.arange(v.n)) & 1):
                    while k != root:
                        used.add(int(k))
                        k = par[k]
                best = min(best, sum(cost[k, par[k]] for k in used))
            assert dp[h, root] == pytest.approx(best, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(("n", "seed", "cap"), [(4, 0, None), (4, 2, 1), (5, 1, None), (5, 4, 2)])
def test_every_plan_dominates_a_pair_of_its_root(n, seed, cap):
    p = _tree(n, seed, 0.5, cap)
    v = EdgeView.of(p, 0)
    t_lb, e_lb = edge_root_bounds(v)
    pairs = ladder_pairs(v, t_lb, e_lb)
    trees, pls = all_trees(v.rate, capacity=cap), placements_upto(v, 5000)
    parts, cols = edge_parts(v), latency_columns(v)
    assert pairs is not None and parts is not None and cols is not None and trees is not None and pls is not None and len(trees) and len(pls)
    a, b = np.divmod(np.arange(len(pls) * len(trees)), len(trees))
    fin, en = tree_cost(v, pls[a], trees[b])
    roots = np.argmax(trees[b] == np.arange(n), axis=1)
    for r in range(n):
        t, e = pairs[r]
        mine = roots == r
        if not mine.any():
            continue
        ok = (fin[mine, None] >= t[None, :] * (1 - 1e-9)) & (en[mine, None] >= e[None, :] * (1 - 1e-9))
        assert ok.any(axis=1).all()
        assert root_values(pairs, 0.5)[r] >= t_lb[r] + 0.5 * e_lb[r] * (1 - 1e-12)  # never below tree_bound's
        assert coupled_latency(v, cols, r, float(t_lb[r])) <= float(np.min(fin[mine])) * (1 + 1e-9)
        for lam in (0.5, 5.0):  # the coupled ladder: every plan rooted at r costs at least its value
            best = float(np.min(fin[mine] + lam * en[mine]))
            upper = 1.5 * float(np.min(fin + lam * en))
            assert coupled_value(v, parts, r, pairs[r], float(t_lb[r]), lam, upper) <= best * (1 + 1e-9)
            t_r, value = coupled_root(v, parts, cols, r, pairs[r], float(t_lb[r]), float(e_lb[r]), lam, upper)
            assert t_r <= float(np.min(fin[mine])) * (1 + 1e-9) and value <= best * (1 + 1e-9)


@pytest.mark.parametrize("lam", [0.05, 0.5, 5.0, 50.0])
def test_tree_bounds_with_ladders_stay_below_the_reference(lam):
    """The search's bound (no model) and joint's, both with the ladder pairs, never exceed the optimum."""
    for (n, seed, links), cap in itertools.product(((4, 0, 3), (4, 1, 3), (5, 1, 3), (6, 0, 2), (6, 1, 2)), (None, 2)):
        p = _tree(n, seed, lam, cap, links)
        ref = reference_trees(p)
        plan, known = tree_search(p, enum_max=0)
        assert known.ladders[0] is not None
        assert plan.lower_bound <= ref.objective * (1 + 1e-9)
        old = threshold_value([f for f, _ in known.pairs], [e for _, e in known.pairs], lam)
        assert threshold_value(*flat_pairs(known.pairs, known.ladders), lam) >= old * (1 - 1e-12)
        joint = solve(p, "joint", enum_max=0, time_limit_s=0.2)
        assert joint.lower_bound <= ref.objective * (1 + 1e-9)


@pytest.mark.parametrize("lam", [0.5, 5.0])
def test_ladder_pairs_of_several_edges_stay_below_the_reference(lam):
    """Two edges share T: the threshold choice over every root's pairs is still a bound on the round."""
    for seed in (0, 1, 3):
        p = dataclasses.replace(random_instance(8, 2, 3, seed=seed, lam=lam), tree_aggregation=True)
        ref = reference_trees(p)
        plan, known = tree_search(p, enum_max=0)
        assert all(lad is not None for lad in known.ladders)
        assert plan.lower_bound <= ref.objective * (1 + 1e-9)
        assert solve(p, "joint", enum_max=0, time_limit_s=0.2).lower_bound <= ref.objective * (1 + 1e-9)


@pytest.mark.parametrize(("n", "seed", "cap", "links"), [(4, 3, None, 2), (5, 2, None, 2), (5, 4, 2, 3), (6, 1, 2, 2)])
def test_integer_coupled_latency_is_valid_and_lifts_the_lp(n, seed, cap, links):
    """With whole columns (until given) the coupled latency stays at or below the least finish of every enumerated
    plan rooted at r and never below the LP's; on these edges it lifts some root strictly, reaching the optimum on
    some; with a top below that least finish it answers at most the top."""
    p = _tree(n, seed, 0.0, cap, links)
    v = EdgeView.of(p, 0)
    t_lb, _ = edge_root_bounds(v)
    trees, pls, cols = all_trees(v.rate, capacity=cap), placements_upto(v, 20000), latency_columns(v)
    assert trees is not None and pls is not None and cols is not None and len(trees) and len(pls)
    a, b = np.divmod(np.arange(len(pls) * len(trees)), len(trees))
    fin, _ = tree_cost(v, pls[a], trees[b])
    roots = np.argmax(trees[b] == np.arange(n), axis=1)
    lifted = tight = 0
    for r in range(n):
        mine = roots == r
        if not mine.any():
            continue
        best = float(np.min(fin[mine]))
        lp = coupled_latency(v, cols, r, float(t_lb[r]))
        whole = coupled_latency(v, cols, r, float(t_lb[r]), until=math.inf)
        assert lp * (1 - 1e-12) <= whole <= best * (1 + 1e-9)
        lifted += whole > lp * (1 + 1e-9)
        tight += lp < best * (1 - 1e-9) and whole >= best * (1 - 1e-9)
        top = 0.5 * (float(t_lb[r]) + best)
        assert coupled_latency(v, cols, r, float(t_lb[r]), top, until=math.inf) <= max(top, float(t_lb[r]))
    assert lifted >= 1
    if (n, seed) in ((4, 3), (6, 1)):
        assert tight >= 1
