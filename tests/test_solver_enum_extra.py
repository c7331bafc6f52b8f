"""At lambda > 0 joint enumerates small edges beyond ENUM_MAX from a round-wide pool (solvers/tradeoff.py)."""

import numpy as np
import pytest

from solvers import random_instance, solve
from solvers.exact import exact_solve
from solvers.tradeoff import ENUM_MAX, enum_limits, small_edge_candidates


def test_limits_follow_lambda_and_an_explicit_enum_max():
    assert enum_limits(random_instance(4, 1, 6, 0, lam=0.0), None) == (ENUM_MAX, 0)
    limit, extra = enum_limits(random_instance(4, 1, 6, 0, lam=0.5), None)
    assert limit == ENUM_MAX and extra > 0
    assert enum_limits(random_instance(4, 1, 6, 0, lam=0.5), 3000) == (3000, 0)  # the user's value, no pool


def test_the_pool_is_shared_by_the_round():
    p = random_instance(8, 2, 6, 4, lam=0.5)  # edge 0: 4,428 choices, edge 1: 17,712
    assert sorted(small_edge_candidates(p, 3000, extra=20_000)) == [0, 1]
    assert sorted(small_edge_candidates(p, 3000, extra=10_000)) == [0]  # edge 0 took 1,428 of the pool
    assert sorted(small_edge_candidates(p, 3000)) == []
    assert sorted(small_edge_candidates(p, 20_000)) == [0, 1]


def test_an_overflowing_edge_spends_the_pool():
    p = random_instance(8, 2, 6, 4, lam=0.5)
    # edge 0 (4,428) overflows a limit of 4,000, so the pool is gone before edge 1
    assert sorted(small_edge_candidates(p, 3000, extra=1000)) == []


@pytest.mark.parametrize("mode", ["one-hop", "aggregates"])
def test_a_four_device_edge_beyond_enum_max_is_solved_exactly(mode):
    # 9,963 choices: over ENUM_MAX, so before the pool the round's model left it 0.2-3 % from its bound at 2 s
    p = random_instance(4, 1, 6, 1, lam=5.0, relay_aggregates=mode == "aggregates", d2d_neighbours=3)
    plan = solve(p, "joint", time_limit_s=2, budget="work")
    ex = exact_solve(p)
    assert plan.objective == pytest.approx(ex.objective, rel=1e-7)
    assert plan.gap <= 1e-5 and plan.status == "optimal"
    assert np.isfinite(plan.lower_bound) and plan.lower_bound <= ex.objective * (1 + 1e-9)
