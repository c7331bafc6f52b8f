"""The work budget (solvers/clock.py, budget="work"): the round's seconds counted in deterministic work, so the same
instance gives the same plan whatever else the machine runs."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from solvers import RoundProblem, check_plan, random_instance, solve
from solvers.clock import (
    BACKSTOP,
    BACKSTOP_S,
    ITERATION_S,
    MIP_ITERATIONS,
    NODE_ITERATIONS_PER_ROW,
    NODE_S,
    TICK_S,
    Clock,
    WorkMeter,
    highs_limits,
    now,
    set_limits,
    under_budget,
)
from solvers.slower_machine import slow_down


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
    priced by their rows, 2.1; each repair's root now keeps its iteration limit too (solvers/highs.py
    `run_mip_within`)."""
    p = random_instance(200, 2, 6, 0, memory_fraction=(0.5, 0.7))
    with under_budget("work") as meter:
        plan = solve(p, "joint", time_limit_s=1, budget="work")
    assert meter is not None and meter.seconds() < 3.0
    assert check_plan(p, plan) == []


def _power_frequency(n: int, lam: float, seed: int, d2d_neighbours: int = 3) -> RoundProblem:
    p = random_instance(n, 1, 6 if n > 3 else 3, seed, lam=lam, d2d_neighbours=d2d_neighbours)
    return dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())


class _Options:
    """HiGHS options as a test's fake solver object records them."""

    def __init__(self, run_time: float = 0.0) -> None:
        self.set: dict[str, object] = {}
        self.run_time = run_time

    def getNumRow(self) -> int:  # noqa: N802 (HiGHS's names)
        return 10

    def getRunTime(self) -> float:  # noqa: N802
        return self.run_time

    def setOptionValue(self, key: str, value: object) -> None:  # noqa: N802
        self.set[key] = value


def test_the_backstop_counts_from_the_call_not_from_the_solvers_first_run() -> None:
    """HiGHS checks its time limit against a run clock that adds up every run of the object: under a work budget
    set_limits puts the backstop past what the object has run already (a warm-started LP solved again and again)."""
    h = _Options(run_time=7.0)
    set_limits(h, 0.5)
    assert h.set == {"time_limit": 0.5}  # budget="time": as before
    with under_budget("work"):
        h = _Options(run_time=7.0)
        set_limits(h, 0.5)
    assert h.set["time_limit"] == pytest.approx(7.0 + BACKSTOP * 0.5 + BACKSTOP_S)
    assert h.set["simplex_iteration_limit"] == int(0.5 / ITERATION_S) + 1


def test_the_integer_route_milp_gets_the_clocks_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """RouteLP.integer (powerfreq_round's MILP choices) took a raw HiGHS time limit, so under budget="work" the wall
    clock stopped it (a 12-device power / frequency edge: 26.19 quiet, 26.32 beside three CPU hogs); it gets the
    clock's limits: its seconds as iterations and nodes, time only as the backstop."""
    import highspy._core

    from solvers.subset_energy import SubsetEnergy

    p = _power_frequency(3, 0.5, 0, d2d_neighbours=2)
    plan = solve(p, "joint", time_limit_s=0.5, budget="work")
    seen: list[dict[str, object]] = []

    class Spy(highspy._core._Highs):  # type: ignore[misc]
        def setOptionValue(self, key: str, value: object) -> object:  # noqa: N802 (HiGHS's name)
            if not seen or key in seen[-1]:
                seen.append({})
            seen[-1][key] = value
            return super().setOptionValue(key, value)

    monkeypatch.setattr(highspy._core, "_Highs", Spy)
    ee = SubsetEnergy(p).edge(0)  # its RouteLP keeps the solver class it was built with
    assert ee is not None
    cost = ee.costs(plan.latency_s * 1.05, 1e-7, 0.0)
    seen.clear()
    with under_budget("work"):
        assert ee.lp.integer(cost, 0.01) is not None
    limits = [s for s in seen if "time_limit" in s]
    assert limits and all(s["time_limit"] == pytest.approx(BACKSTOP * 0.01 + BACKSTOP_S) for s in limits)
    assert all(s["simplex_iteration_limit"] == int(0.01 / ITERATION_S) + 1 for s in limits)
    seen.clear()
    ee.lp.integer(cost, 0.01)  # budget="time": the wall-clock limit, as before (under load 0.01 s may find nothing)
    assert [s["time_limit"] for s in seen if "time_limit" in s] == [pytest.approx(0.01)]


