"""The relay-group bound (solvers/group_columns.py): valid against the exact references, tighter than the subset
LP's where relay groups matter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvers import random_instance
from solvers.bounds import subset_lower_bound
from solvers.clock import Clock
from solvers.evaluate import evaluate
from solvers.exact import exact_solve
from solvers.group_bound import group_applies, group_lower_bound
from solvers.group_columns import GroupBound
from solvers.group_parts import edge_parts


def _bound(p, plan) -> float:  # noqa: ANN001
    edge_t = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    return group_lower_bound(p, subset_lower_bound(p, edge_t), plan.objective, plan.latency_s, plan.energy_j,
                             Clock(), plan=(plan.placement, plan.relay, plan.bandwidth_hz))


@pytest.mark.parametrize("aggregates", [False, True])
@pytest.mark.parametrize("seed,lam", [(0, 0.05), (1, 0.5), (2, 5.0), (3, 50.0)])
def test_bound_never_above_the_optimum(seed: int, lam: float, aggregates: bool) -> None:
    p = random_instance(4, 1, 4, seed, lam=lam, relay_aggregates=aggregates, d2d_neighbours=3)
    opt = exact_solve(p)
    assert group_applies(p)
    got = _bound(p, opt)
    assert got <= opt.objective * (1 + 1e-9)
    assert got >= 0.8 * opt.objective  # and not a trivial one
    g = GroupBound(p, 0, edge_parts(p, 0))  # E_lb at the optimum's latency: the optimum finishes by it
    assert g.energy(opt.latency_s, opt.energy_j) <= opt.energy_j * (1 + 1e-9)


def test_bound_valid_from_a_worse_incumbent() -> None:
    from solvers import solve  # noqa: PLC0415

    p = random_instance(4, 1, 4, 7, lam=0.5, d2d_neighbours=3)
    opt = exact_solve(p)
    start = solve(p, "greedy")
    got = _bound(p, start)
    assert start.objective >= opt.objective * (1 - 1e-9)
    assert got <= opt.objective * (1 + 1e-9)


@pytest.mark.slow
def test_group_master_prices_a_group_after_its_last_member() -> None:
    """On an 8-device edge the master's bound at the plan's latency exceeds what the subset LP can reach there
    (the subset program prices a group by its parts)."""
    from solvers import solve  # noqa: PLC0415
    from solvers.subset_energy import SubsetEnergy  # noqa: PLC0415

    p = random_instance(8, 1, 6, 0, lam=0.5, d2d_neighbours=3)
    plan = solve(p, "joint", time_limit_s=0)
    g = GroupBound(p, 0, edge_parts(p, 0))
    got = g.energy(plan.latency_s, plan.energy_j, seed=g.plan_groups(plan.placement, plan.relay, plan.bandwidth_hz))
    sub = SubsetEnergy(p, covers=True, band_row=True)
    ref = max(sub.edge(0).value(plan.latency_s, nu, 0.0) for nu in np.geomspace(1e-8, 1e-4, 9))
    assert got <= plan.energy_j * (1 + 1e-9)
    assert got > ref and math.isfinite(got)


def test_rounds_it_does_not_take() -> None:
    p = random_instance(4, 1, 4, 0, lam=0.5)
    import dataclasses  # noqa: PLC0415

    assert not group_applies(dataclasses.replace(p, tree_aggregation=True))
    assert not group_applies(dataclasses.replace(p, p_max=p.tx_power_w.copy()))
