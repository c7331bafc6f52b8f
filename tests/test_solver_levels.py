"""Compression levels as a solver decision (solvers/levels.py): exact against brute force, checked, serialised."""

import dataclasses
import itertools

import numpy as np
import pytest
from conftest import LEVEL_DISTORTION, LEVEL_NAMES, offer_levels

from solvers import RoundProblem, solve
from solvers.check import check_plan
from solvers.energy import plan_bandwidth
from solvers.evaluate import evaluate
from solvers.generate import random_instance
from solvers.levels import LEVEL_TIE, choose_levels, fewer_bytes
from solvers.plan import RoundPlan

NAMES = LEVEL_NAMES
FACTOR = np.array((1.0, 0.26, 0.2))
DISTORTION = np.array(LEVEL_DISTORTION)


def _offer(p: RoundProblem, budget: float | None, penalty: float = 0.0) -> RoundProblem:
    return offer_levels(p, budget, penalty, factor=FACTOR)


def _brute(p: RoundProblem, x: np.ndarray, relay: np.ndarray) -> float:
    best = np.inf
    for lv in itertools.product(range(len(NAMES)), repeat=p.num_devices):
        q = p.with_levels(np.array(lv))
        if p.distortion_budget is not None and q.distortion(x) > p.distortion_budget + 1e-12:
            continue
        best = min(best, evaluate(q, x, relay, plan_bandwidth(q, x, relay)).objective)
    return best


@pytest.mark.parametrize(("seed", "budget", "penalty", "aggregates"),
                         [(1, 0.45, 0.0, False), (2, 0.9, 0.0, True), (3, None, 2.0, False), (4, 0.5, 1.0, True)])
def test_levels_are_the_brute_force_optimum_given_placement_and_relays(seed, budget, penalty, aggregates):
    p = _offer(random_instance(6, 2, 3, seed, relay_aggregates=aggregates), budget, penalty)
    plan = solve(p, "joint", time_limit_s=0)  # the heuristic path: levels given its placement and relays
    assert not plan.fallback and "exact" in plan.message
    assert check_plan(p, plan) == []
    assert plan.objective == pytest.approx(_brute(p, plan.placement, plan.relay), rel=1e-6)
    assert plan.lower_bound <= plan.objective


def test_levels_cut_the_round_latency_and_respect_the_budget():
    base = random_instance(40, 10, 8, 0)
    full = solve(base, "joint")
    p = _offer(base, budget=0.4 * 5)
    plan = solve(p, "joint", time_limit_s=0)
    assert check_plan(p, plan) == []
    assert plan.latency_s < full.latency_s
    assert p.with_levels(plan.level).distortion(plan.placement) <= 0.4 * 5 + 1e-9
    assert (plan.level == 2).sum() <= 5  # the budget admits at most five top-k senders
    relaxed = choose_levels(p, plan.placement, plan.relay)
    assert np.array_equal(relaxed.level, plan.level)


TIED = ("none", "fp16", "int8", "topk")
TIED_FACTOR = np.array([1.0, 0.5, 0.26, 0.2])
TIED_DISTORTION = np.array([0.0, 1e-8, 1e-5, 0.4])  # fp16 and int8 within LEVEL_TIE x 0.4 of none: ties


def _tied(p: RoundProblem, budget: float | None) -> RoundProblem:
    return dataclasses.replace(p, level_names=TIED, level_factor=TIED_FACTOR, level_distortion=TIED_DISTORTION,
                               distortion_budget=budget)