def _repair_weights(p: RoundProblem, e: int) -> np.ndarray:
    """solvers/greedy.py `repair_edge`'s weights of edge e's devices and modules."""
    from solvers.evaluate import uplink_rate

    d = p.edge_devices(e)
    rate = uplink_rate(p.edge_bandwidth_hz[e] / d.size, p.snr_hz[d])
    return (
        p.samples[d, None] * p.module_cycles[None, :] / p.cpu_hz[d, None] + 8 * p.module_bytes[None, :] / rate[:, None]
    ) / np.maximum(p.samples[d], 1e-12)[:, None]


def test_a_milp_keeps_its_iteration_limit_under_a_work_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """HiGHS's MIP ignores simplex_iteration_limit and checks its node limit only between nodes, so the root of a
    placement-repair MILP (a 100-device memory-tight edge, 106 rows) given 0.05 s (417 iterations) ran 4,331 into its
    wall-clock backstop (5.5 s): time, not work, decided its cover. solvers/highs.py `run_mip_within` stops it where
    its display lines show MIP_ITERATIONS x the limit reached (2,141 with the feasibility jump off: a sub-MIP past it): the same
    iterations and cover on a machine 5x slower."""
    from solvers.milp import milp_placement

    p = random_instance(200, 2, 6, 0, lam=0.5, memory_fraction=(0.5, 0.7))
    w = _repair_weights(p, 0)
    runs = []
    for factor in (1.0, 5.0):
        with monkeypatch.context() as m:
            if factor > 1:
                slow_down(factor, m.setattr)
            with under_budget("work") as meter:
                xe = milp_placement(p, 0, w, 0.05)
        assert meter is not None and xe is not None
        runs.append((meter.iterations, meter.nodes, xe))
    limit = int(0.05 / ITERATION_S) + 1
    assert MIP_ITERATIONS * limit <= runs[0][0] < 6 * limit  # a cut round or a heuristic past it at most
    assert runs[0][:2] == runs[1][:2] and np.array_equal(runs[0][2], runs[1][2])


@pytest.mark.slow
def test_a_work_budget_gives_the_same_plan_on_a_slower_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wall clock decides a branch under budget="work": the same solve on a machine 5x slower (Python's clocks
    and HiGHS's time limits skewed) gives the same plan to the last digit, and no HiGHS call meets its wall-clock
    backstop. A 12-device power / frequency edge at lambda 0.5: its bounds' LPs, the integer route MILP of
    powerfreq_round (which had a wall-clock time limit: 26.19 -> 26.32 here, as beside three CPU hogs), and the edge
    model's column MILP, which ran its root 5.5 s into the backstop (3,739 iterations given 407): its LP relaxation
    already stops at its iteration limit, so under a work budget the MILP is not started."""
    import solvers.highs as highs

    met: list[int] = []
    watched = highs.backstop_met
    monkeypatch.setattr(highs, "backstop_met", lambda h: met.append(h.getNumRow()) if watched(h) else False)
    p = _power_frequency(12, 0.5, 0)
    a = solve(p, "joint", time_limit_s=2, budget="work")
    with monkeypatch.context() as m:
        slow_down(5.0, m.setattr)
        b = solve(p, "joint", time_limit_s=2, budget="work")
    assert met == []
    assert (a.objective, a.lower_bound, a.status) == (b.objective, b.lower_bound, b.status)
    assert np.array_equal(a.placement, b.placement) and np.array_equal(a.relay, b.relay)
    assert np.array_equal(a.bandwidth_hz, b.bandwidth_hz)
