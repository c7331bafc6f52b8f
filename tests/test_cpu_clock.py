"""experiments/cpu_clock.py: the benchmarks' CPU-second deadlines swap the clocks only inside the block."""

from __future__ import annotations

import time

import pytest
from conftest import load_experiment

from solvers import random_instance, solve


def test_cpu_deadlines_swap_and_restore() -> None:
    cpu_clock = load_experiment("cpu_clock")
    from highspy._core import _Highs

    wall, set_option = time.perf_counter, _Highs.setOptionValue
    with cpu_clock.cpu_deadlines(scale_highs=True):
        assert time.perf_counter is time.process_time
        assert _Highs.setOptionValue is not set_option
        assert cpu_clock.wall_clock is wall
        # a solve under the swapped clock keeps its (CPU) limit and still certifies its plan
        plan = solve(random_instance(6, 1, 3, 0, lam=0.5), "joint", time_limit_s=0.3)
        assert 0 < plan.lower_bound <= plan.objective
    assert time.perf_counter is wall and _Highs.setOptionValue is set_option
    with pytest.raises(RuntimeError), cpu_clock.cpu_deadlines():
        raise RuntimeError("restored on the way out too")
    assert time.perf_counter is wall
    with cpu_clock.cpu_deadlines(on=False):
        assert time.perf_counter is wall
