"""Baselines for aggregation-tree instances: each plans every edge's tree itself, with the full placement (memory
repaired) or a random cover, and gives the root the whole band (one uploader per edge).

- `tree_rule_plan` ("equal"): the fixed rule the decisions replace: the best-uplink device of each edge as the root,
  everyone along the shortest path (1 / rate) to it;
- `tree_greedy_plan` ("greedy"): the same shortest-path trees, but each edge takes the root whose tree finishes first
  (T + lambda E of the edge alone: a greedy root choice);
- `tree_random_plan` ("random"): a random cover within memory, a random root and a random spanning tree.
All respect relay_capacity (children per device); an edge whose D2D graph cannot carry a tree raises
InfeasibleError naming it (solvers/tree.py `start_trees`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from solvers.baselines import full_placement, random_placement
from solvers.edgebatch import EdgeView
from solvers.instance import RoundProblem
from solvers.plan import RoundPlan
from solvers.tree import grow_tree, start_trees, tree_cost

Pick = Callable[[EdgeView, np.ndarray, np.ndarray], np.ndarray]
"""(edge, placement of its devices [n, M], candidate trees [R, n]) -> the chosen tree [n]."""


def _plan(problem: RoundProblem, x: np.ndarray, pick: Pick, name: str) -> RoundPlan:
    t0 = time.perf_counter()
    p = problem
    parent = np.arange(p.num_devices)
    b = np.zeros(p.num_devices)
    t, en = 0.0, 0.0
    for e in range(p.num_edges):
        v = EdgeView.of(p, e)
        if v.n == 0:
            continue
        tree = pick(v, x[v.dev], start_trees(v))
        root = int(np.flatnonzero(tree == np.arange(v.n))[0])
        f, en_e = tree_cost(v, x[v.dev][None], tree[None])
        parent[v.dev] = v.dev[tree]
        b[v.dev[root]] = p.edge_bandwidth_hz[e]
        t, en = max(t, float(f[0])), en + float(en_e[0])
    return RoundPlan(placement=x, relay=parent, bandwidth_hz=b, latency_s=t, energy_j=en, objective=t + p.lam * en,
                     solver=name, status="solved", solve_seconds=time.perf_counter() - t0, parent=parent)


def _roots(trees: np.ndarray) -> np.ndarray:
    return np.argmax(trees == np.arange(trees.shape[1])[None, :], axis=1)


def tree_rule_plan(problem: RoundProblem, name: str = "equal") -> RoundPlan:
    """Full placement; each edge's best-uplink root (among those with a tree) and its shortest-path tree."""
    def best_uplink(v: EdgeView, xe: np.ndarray, trees: np.ndarray) -> np.ndarray:
        return trees[int(np.argmax(v.problem.snr_hz[v.dev][_roots(trees)]))]

    return _plan(problem, full_placement(problem), best_uplink, name)


def tree_equal_plan(problem: RoundProblem) -> RoundPlan:
    """The "equal" method on trees: the fixed rule (`tree_rule_plan`)."""
    return tree_rule_plan(problem, "equal")


def tree_greedy_plan(problem: RoundProblem) -> RoundPlan:
    """Full placement; each edge's shortest-path tree whose own T + lambda E is least."""
    def fastest(v: EdgeView, xe: np.ndarray, trees: np.ndarray) -> np.ndarray:
        f, e = tree_cost(v, np.repeat(xe[None], len(trees), axis=0), trees)
        return trees[int(np.argmin(f + v.problem.lam * e))]

    return _plan(problem, full_placement(problem), fastest, "greedy")


def tree_random_plan(problem: RoundProblem, seed: int = 0) -> RoundPlan:
    """A random cover within memory; per edge a random root (among those with a tree) and a tree grown by random
    links under the relay capacity (the root's start tree if the random growth gets stuck)."""
    rng = np.random.default_rng(seed)

    def random_tree(v: EdgeView, xe: np.ndarray, trees: np.ndarray) -> np.ndarray:
        j = int(rng.integers(len(trees)))
        grown = grow_tree(v, int(_roots(trees)[j]), lambda s, d: int(rng.integers(s.size)))
        return trees[j] if grown is None else grown

    return _plan(problem, random_placement(problem, rng), random_tree, "random")
