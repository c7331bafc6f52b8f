"""HiGHS given a cutoff (objective_bound) prunes every node whose bound reaches it, so its dual bound holds only up to
the cutoff: highspy 1.16 returned a tree root's solution above the cutoff as "optimal" with that solution's value as
the bound, while pruned nodes held a plan 2.4 % cheaper, and `joint` certified a 6-device tree plan at 0 % with a
better plan 0.11 % below it (solvers/highs.py `beyond_cutoff`)."""

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

import solvers.tree_improve as tree_improve
from solvers import random_instance, solve
from solvers.highs import cutoff_bound
from solvers.tree import tree_cost
from solvers.tree_model import build


def _instance():  # experiments/solver_model_bench.instance(6, "tree", 5.0, 0)
    p = random_instance(6, 1, 6, 0, lam=5.0, relay_aggregates=False, d2d_neighbours=5)
    return dataclasses.replace(p, tree_aggregation=True)


def _view(p):
    captured = {}
    real = tree_improve.improve_trees

    def spy(problem, plan, known, *args, **kwargs):
        captured["view"] = known.views[0]
        return real(problem, plan, known, *args, **kwargs)

    tree_improve.improve_trees = spy
    try:
        plan = solve(p, "joint", time_limit_s=0.5, budget="work")
    finally:
        tree_improve.improve_trees = real
    return captured["view"], plan


# the plan the round's cvxpy tree model found on this edge (root 3): T 48.18 s, E 54.17 J
X = np.array([[0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1], [0, 1, 1, 1, 0, 1], [1, 1, 1, 0, 1, 1], [0, 0, 0, 1, 0, 0],
              [0, 0, 0, 0, 0, 0]], dtype=bool)
PARENT = np.array([3, 3, 3, 3, 2, 4])


def test_a_root_bound_under_a_cutoff_never_passes_a_plan_of_that_root() -> None:
    p = _instance()
    view, _ = _view(p)
    f, e = tree_cost(view, X[None], PARENT[None])
    known = float(f[0] + p.lam * e[0])
    assert known == pytest.approx(319.0293, abs=1e-3)
    scale = 1.001 * known
    for cut in (0.95, 0.99, 0.992, 0.999):
        for floor, energy_floor in ((0.0, 0.0), (43.45, 253.24)):  # the floors tree_improve gave this root
            kind, lower, _ = build([view], scale).solve([3], cut * known, 30.0, 0.008, floor=floor,
                                                        energy_floor=energy_floor)
            assert kind in ("optimal", "infeasible", "time_limit")
            assert lower <= known * (1 + 1e-9), (cut, floor, kind, lower)


def test_joint_tree_bound_stays_below_a_known_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    p = _instance()
    monkeypatch.setattr(tree_improve, "model_seconds", lambda problem, left: 0.0)  # the per-root MILPs alone
    view, _ = _view(p)
    f, e = tree_cost(view, X[None], PARENT[None])
    plan = solve(p, "joint", time_limit_s=5.0, budget="work")
    assert plan.lower_bound <= float(f[0] + p.lam * e[0]) * (1 + 1e-9)
    assert plan.lower_bound <= plan.objective


class _Run:  # what cutoff_bound reads of a finished HiGHS run
    def __init__(self, status: str, value: float, dual: float, feasible: bool = True) -> None:
        import highspy

        self.status = getattr(highspy.HighsModelStatus, status)
        self.info = SimpleNamespace(primal_solution_status=2 if feasible else 0, objective_function_value=value,
                                    mip_dual_bound=dual)

    def getModelStatus(self):  # noqa: ANN201, N802
        return self.status

    def getInfo(self):  # noqa: ANN201, N802
        return self.info


def test_the_cutoff_bound_is_the_dual_up_to_the_cutoff_and_inf_beyond_it() -> None:
    assert cutoff_bound(_Run("kOptimal", 319.0, 319.0), 316.5) == math.inf  # a solution above: nothing below
    assert cutoff_bound(_Run("kInfeasible", 0.0, math.inf, feasible=False), 316.5) == math.inf
    assert cutoff_bound(_Run("kOptimal", 319.0, 300.0), 316.5) == 300.0  # the dual below the cutoff holds
    assert cutoff_bound(_Run("kTimeLimit", 310.0, 320.0), 316.5) == 316.5  # a plan below: min(dual, cutoff)
    assert cutoff_bound(_Run("kTimeLimit", 0.0, math.inf, feasible=False), 316.5) == 0.0  # no dual bound: 0
    assert cutoff_bound(_Run("kOptimal", 319.0, 319.0), 316.5 * 2.0, scale=2.0) == math.inf  # in units of scale
    assert cutoff_bound(_Run("kOptimal", 150.0, 150.0), 316.5 * 2.0, scale=2.0) == 300.0
