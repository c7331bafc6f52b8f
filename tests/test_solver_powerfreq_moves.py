"""One-device moves with power and frequency free (solvers/powerfreq_moves.py) and their batched pricing
(solvers/powerfreq_batch.py): the batch gives each choice the value of solvers/powerfreq.py's step on it alone; every
option keeps the round's constraints; the moves never return a worse plan and the plan passes check_plan; on the
bench's 8-device lambda 0.5 edge they find the relay move joint's 2 s plan missed (20.4953 -> 20.3021)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from solvers import random_instance, solve
from solvers.check import check_plan
from solvers.clock import Clock
from solvers.evaluate import evaluate
from solvers.joint_powerfreq import _power_frequency_options
from solvers.powerfreq import Groups, decisions, energy_at, plan_power_frequency
from solvers.powerfreq_batch import batch_objectives
from solvers.powerfreq_moves import module_options, plan_moves, relay_options


def _decisions(p):
    return dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())


def _options(p, plan):
    x, r = plan.placement, plan.relay
    return [(x, o) for o in relay_options(p, r)] + [(y, r) for y in module_options(p, x)]


@pytest.mark.parametrize("lam", [0.05, 5.0])
def test_batch_values_are_feasible_plans_near_the_step(lam: float) -> None:
    """Each batched value is the cost (solvers/evaluate.py) of the step's blocks on that choice alone at the batch's
    deadline, a feasible plan (check_plan), and within 2 % of the step's own plan (both search T by golden section on
    a block-coordinate energy, so either may end lower)."""
    p = _decisions(random_instance(5, 1, 4, 3, lam=lam, d2d_neighbours=2))
    plan = solve(p, "joint", time_limit_s=0.2)
    opts = _options(p, plan)
    assert len(opts) >= 5
    opts = opts[:: max(1, len(opts) // 6)]
    got, ts = batch_objectives(p, np.stack([o[0] for o in opts]), np.stack([o[1] for o in opts]), iters=8)
    for (x, r), v, t in zip(opts, got, ts, strict=True):
        g = Groups.of(p, x, r)
        _, b, s = energy_at(g, float(t), p.edge_bandwidth_hz)
        band, pw, fr = decisions(p, g, float(t), b, s)
        here = evaluate(p, x, r, band, pw, fr)
        assert v == pytest.approx(here.objective, rel=1e-6)
        trial = plan.costed(here, placement=x, relay=r, bandwidth_hz=band, tx_power_w=pw, cpu_hz=fr)
        assert check_plan(p, trial) == []
        step = evaluate(p, x, r, *plan_power_frequency(p, x, r, iters=8)).objective
        assert v == pytest.approx(step, rel=0.02)


def test_options_keep_the_constraints() -> None:
    for seed in range(3):
        p = _decisions(random_instance(8, 1, 4, seed, lam=0.5, d2d_neighbours=3))
        plan = solve(p, "joint", time_limit_s=0.1)
        n = p.num_devices
        for x, r in _options(p, plan):
            assert int(np.sum(r != plan.relay)) + int(np.sum(x != plan.placement)) in (1, 2)
            trial = plan.with_(placement=x, relay=r, bandwidth_hz=np.where(r == np.arange(n), 1.0, 0.0))
            assert check_plan(p, trial, check_cost=False) == []


def test_moves_never_worse_and_feasible() -> None:
    for seed in range(3):
        p = _decisions(random_instance(5, 1, 4, seed, lam=[0.05, 0.5, 5.0][seed], d2d_neighbours=2))
        plan = _power_frequency_options(p, solve(p, "joint", time_limit_s=0.05))
        got = plan_moves(p, plan, Clock(), functools.partial(_power_frequency_options, p))
        assert got.objective <= plan.objective
        assert check_plan(p, got) == []
        assert got.objective == pytest.approx(
            evaluate(p, got.placement, got.relay, got.bandwidth_hz, got.tx_power_w, got.cpu_hz).objective
        )


def test_bench_edge_move() -> None:
    p = _decisions(random_instance(8, 1, 6, 0, lam=0.5, d2d_neighbours=3))
    x = np.zeros((8, 6), dtype=bool)
    for i, ms in enumerate([[0], [], [3, 5], [0, 1, 2, 4], [0], [2], [5], [1, 3, 4, 5]]):
        x[i, ms] = True
    relay = np.array([4, 1, 2, 3, 4, 5, 6, 7])
    plan = solve(p, "joint", time_limit_s=0.1)
    start = _power_frequency_options(p, plan.with_(placement=x, relay=relay))
    got = plan_moves(p, start, Clock(), lambda c: _power_frequency_options(p, c))
    assert start.objective > 20.49
    assert got.relay[0] == 7 and got.objective < 20.31
    assert check_plan(p, got) == []
