"""highspy's bare solver object, where this highspy has it (no banner on stdout, no scipy import)."""

from __future__ import annotations

from typing import Any


def bare_highs() -> tuple[Any, Any] | None:
    """(the highspy module, its bare solver class) or None where this highspy has no `_core._Highs`."""
    try:
        import highspy
        from highspy._core import _Highs
    except ImportError:
        return None
    return highspy, _Highs
