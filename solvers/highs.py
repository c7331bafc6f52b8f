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


def run_settled(h: Any, highspy: Any) -> Any:
    """Run an LP and return its model status; a status other than optimal or infeasible runs once more from scratch.

    HiGHS can end a warm-started LP with kUnknown, and every later solve from that basis too (a 4-device power /
    frequency edge after costs at a latency 6x away went from a 0.06 % to a 29.8 % gap): a cold rerun settles it.
    Both runs' work is charged to the clock."""
    from solvers.clock import charge  # the clock imports this module

    h.run()
    charge(h.getInfo())
    status = h.getModelStatus()
    if status not in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible):
        h.clearSolver()
        h.run()
        charge(h.getInfo())
        status = h.getModelStatus()
    return status
