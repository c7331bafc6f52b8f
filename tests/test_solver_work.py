"""The work budget (solvers/clock.py, budget="work"): the round's seconds counted in deterministic work, so the same
instance gives the same plan whatever else the machine runs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from solvers import check_plan, random_instance, solve
from solvers.clock import (
    ITERATION_S,
    NODE_ITERATIONS_PER_ROW,
    NODE_S,
    TICK_S,
    Clock,
    WorkMeter,
    highs_limits,
    now,
    under_budget,
)


def test_the_work_clock_counts_its_readings() -> None:
    with under_budget("work") as meter:
        assert isinstance(meter, WorkMeter)
        c = Clock.start(10 * TICK_S)  # one reading
        assert c.end == pytest.approx(11 * TICK_S)
        assert c.left() == pytest.approx(9 * TICK_S)  # each reading is a tick of work
        for _ in range(8):
            now()
        assert c.expired() and c.left() == 0.0
        assert meter.ticks == 12
    with under_budget("time") as none:
        assert none is None  # outside a work budget: the wall clock


def test_a_solve_inside_a_work_budget_keeps_its_meter() -> None:
    with under_budget("work") as outer:
        with under_budget("work") as inner:
            assert inner is outer
        with under_budget("time") as inner:
            assert inner is outer
        own = WorkMeter(ticks=5)
        with under_budget("work", meter=own) as inner:  # a worker going on from its parent's count
            assert inner is own
        assert outer is not None and outer.ticks == 0


def test_highs_gets_iteration_and_node_limits_under_a_work_budget() -> None:
    assert highs_limits(0.5) == {"time_limit": 0.5}
    with under_budget("work"):
        got = highs_limits(0.5)
    assert got["simplex_iteration_limit"] == int(0.5 / ITERATION_S) + 1
    assert got["mip_max_nodes"] == int(0.5 / NODE_S) + 1
    assert got["time_limit"] > 0.5  # only a backstop


@pytest.mark.parametrize("bad", ["wall", "", None, 1])
def test_a_bad_budget_is_refused_naming_the_field(bad: object) -> None:
    p = random_instance(8, 2, 3, 0)
    with pytest.raises(ValueError, match="budget"):
        solve(p, "joint", budget=bad)
    with pytest.raises(ValueError, match="budget"):
        with under_budget(bad):  # type: ignore[arg-type]
            pass


def _burn(stop: threading.Event) -> None:
    a = np.random.default_rng(0).random((120, 120))
    while not stop.is_set():
        a = a @ a
        a /= np.abs(a).max()


def test_a_tight_work_budget_gives_the_same_plan_under_load() -> None:
    """lambda > 0 on a 12-device edge (the bound's LPs, the edge model's MILPs): under a work budget the model runs
    out of (status time_limit), solved twice while another thread burns CPU, the plans are equal (under
    budget="time" the same two solves can differ, even on a quiet machine)."""
    p = random_instance(12, 1, 5, 2, lam=0.5)
    stop = threading.Event()
    burner = threading.Thread(target=_burn, args=(stop,), daemon=True)
    burner.start()
    try:
        plans, spent = [], []
        for _ in range(2):
            with under_budget("work") as meter:
                plans.append(solve(p, "joint", time_limit_s=0.05, budget="work"))
            assert meter is not None
            spent.append(meter.seconds())
    finally:
        stop.set()
        burner.join()
    a, b = plans
    assert spent[0] == spent[1] and spent[0] >= 0.05  # the budget was used up, the same way twice
    assert a.status == "time_limit"
    assert np.array_equal(a.placement, b.placement) and np.array_equal(a.relay, b.relay)
    assert np.array_equal(a.bandwidth_hz, b.bandwidth_hz)
    assert (a.objective, a.lower_bound, a.status) == (b.objective, b.lower_bound, b.status)


def test_a_node_of_a_large_milp_costs_its_expected_iterations() -> None:
    """HiGHS's MIP ignores the iteration limit, so under a work budget its node limit stops it: priced at a node's
    expected iterations (NODE_ITERATIONS_PER_ROW x rows), not a flat NODE_S."""
    with under_budget("work"):
        small, large = (highs_limits(0.5, rows)["mip_max_nodes"] for rows in (0, 106))
    assert small == int(0.5 / NODE_S) + 1
    assert large == int(0.5 / (NODE_S + ITERATION_S * NODE_ITERATIONS_PER_ROW * 106)) + 1 < small / 10


@pytest.mark.slow
def test_a_memory_tight_round_keeps_near_its_work_budget() -> None:
    """200 devices on 2 edges with tight memory: the placement-repair MILPs of 100-device edges (106 rows) branch.
    With nodes at 1 ms each this round spent 5.8 work seconds (45,360 iterations, 264 nodes; 5.5 CPU s) of a 1 s
    budget and the first repair ran into its wall-clock backstop under load (then time, not work, decided the plan);
    priced by their rows, 2.1 (the root of each repair still ignores the iteration limit)."""
    p = random_instance(200, 2, 6, 0, memory_fraction=(0.5, 0.7))
    with under_budget("work") as meter:
        plan = solve(p, "joint", time_limit_s=1, budget="work")
    assert meter is not None and meter.seconds() < 3.0
    assert check_plan(p, plan) == []
