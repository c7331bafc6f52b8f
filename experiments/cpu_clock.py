"""The solver's deadlines in CPU seconds, for benchmarks on a shared machine.

`solvers/clock.py` reads `time.perf_counter()` (wall) for a round's `time_limit_s`; on the project's shared 2-core
container the load decides how much work fits in 2 wall seconds, so A/B runs of one instance are unfair to whichever
runs while another job is busy. Inside `cpu_deadlines()` the solver reads this process's CPU time instead (HiGHS's
threads included), and with `scale_highs` HiGHS's own time limits (wall seconds inside HiGHS) are stretched by this
process's wall / CPU ratio so far (at most 20x), as experiments/solver_ab.py --scale-highs does in its child
processes (which keep their own copy: they run other checkouts' code, where this file may not exist).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def cpu_deadlines(on: bool = True, scale_highs: bool = False) -> Iterator[None]:
    """Within the block, `time.perf_counter` is `time.process_time` (when `on`); everything is restored on exit."""
    if not on:
        yield
        return
    wall = time.perf_counter
    highs: Any = None
    if scale_highs:
        from highspy._core import _Highs as highs

        set_option, w0, c0 = highs.setOptionValue, wall(), time.process_time()

        def scaled(self: Any, key: str, value: Any) -> Any:
            if key == "time_limit" and value < 1e20:
                ratio = (wall() - w0) / max(time.process_time() - c0, 1e-3)
                value = float(value) * min(max(ratio, 1.0), 20.0)
            return set_option(self, key, value)

        highs.setOptionValue = scaled
    time.perf_counter = time.process_time
    try:
        yield
    finally:
        time.perf_counter = wall
        if highs is not None:
            highs.setOptionValue = set_option


wall_clock = time.perf_counter
"""The wall clock, also inside `cpu_deadlines()` (which swaps `time.perf_counter`)."""
