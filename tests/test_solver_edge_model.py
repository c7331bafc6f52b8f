"""solvers/edge_model.py: one edge as one MILP with T a variable, against the exact reference (exact_solve)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from solvers import check_plan, random_instance, solve
from solvers.bounds import subset_lower_bound
from solvers.edge_model import EdgeModel, solve_edge
from solvers.energy import plan_bandwidth
from solvers.evaluate import evaluate
from solvers.exact import exact_solve
from solvers.model import exact_cost, feasible

CASES = [(n, seed, lam) for n, seed in ((4, 0), (5, 2)) for lam in (0.0, 0.05, 0.5, 5.0, 50.0)]


@pytest.mark.parametrize("n,seed,lam", CASES)
def test_bound_and_plan_against_exact(n: int, seed: int, lam: float) -> None:
    """From the 'equal' baseline's plan (2 s: the bound is valid wherever HiGHS stops): the bound never exceeds the
    optimum, the plan is feasible and priced exactly (its objective is evaluate's at its exact band), and no better
    than the optimum."""
    p = random_instance(n, 1, 4, seed, lam=lam)
    best = exact_solve(p).objective
    start = solve(p, "equal")
    a = EdgeModel(p).solve(start.placement, start.relay, start.objective, time.perf_counter() + 2.0, 0.01)
    assert a.lower_bound <= best * (1 + 1e-7)
    assert feasible(p, a.x, a.relay)
    b = plan_bandwidth(p, a.x, a.relay)
    assert evaluate(p, a.x, a.relay, b).objective == pytest.approx(a.objective, rel=1e-9)
    assert best * (1 - 1e-7) <= a.objective <= start.objective * (1 + 1e-12)
    assert a.lower_bound <= a.objective


@pytest.mark.parametrize("seed,lam", [(0, 0.5), (1, 5.0), (2, 0.05)])
def test_bound_valid_from_the_optimum(seed: int, lam: float) -> None:
    """The optimum as the incumbent: the least shares and column pruning are then as tight as they get, and the
    bound must still stay at or below it, and not be trivial (relay groups it under-charges, no pair cuts yet:
    seed 0 stays 2.4 % below given 10 s, about 10 % at 2 s; 3 s and 25 % leave room for a loaded machine)."""
    p = random_instance(4, 1, 6, seed, lam=lam)
    ex = exact_solve(p)
    a = solve_edge(p, ex.placement, ex.relay, time.perf_counter() + 3.0, 0.01)
    assert a.lower_bound <= ex.objective * (1 + 1e-7)
    assert a.objective == pytest.approx(ex.objective, rel=1e-7)
    assert a.lower_bound >= 0.75 * ex.objective


def test_joint_uses_it_on_one_edge_rounds() -> None:
    """joint at lambda > 0 on one 8-device edge: the plan passes check_plan, its bound is below its objective,
    and the gap it reports is that of its bound."""
    p = random_instance(8, 1, 6, 0, lam=0.5)
    plan = solve(p, "joint", time_limit_s=2.0)
    assert check_plan(p, plan) == [] and not plan.fallback
    assert 0 < plan.lower_bound <= plan.objective
    assert plan.gap == pytest.approx(1 - plan.lower_bound / plan.objective)
    assert plan.objective == pytest.approx(exact_cost(p, plan.placement, plan.relay), rel=1e-6)
    assert np.isfinite(plan.latency_s)


@pytest.mark.parametrize("n,seed,lam", [(4, 0, 0.05), (4, 1, 0.5), (5, 2, 5.0), (5, 3, 50.0), (4, 3, 0.5)])
def test_lp_cutting_loop_bound_is_valid(n: int, seed: int, lam: float) -> None:
    """The LP relaxation tightened by its cutting loop (EdgeModel.lp_bound), from the 'equal' plan and from the
    optimum as the incumbent: positive, never above the optimum, and at least the first LP's value (0.5 s each)."""
    p = random_instance(n, 1, 4, seed, lam=lam)
    ex = exact_solve(p)
    for start in (solve(p, "equal"), ex):
        lb = EdgeModel(p).lp_bound(start.objective, time.perf_counter() + 0.5)
        assert 0 < lb <= ex.objective * (1 + 1e-7)


@pytest.mark.parametrize("n,seed,lam", [(4, 0, 0.05), (4, 1, 0.5), (5, 2, 5.0), (5, 3, 50.0), (4, 3, 0.5)])
def test_latency_floor_keeps_the_bound_valid(n: int, seed: int, lam: float) -> None:
    """With the latency floor at the optimum's own latency (the tightest floor under which the optimum is still a
    plan the rows relax) the LP loop and the MILP stay at or below the optimum, and with the round's latency bound
    as the floor the LP is no lower than without (0.5 s each)."""
    p = random_instance(n, 1, 4, seed, lam=lam)
    ex = exact_solve(p)
    start = solve(p, "equal")
    t_opt = ex.latency_s * (1 - 1e-9)
    for inc in (start, ex):
        lb = EdgeModel(p, t_floor=t_opt).lp_bound(inc.objective, time.perf_counter() + 0.5)
        assert 0 < lb <= ex.objective * (1 + 1e-7)
    a = EdgeModel(p, t_floor=t_opt).solve(start.placement, start.relay, start.objective, time.perf_counter() + 1.0)
    assert a.lower_bound <= ex.objective * (1 + 1e-7)
    t_lo = subset_lower_bound(p, np.array([start.latency_s]))
    assert 0 < t_lo <= t_opt
    with_floor = EdgeModel(p, t_floor=t_lo).lp_bound(start.objective, time.perf_counter() + 0.5)
    without = EdgeModel(p).lp_bound(start.objective, time.perf_counter() + 0.5)
    assert with_floor >= without * (1 - 1e-6)