def test_fewer_bytes_moves_tied_levels_to_the_smallest_within_the_budget():
    assert 1e-5 <= LEVEL_TIE * 0.4  # the premise: int8 ties with none and fp16, top-k with nothing
    p = _tied(random_instance(8, 2, 3, 7), budget=None)
    x = solve(dataclasses.replace(p, level_names=(), level_factor=None, level_distortion=None), "joint").placement
    sends = (x.astype(float) @ p.module_bytes) > 0
    assert sends.sum() >= 4
    level = np.where(np.arange(p.num_devices) % 2 == 0, 0, 1)  # none and fp16 alternately
    level[np.flatnonzero(sends)[0]] = 3  # one top-k sender: nothing ties with it at fewer bytes
    out = fewer_bytes(p, x, level)
    assert np.all(out[sends & (level < 3)] == 2) and out[np.flatnonzero(sends)[0]] == 3
    assert np.array_equal(out[~sends], level[~sends])  # a device that sends nothing keeps its level
    # a budget with room for two more int8 senders: the two of the largest byte savings move, the rest stay
    spent = p.with_levels(level).distortion(x)
    tight = _tied(p, budget=spent + 2.5e-5)
    out = fewer_bytes(tight, x, level)
    moved = np.flatnonzero(out != level)
    assert len(moved) == 2 and tight.with_levels(out).distortion(x) <= tight.distortion_budget
    payload = x.astype(float) @ p.module_bytes
    saving = np.where(sends & (level < 3), payload * (TIED_FACTOR[level] - TIED_FACTOR[2]), -1.0)
    assert set(moved) == set(np.argsort(-saving, kind="stable")[:2])


@pytest.mark.parametrize(("seed", "lam"), [(8, 0.0), (9, 0.5)])
def test_joint_sends_no_tied_level_of_more_bytes(seed, lam):
    p = _tied(random_instance(6, 2, 3, seed, lam=lam), budget=0.45)
    plan = solve(p, "joint", time_limit_s=0)
    assert check_plan(p, plan) == []
    sends = (plan.placement.astype(float) @ p.module_bytes) > 0
    assert not np.isin(plan.level[sends], [0, 1]).any()  # none and fp16 tie with int8, which sends fewer bytes
    before = p.with_levels(choose_levels(p, plan.placement, plan.relay).level)  # the levels without the tie-break
    cost = evaluate(before, plan.placement, plan.relay, plan_bandwidth(before, plan.placement, plan.relay))
    assert plan.objective <= cost.objective * (1 + 1e-12)
    if lam == 0:  # a smaller payload shortens every upload window of the min-max band: less energy too
        assert plan.energy_j <= cost.energy_j * (1 + 1e-9)


def test_the_checker_refuses_a_plan_over_the_distortion_budget():
    p = _offer(random_instance(6, 2, 3, 5), budget=0.4)
    plan = solve(p, "joint")
    over = plan.with_(level=np.full(p.num_devices, 2))  # everyone at top-k: 6 x 0.4 > 0.4
    assert any("distortion" in v for v in check_plan(p, over, check_cost=False))


def test_levels_travel_through_json():
    p = _offer(random_instance(6, 2, 3, 6), budget=0.8, penalty=0.5)
    back = RoundProblem.from_dict(p.to_dict())
    assert back.level_names == NAMES and np.array_equal(back.level_factor, FACTOR)
    assert back.distortion_budget == 0.8 and back.distortion_penalty == 0.5
    plan = solve(p, "joint")
    again = RoundPlan.from_dict(plan.to_dict(p, "records"), p)
    assert np.array_equal(again.level, plan.level)
    fixed = p.with_levels(plan.level)
    assert np.array_equal(RoundProblem.from_dict(fixed.to_dict("records")).level, plan.level)


@pytest.mark.parametrize(("change", "field"), [
    ({"level_factor": np.array([1.0, 0.0, 0.2])}, "levels.factor"),
    ({"level_distortion": np.array([0.0, -1.0, 0.4])}, "levels.distortion"),
    ({"distortion_budget": -1.0}, "distortion_budget"),
    ({"level_names": ("none", "int8")}, "levels"),
])
def test_a_bad_offer_names_its_field(change, field):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(_offer(random_instance(4, 2, 2, 0), 1.0), **change)


def test_a_budget_below_the_least_distortion_is_refused():
    p = random_instance(4, 2, 2, 0)
    with pytest.raises(ValueError, match="distortion_budget"):
        dataclasses.replace(p, level_names=("int8",), level_factor=np.array([0.26]),
                            level_distortion=np.array([0.1]), distortion_budget=0.1)
