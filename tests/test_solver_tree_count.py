"""solvers/tree.py tree_count (matrix-tree theorem) equals the enumeration, and all_trees answers None at once on an
edge with more trees than its limit (a 7-device edge once spent 3-4 CPU s checking 823,543 parent arrays)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from solvers import random_instance
from solvers.edgebatch import EdgeView
from solvers.tree import all_trees, tree_count


@pytest.mark.parametrize("n", [1, 2, 4, 5])
@pytest.mark.parametrize("neighbours", [1, 3, 5])
def test_count_is_the_enumeration(n, neighbours):
    for seed in range(3):
        v = EdgeView.of(random_instance(n, 1, 3, seed, d2d_neighbours=min(neighbours, max(n - 1, 1))), 0)
        trees = all_trees(v.rate, limit=10**6)
        assert trees is not None and len(trees) == tree_count(v.rate)


def test_count_on_one_way_links():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rate = (rng.uniform(size=(5, 5)) < 0.5) * 1e6
        np.fill_diagonal(rate, 0.0)
        trees = all_trees(rate, limit=10**6)
        assert trees is not None and len(trees) == tree_count(rate)


def test_over_the_limit_at_once():
    v = EdgeView.of(random_instance(7, 1, 6, 0, d2d_neighbours=6), 0)
    assert tree_count(v.rate) == 117_649  # 7^5: the complete graph's 7^(7-2) trees x 7 roots
    t = time.process_time()
    assert all_trees(v.rate) is None  # limit 20,000
    assert time.process_time() - t < 0.1
    five = EdgeView.of(random_instance(5, 1, 3, 0, d2d_neighbours=4), 0)
    assert tree_count(five.rate) == 625
    capped = all_trees(five.rate, capacity=1, limit=200)  # with a capacity: the enumeration decides, as before
    assert capped is not None and 0 < len(capped) < 200  # paths only: 5! = 120
