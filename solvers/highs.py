"""HiGHS through highspy: its bare solver object where this highspy has it (no banner on stdout, no scipy import),
and the one way the solvers build, run and read a model (every LP / MILP of solvers/ goes through here, so a
quiet solver, the clock's limits and its work meter, and the cutoff's bound are done once)."""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Sequence
from typing import Any

from solvers.clock import MIP_ITERATIONS, backstop_met, charge, current_meter, set_limits

_MILPS: weakref.WeakSet[Any] = weakref.WeakSet()
"""The solvers `highs` built with integer columns: under a work budget `run` holds them to their iteration limit."""
LOGGED_ITERATIONS = re.compile(r"%\s.*\s(\d+)([km]?)\s*$")
"""The LP iterations at the end of a MIP display line of HiGHS (timeless_log: no time after them; k, m: thousands,
millions)."""
_IDLE = [0, 2**62]
"""The callback state a MILP's solver keeps between runs (highspy holds only a pointer to it)."""
LOG_TO_CALLBACK = {"output_flag": True, "log_to_console": False, "timeless_log": True, "mip_min_logging_interval": 0.0}
"""HiGHS options that send each MIP display line to the logging callback, none to the console."""


def bare_highs() -> tuple[Any, Any] | None:
    """(the highspy module, its bare solver class) or None where this highspy has no `_core._Highs`."""
    try:
        import highspy
        from highspy._core import _Highs
    except ImportError:
        return None
    return highspy, _Highs


def require_bare_highs(what: str) -> tuple[Any, Any]:
    """(the highspy module, its bare solver class), or a RuntimeError saying that `what` needs the bare solver."""
    fast = bare_highs()
    if fast is None:
        raise RuntimeError(f"{what} needs highspy's bare solver (highspy._core._Highs)")
    return fast


def highs_lp(
    highspy: Any,
    cost: Any,
    lower: Any,
    upper: Any,
    row_lower: Any,
    row_upper: Any,
    start: Any,
    index: Any,
    value: Any,
    rowwise: bool = False,
    integer: Sequence[bool] | None = None,
) -> Any:
    """A HighsLp: columns (cost, lower, upper), rows (lower, upper), the matrix compressed by column (by row where
    rowwise) as (start, index, value); integer: per column whether it is integer (None: all continuous)."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cost), len(row_lower)
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lower, upper
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise if rowwise else highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = start, index, value
    if integer is not None:
        kind = highspy.HighsVarType
        lp.integrality_ = [kind.kInteger if k else kind.kContinuous for k in integer]
    return lp


FEASIBILITY_JUMP = 0
"""1: leave HiGHS's feasibility-jump heuristic on in MILPs. Off (0): it runs before the root LP, and where the root's
propagation fixes every binary HiGHS 1.16 (presolve off) took its point as optimal without solving the LP over the
continuous variables: a dual bound above the optimum, which our bounds read (level_energy's least-cost MILP, T
within ~1e-6 of the least latency: 4e-6 above G(T), seed 2; tests/test_solver_level_energy.py)."""
JUMP_OPTION = "mip_heuristic_run_feasibility_jump"
"""HiGHS's option for FEASIBILITY_JUMP."""


def cvxpy_milp_options() -> dict[str, Any]:
    """The HiGHS options every MILP solved through cvxpy passes to `Problem.solve(solver="HIGHS", ...)` (its HiGHS
    interface sets each keyword with setOptionValue): the feasibility jump as `highs` sets it (FEASIBILITY_JUMP,
    read at the call, so a patched value reaches both)."""
    return {JUMP_OPTION: bool(FEASIBILITY_JUMP)}


def highs(bare: Any, lp: Any, seconds: float | None = None, **options: Any) -> Any:
    """A quiet solver of class `bare` holding `lp`, with these HiGHS options; seconds: the clock's limits
    (clock.set_limits, after the model: a MILP's node limit counts its rows)."""
    h = bare()
    h.setOptionValue("output_flag", False)
    if len(lp.integrality_) and not FEASIBILITY_JUMP:
        h.setOptionValue(JUMP_OPTION, False)
    for key, value in options.items():
        h.setOptionValue(key, value)
    h.passModel(lp)
    if seconds is not None:
        set_limits(h, seconds)
    if len(lp.integrality_):
        _MILPS.add(h)
    return h


def run(h: Any) -> Any:
    """Run `h` once, its work charged to the clock (a backstop met under a work budget logged); returns `h` (read its
    status and solution there). Under a work budget a MILP of `highs` keeps its iteration limit (`run_mip_within`)."""
    if current_meter() is not None and h in _MILPS:
        run_mip_within(h)
    else:
        h.run()
    charge(h.getInfo())
    backstop_met(h)
    return h


