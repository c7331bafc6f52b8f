"""Small field checks shared by the instance and plan JSON readers (no solver imports: the leaves of the package)."""

from __future__ import annotations

import json
import math
from typing import Any


def id_key(v: Any) -> str:
    """Ids may be strings or ints; compare them by JSON spelling so 1 and "1" stay distinct."""
    if type(v) is str:  # fast paths (100,000 devices): still injective, quotes only around strings
        return '"' + v + '"'
    if type(v) is int:
        return str(v)
    return json.dumps(v)


def check_flag(data: dict, key: str) -> bool:
    """data[key] as a JSON boolean (absent: false)."""
    v = data.get(key, False)
    if not isinstance(v, bool):
        raise ValueError(f"{key}: must be true or false, got {v!r}")
    return v


def check_number(v: Any, name: str, positive: bool = False) -> None:
    """Refuse anything but a finite number >= 0 (> 0 if positive), naming the field."""
    try:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        ok = False
    if not ok or v < 0 or (positive and v == 0):
        raise ValueError(f"{name}: must be a finite number {'> 0' if positive else '>= 0'}, got {v!r}")


def check_time_limit(time_limit_s: float) -> None:
    """Refuse a time limit that cannot be met, naming the option."""
    if isinstance(time_limit_s, bool) or not isinstance(time_limit_s, int | float) or not time_limit_s >= 0 \
            or not math.isfinite(time_limit_s):
        raise ValueError(f"time_limit_s: must be a finite number of seconds >= 0 (0: no model), got {time_limit_s!r}")


BUDGETS = ("time", "work")
"""What a solve's seconds are: wall clock ("time") or deterministic work ("work": solvers/clock.py `WorkMeter`)."""


def check_budget(budget: str) -> None:
    """Refuse an unknown budget, naming the option."""
    if not isinstance(budget, str) or budget not in BUDGETS:
        raise ValueError(f"budget: must be 'time' (time_limit_s is wall-clock seconds: fastest answer, depends on "
                         f"load) or 'work' (deterministic work units: same instance, same plan), got {budget!r}")


def check_gap(gap: float) -> None:
    """Refuse a gap target that cannot be met, naming the option."""
    if isinstance(gap, bool) or not isinstance(gap, int | float) or not 0 <= gap < 1:
        raise ValueError(f"gap: the target relative gap must be in [0, 1) (e.g. 0.01 for 1 %), got {gap!r}")


def check_limits(time_limit_s: float, gap: float) -> None:
    """Refuse a time limit or gap target that cannot be met, naming the option."""
    check_time_limit(time_limit_s)
    check_gap(gap)
