"""joint calls the round's cvxpy model on power / frequency and tree rounds where solvers/model_gate.py says it pays:
the model runs (its compiled program lands in the caller's ModelCache) and the plan's bound stays valid against the
exact references; at the default 2 s limit it never runs on the bench's rounds."""

from __future__ import annotations

import dataclasses

import pytest

from solvers import ModelCache, check_plan, joint_powerfreq, random_instance, solve, tree_improve
from solvers.model_gate import MIN_SECONDS, model_seconds
from solvers.reference import reference_power_frequency, reference_trees


def _pf(n, lam, seed, modules=3):
    p = random_instance(n, 1, modules, seed=seed, lam=lam)
    return dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())


def _tree(n, lam, seed):
    return dataclasses.replace(random_instance(n, 1, 3, seed=seed, lam=lam, d2d_neighbours=n - 1),
                               tree_aggregation=True)


def test_the_gate_keeps_the_model_off_where_it_cannot_pay():
    assert model_seconds(random_instance(4, 1, 3, seed=0, lam=0.5), 100.0) == 0.0  # fixed power: improve.py's
    assert model_seconds(_pf(4, 0.0, 0), 100.0) == 0.0  # lambda = 0: the max-power plan is the answer
    assert model_seconds(_pf(8, 0.5, 0), 100.0) == 0.0  # too large for the power / frequency model
    assert model_seconds(_tree(8, 0.5, 0), 100.0) == 0.0
    for p in (_pf(3, 0.5, 0), _tree(4, 0.5, 0)):  # the default limit leaves it less than MIN_SECONDS
        assert model_seconds(p, 2.0) == 0.0 < model_seconds(p, 10.0)
        assert model_seconds(p, 10.0) > MIN_SECONDS


@pytest.mark.parametrize("lam,seed", [(0.5, 0), (5.0, 1)])
def test_joint_runs_the_power_frequency_model_and_its_bound_is_valid(lam, seed, monkeypatch):
    monkeypatch.setattr(joint_powerfreq, "MODEL_MILPS", 2)  # two MILPs: the test's time
    p = _pf(2, lam, seed, modules=2)  # the reference takes about 0.6 CPU s here
    ref = reference_power_frequency(p)
    cache = ModelCache()
    plan = solve(p, "joint", time_limit_s=20.0, gap=1e-6, cache=cache)  # a gap joint's own bound cannot prove
    assert cache.builds == 1  # the model ran
    assert check_plan(p, plan) == []
    assert plan.lower_bound <= ref.objective * (1 + 1e-6)  # valid
    assert plan.objective >= ref.objective * (1 - 1e-6)


@pytest.mark.parametrize("lam,seed", [(0.05, 0), (0.5, 1), (5.0, 2)])
def test_joint_runs_the_tree_model_and_its_bound_is_valid(lam, seed, monkeypatch):
    p = _tree(4, lam, seed)
    ref = reference_trees(p)
    # no per-root MILPs and no enumeration: the search's plan and bound leave a gap only the model can close
    monkeypatch.setattr(tree_improve, "_per_root", lambda *a: True)
    cache = ModelCache()
    plan = solve(p, "joint", time_limit_s=3.0, gap=1e-3, enum_max=0, cache=cache, budget="work")
    assert cache.builds == 1  # the model ran
    assert check_plan(p, plan) == []
    assert plan.lower_bound <= ref.objective * (1 + 1e-6)  # valid
    assert plan.objective >= ref.objective * (1 - 1e-9)
    assert plan.objective <= ref.objective * 1.001 and plan.gap <= 0.001  # the model's plan and certificate
    again = solve(p, "joint", time_limit_s=3.0, gap=1e-3, enum_max=0, cache=cache, budget="work")
    assert cache.hits == 1  # the next round of the same structure re-solves the compiled program
    assert again.objective == plan.objective and again.lower_bound == plan.lower_bound  # deterministic under work
