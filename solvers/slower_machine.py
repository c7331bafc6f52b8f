"""Make this machine look `factor` times slower: Python's clocks run `factor` times faster and every HiGHS time
limit (the bare solver's and cvxpy's) is reached after 1 / factor of its seconds. Under budget="work" a solve must
give the same plan there (tests/test_solver_work.py; experiments/solver_work_backstop.py --slow)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

CLOCKS = ("perf_counter", "monotonic", "process_time", "time")
"""The clocks of the time module that run faster."""


def skewed(read: Callable[[], float], factor: float) -> Callable[[], float]:
    """The clock `read`, running `factor` times as fast from now on."""
    base = read()
    return lambda: base + (read() - base) * factor


def slow_down(factor: float, set_attr: Callable[[Any, str, Any], None] = setattr) -> None:
    """Look `factor` times slower from now on. set_attr: how to replace an attribute (a test passes
    pytest's monkeypatch.setattr, so the clocks and HiGHS are restored after it; plain setattr for good)."""
    import highspy
    import highspy._core

    for name in CLOCKS:
        set_attr(time, name, skewed(getattr(time, name), factor))
    bare, full = highspy._core._Highs, highspy.Highs.setOptionValue

    def scaled(key: str, value: Any) -> Any:
        return value / factor if key == "time_limit" and isinstance(value, int | float) else value

    class Slow(bare):  # type: ignore[misc, valid-type]
        def setOptionValue(self, key: str, value: object) -> object:  # noqa: N802 (HiGHS's name)
            return super().setOptionValue(key, scaled(key, value))

    set_attr(highspy._core, "_Highs", Slow)
    set_attr(highspy.Highs, "setOptionValue", lambda self, key, value: full(self, key, scaled(key, value)))
