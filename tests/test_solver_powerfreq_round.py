"""The subset program with integer columns (solvers/route_lp.py `RouteLP.integer`) and the choices it gives the power
/ frequency plan (solvers/powerfreq_round.py `milp_choices`): the integer optimum by brute force over every column
vector on small edges, and valid, new choices."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from solvers import random_instance, solve
from solvers.check import check_plan
from solvers.clock import Clock
from solvers.powerfreq_round import milp_choices
from solvers.subset_energy import SubsetEnergy


def _decisions(p):
    return dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())


def _rows_hold(lp, x: np.ndarray) -> bool:
    """x [n] meets every row of the RouteLP (no cover variables)."""
    a = np.zeros((lp.m, lp.n))
    for j in range(lp.n):
        a[lp.index[lp.start[j]:lp.start[j + 1]], j] = lp.value[lp.start[j]:lp.start[j + 1]]
    ax = a @ x
    return bool(np.all(ax >= lp.row_lo - 1e-9) and np.all(ax <= lp.row_hi + 1e-9))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_integer_columns_are_the_brute_force_optimum(seed: int) -> None:
    p = _decisions(random_instance(3, 1, 3, seed, lam=0.5, d2d_neighbours=2))
    plan = solve(p, "joint", time_limit_s=0.5)
    sub = SubsetEnergy(p)
    ee = sub.edge(0)
    assert ee is not None
    t = plan.latency_s * 1.05
    cost = ee.costs(t, 1e-7, 0.0)
    got = ee.lp.integer(cost, 5.0, gap=0.0)
    assert got is not None
    assert np.allclose(got, np.round(got))
    assert _rows_hold(ee.lp, np.round(got))
    owner = np.concatenate([ee.dev, ee.dev[ee.lcol]])
    options = [[-1, *np.flatnonzero((owner == i) & np.isfinite(cost))] for i in np.unique(ee.dev)]
    best = np.inf
    for pick in itertools.product(*options):
        x = np.zeros(ee.lp.n)
        x[[c for c in pick if c >= 0]] = 1.0
        if _rows_hold(ee.lp, x):
            best = min(best, float(np.sum(np.where(x > 0, cost, 0.0))))
    assert np.isfinite(best)
    value = float(np.sum(np.where(np.round(got) > 0, cost, 0.0)))
    assert value == pytest.approx(best, rel=1e-6)
    status, lp_value = ee.lp.solve(cost)
    assert status == "optimal" and lp_value <= value * (1 + 1e-9)
    # reduced-cost fixing: a column whose reduced cost exceeds best - LP is in no optimum, so the program kept to
    # the columns within that slack still finds the optimum
    near = ee.lp.integer(cost, 5.0, gap=0.0, slack=(best - lp_value) / abs(lp_value) + 1e-6)
    assert near is not None and _rows_hold(ee.lp, np.round(near))
    assert float(np.sum(np.where(np.round(near) > 0, cost, 0.0))) == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize("seed", [5, 9])  # each gives one choice
def test_milp_choices_are_new_and_valid(seed: int) -> None:
    p = _decisions(random_instance(6, 1, 4, seed, lam=0.05))
    plan = solve(p, "joint", time_limit_s=0.5, budget="work")  # the same plan under any load (seed 0 under wall time
    # gave a plan equal to the program's choice on a lightly loaded machine, and no new choice)
    sub = SubsetEnergy(p, covers=True)
    for t in plan.latency_s * np.array([0.97, 1.0, 1.03]):
        sub.energy_edges(float(t), np.array([1e-7]), np.array([0.0]))
    got = milp_choices(p, sub, plan, Clock(), 0.0)
    assert len(got) == 1
    for x, relay in got:
        assert not (np.array_equal(x, plan.placement) and np.array_equal(relay, plan.relay))
        trial = plan.with_(placement=x, relay=relay,
                           bandwidth_hz=np.where(relay == np.arange(p.num_devices), 1.0, 0.0))
        assert not check_plan(p, trial, check_cost=False)
