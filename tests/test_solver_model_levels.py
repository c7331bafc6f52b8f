"""solvers/model_levels.py: the compression level as a decision in the round's cvxpy model, against evaluate and a
brute force over placement x relays x level vectors."""

from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np
import pytest
from conftest import model_at_plan
from test_solver_levels import NAMES, _offer  # the same offer: none, int8, top-k (distortions 0, 0.01, 0.4)

from solvers import RoundProblem, random_instance
from solvers.edgebatch import EdgeView
from solvers.energy import plan_bandwidth
from solvers.evaluate import evaluate
from solvers.exact import edge_placements, relay_maps
from solvers.model import certify


def _brute(p: RoundProblem) -> float:
    """The least T + lambda E + mu D of a one-edge round over every minimal-cover placement, one-hop relay map and
    level vector within the budget, each at its exact band (dropping a module never raises latency, energy or the
    distortion of the senders, so minimal covers suffice, as in solvers/exact.py; the level of a device whose level
    scales no bits changes nothing, so it stays 0)."""
    view = EdgeView.of(p, 0)
    best = np.inf
    for x in edge_placements(view):
        for relay in relay_maps(view.rate, p.relay_capacity):
            r = np.asarray(relay)
            used = (x.astype(float) @ p.module_bytes) > 0  # whose level scales bits: senders, aggregating relays
            if p.relay_aggregates:
                used[r[used & (r != np.arange(p.num_devices))]] = True
            for lv in itertools.product(range(len(NAMES)), repeat=int(used.sum())):
                level = np.zeros(p.num_devices, dtype=int)
                level[used] = lv
                q = p.with_levels(level)
                if p.distortion_budget is not None and q.distortion(x) > p.distortion_budget + 1e-12:
                    continue
                best = min(best, evaluate(q, x, r, plan_bandwidth(q, x, r)).objective)
    return best


SLOW = pytest.mark.slow  # over 1 s on the 2-core container (the program's compile dominates)


@pytest.mark.parametrize(("lam", "aggregates"), [pytest.param(0.0, False, marks=SLOW), (0.5, True),
                                                 pytest.param(5.0, False, marks=SLOW)])
def test_model_objective_equals_evaluate_at_fixed_levels(lam, aggregates):
    """Placement, relays, shares and a level vector fixed (a tangent at each share): the model's T + lambda E + mu D
    is evaluate's, relayed payloads at their senders' factors, aggregated unions at the relay's."""
    p = _offer(random_instance(5, 1, 3, seed=3, lam=lam, relay_aggregates=aggregates), 2.0, penalty=0.3)
    x, relay = _start(p)
    assert np.any(relay != np.arange(p.num_devices)), "the instance should exercise relays"
    level = np.array([0, 1, 2, 1, 2])
    q = p.with_levels(level)
    band = plan_bandwidth(q, x, relay)
    share = band / p.edge_bandwidth_hz[p.device_edge]
    want = evaluate(q, x, relay, band).objective

    m, sc = model_at_plan(p, x, relay, share, want, lambda var: [var["y"] == np.eye(3)[level]])
    m.problem.solve(solver="HIGHS")
    assert m.problem.value * sc.t0 == pytest.approx(want, rel=1e-6)


def _start(p: RoundProblem) -> tuple[np.ndarray, np.ndarray]:
    """A deliberately plain incumbent at full size (the heuristics only), so the model has work to do."""
    from solvers.joint import joint_solve

    plan = joint_solve(dataclasses.replace(p, level_names=(), level_factor=None, level_distortion=None,
                                           distortion_budget=None, distortion_penalty=0.0),
                       enum_max=0, local_rounds=0, time_limit_s=0)
    return plan.placement, plan.relay


# (seed, lambda, relays aggregate, budget, penalty): 3-device single edges, three levels
CASES = [pytest.param(0, 0.0, False, 0.41, 0.0, marks=SLOW), (1, 0.0, True, None, 0.5), (2, 0.5, False, 0.02, 0.0),
         (3, 5.0, True, 0.5, 1.0)]


@pytest.mark.parametrize(("seed", "lam", "aggregates", "budget", "penalty"), CASES)
def test_model_with_levels_is_the_brute_force_optimum(seed, lam, aggregates, budget, penalty):
    p = _offer(random_instance(3, 1, 2, seed=seed, lam=lam, relay_aggregates=aggregates), budget, penalty)
    want = _brute(p)
    c = certify(p, *_start(p), time.perf_counter() + 60.0, gap=1e-4, max_milps=20)
    assert c.level is not None and c.lower_bound <= want * (1 + 1e-6)  # the bound is valid
    got = p.with_levels(c.level)
    assert got.distortion(c.x) <= (budget if budget is not None else np.inf) + 1e-12
    assert c.objective == pytest.approx(evaluate(got, c.x, c.relay, plan_bandwidth(got, c.x, c.relay)).objective)
    assert c.objective == pytest.approx(want, rel=1e-6)  # the model's plan is the brute force's optimum
    assert c.proven


def test_budget_zero_forces_no_compression():
    """Budget 0: every sender at the level of no distortion (none), and the optimum is the full-size round's."""
    p = _offer(random_instance(3, 1, 2, seed=4), 0.0)
    c = certify(p, *_start(p), time.perf_counter() + 60.0, gap=1e-4, max_milps=20)
    assert c.level is not None
    sends = (c.x.astype(float) @ p.module_bytes) > 0
    assert sends.any() and np.all(c.level[sends] == 0)
    full = dataclasses.replace(p, level_names=(), level_factor=None, level_distortion=None, distortion_budget=None)
    c0 = certify(full, *_start(p), time.perf_counter() + 60.0, gap=1e-4, max_milps=20)
    assert c.objective == pytest.approx(c0.objective, rel=1e-6)
    free = _offer(p, None)  # without the budget the round compresses and is faster
    c1 = certify(free, *_start(p), time.perf_counter() + 60.0, gap=1e-4, max_milps=20)
    assert c1.level is not None and np.any(c1.level > 0) and c1.objective < c.objective