def _logged_iterations(kind: Any, message: str, _out: Any, into: Any, state: list[int]) -> None:
    """HiGHS callback of `run_mip_within`: a display line sets state[0] to the LP iterations it shows; a check of
    the MIP's limits with state[0] at or past the limit state[1] interrupts it."""
    import highspy

    if int(kind) == int(highspy.cb.HighsCallbackType.kCallbackLogging):
        m = LOGGED_ITERATIONS.search(message)
        if m is not None and "|" not in message:
            state[0] = int(m.group(1)) * {"k": 1000, "m": 1000000}.get(m.group(2), 1)
    elif into is not None and state[0] >= state[1]:
        into.user_interrupt = True


def run_mip_within(h: Any) -> None:
    """Run the MILP of `h` stopped at MIP_ITERATIONS x its simplex iteration limit (status kInterrupt).

    HiGHS's MIP ignores simplex_iteration_limit (its LPs run without it) and checks its node limit only between
    nodes, so under a work budget a MILP whose root overran its work met the wall-clock backstop, and time, not
    work, decided its answer (a 106-row repair MILP given 417 iterations ran 4,596-7,202; solvers/clock.py
    BACKSTOP_S). Its display lines (logged to a callback, none printed) show the LP iterations so far, sub-MIP
    heuristics included, and at each check of its limits (between root LPs, cut rounds, heuristics and nodes) the
    MIP stops once they reach MIP_ITERATIONS x the limit: the same point on every run, a root LP or heuristic past it at
    most."""
    import highspy

    kinds = (highspy.cb.HighsCallbackType.kCallbackLogging, highspy.cb.HighsCallbackType.kCallbackMipInterrupt)
    before = {key: h.getOptionValue(key)[1] for key in LOG_TO_CALLBACK}
    for key, value in LOG_TO_CALLBACK.items():
        h.setOptionValue(key, value)
    # held here: highspy keeps no reference to it
    state = [0, int(MIP_ITERATIONS * h.getOptionValue("simplex_iteration_limit")[1])]
    h.setCallback(_logged_iterations, state)
    for kind in kinds:
        h.startCallback(kind)
    try:
        h.run()
    finally:
        for kind in kinds:
            h.stopCallback(kind)
        h.setCallback(_logged_iterations, _IDLE)  # what the solver keeps a pointer to outlives it
        for key, value in before.items():
            h.setOptionValue(key, value)


def run_settled(h: Any, highspy: Any) -> Any:
    """Run an LP (`run`) and return its model status; a status other than optimal or infeasible runs once more from
    scratch. HiGHS can end a warm-started LP with kUnknown, and every later solve from that basis too (a 4-device
    power / frequency edge after costs at a latency 6x away went from a 0.06 % to a 29.8 % gap): a cold rerun settles
    it. Both runs' work is charged to the clock."""
    settled = (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible)
    status = run(h).getModelStatus()
    if status not in settled:
        h.clearSolver()
        status = run(h).getModelStatus()
    return status


def run_lp(bare: Any, lp: Any) -> Any:
    """A quiet solver of class `bare` run once on `lp` (read its status and solution from the returned solver)."""
    return run(highs(bare, lp))


def beyond_cutoff(info: Any, cutoff: float) -> bool:
    """Whether HiGHS, given `objective_bound` = cutoff, proved that nothing lies below it although it reports a
    solution. HiGHS prunes every node whose bound reaches the cutoff, so its dual bound holds only up to the cutoff:
    1.16 returns a solution above the cutoff (from its heuristics) as "optimal" with that solution's value as the dual
    bound, while pruned nodes held cheaper points between the two (a 6-device tree root: bound 326.9, cutoff 316.5, a
    plan at 319.0). A valid bound is min(dual bound, cutoff); at or above the cutoff that is "nothing below it"."""
    return (
        info.primal_solution_status == 2
        and math.isfinite(cutoff)
        and float(info.objective_function_value) > cutoff
        and float(info.mip_dual_bound) >= cutoff
    )


def cutoff_bound(h: Any, cutoff: float, scale: float = 1.0) -> float:
    """The valid lower bound of a MILP run with `objective_bound` = cutoff / scale, in units of scale: inf where
    nothing lies below the cutoff (infeasible, or `beyond_cutoff`), else min(dual bound x scale, cutoff), a dual
    bound HiGHS does not give counting as 0."""
    import highspy

    info = h.getInfo()
    if h.getModelStatus() == highspy.HighsModelStatus.kInfeasible or beyond_cutoff(info, cutoff / scale):
        return math.inf
    dual = float(info.mip_dual_bound)
    return min(dual * scale if math.isfinite(dual) else 0.0, cutoff)
