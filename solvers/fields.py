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
