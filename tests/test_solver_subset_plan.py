"""solvers/subset_plan.py: the subset MILP's answer is a feasible plan priced as `evaluate` prices it, never below
the exact optimum; rounds it does not take give None; under a work budget it is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from solvers import check_plan, evaluate, random_instance, solve
from solvers.clock import now
from solvers.energy import plan_bandwidth
from solvers.exact import exact_solve
from solvers.plan import RoundPlan
from solvers.subset_plan import subset_plan


@pytest.mark.parametrize(("seed", "lam"), [(0, 0.5), (1, 5.0), (2, 0.05)])
def test_answer_is_a_feasible_plan_not_below_the_optimum(seed: int, lam: float) -> None:
    p = random_instance(4, 1, 4, seed, lam=lam)
    opt = exact_solve(p)
    got = subset_plan(p, opt.latency_s, now() + 5.0)
    assert got is not None
    x, relay, objective = got
    b = plan_bandwidth(p, x, relay)
    cost = evaluate(p, x, relay, b)
    assert objective == pytest.approx(cost.objective, rel=1e-12)
    assert objective >= opt.objective * (1 - 1e-6)
    plan = RoundPlan(placement=x, relay=relay, bandwidth_hz=b, latency_s=cost.latency_s, energy_j=cost.energy_j,
                     objective=cost.objective, solver="subset", status="solved", solve_seconds=0.0)
    assert check_plan(p, plan) == []


def test_rounds_it_does_not_take() -> None:
    p = random_instance(4, 1, 4, 0, lam=0.5, relay_aggregates=True)
    assert subset_plan(p, 10.0, now() + 5.0) is None  # relays that aggregate
    p = random_instance(8, 2, 4, 0, lam=0.5)
    assert subset_plan(p, 10.0, now() + 5.0) is None  # two edges
    p = random_instance(4, 1, 4, 0, lam=0.5)
    assert subset_plan(p, 10.0, now()) is None  # no time


@pytest.mark.slow
def test_joint_with_it_is_deterministic_under_work() -> None:
    p = random_instance(8, 1, 6, 0, lam=0.5)
    a = solve(p, "joint", time_limit_s=0.6, budget="work")
    b = solve(p, "joint", time_limit_s=0.6, budget="work")
    assert a.objective == b.objective and a.lower_bound == b.lower_bound
    assert np.array_equal(a.placement, b.placement) and np.array_equal(a.relay, b.relay)
