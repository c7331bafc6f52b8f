"""One deadline for the round: what keeps every heuristic and every MILP of `joint` within `time_limit_s`.

`joint_solve` makes one `Clock` from the round's `time_limit_s` (0: unbounded, and then every step runs to its own
end, so the plan is deterministic). The heuristics get `HEURISTIC_SHARE` of it (`HEURISTIC_ALONE` where the model
cannot work on the round) and stop early when their share is
spent (keeping the best choices so far: a heuristic is a warm start, not an answer); the model
(solvers/improve.py) gets the rest. A MILP that must return an answer to continue (the placement repair of
solvers/milp.py) gets `milp_limit`: the time left, at most `MILP_CAP_S`, at least `MILP_FLOOR_S` (it needs a
moment to find a cover at all, and without one the round has no plan). The clock is a value passed down, never
a global: a forked worker (solvers/parallel.py) reads the same monotonic clock.

Two budgets (the solve option `budget`, set in one place: `under_budget`): "time" reads time.perf_counter(), so
the plan depends on the machine's speed and load; "work" (the engine's default) reads a `WorkMeter` instead,
seconds counted from work that is the same on every run (each reading of `now`, HiGHS's simplex iterations and
branch-and-bound nodes), and gives HiGHS iteration and node limits for its seconds (`highs_limits`), so the same
instance gives the same plan.
The meter is scoped to the solve (a context variable: other threads and solves read the wall clock) and travels
to the worker processes of solvers/parallel.py.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from solvers.fields import check_budget

log = logging.getLogger(__name__)

HEURISTIC_SHARE = 0.5
"""Part of the round's time limit the heuristics may spend before the model starts."""
HEURISTIC_ALONE = 0.8
"""Part the heuristics may spend where the model cannot work on the round (too large, trees): the rest is for the
certified bound, the final band and the checks."""
MILP_CAP_S = 5.0
"""Most wall seconds one placement-repair MILP gets (also when the round is unbounded)."""
FINISH_S = 0.08
"""Seconds of the round kept after the model for its last steps (the final band at lambda > 0: 0.03 CPU s on a
12-device edge; the models stop a few hundredths past their own ends, pricing HiGHS's last solutions)."""
MILP_FLOOR_S = 0.05
"""Least wall seconds one placement-repair MILP gets, even past the deadline (HiGHS finds a first cover of a
100-device edge in 0.03-0.07 s and a better one in 0.2-0.3 s; one that finds none in its share waits for its first
cover: solvers/greedy.py `repair_edge`). At 0.2 s, ten repairs took the whole 2 s of a 1,000-device round."""


TICK_S = 6e-3
"""Work budget: seconds one reading of the clock (`now`) counts for, the Python work between two readings
(calibrated: experiments/solver_work_calibration.py)."""
ITERATION_S = 1.2e-4
"""Work budget: seconds one HiGHS simplex (or interior-point) iteration counts for."""
NODE_S = 1e-3
"""Work budget: seconds one HiGHS branch-and-bound node counts for (beyond its LP iterations)."""
NODE_ITERATIONS_PER_ROW = 2.0
"""Work budget: simplex iterations a branch-and-bound node is expected to take, per row of the MILP, for its node
limit. HiGHS's MIP does not keep to simplex_iteration_limit, so the limit on nodes is what stops it: a repair MILP of
a 100-device edge (106 rows) took 113-450 iterations a node; at 1 ms a node, a 0.39 s share allowed 395 nodes, it
ran 341 of them (38,647 iterations) into its wall-clock backstop after 8.7 s (experiments/solver_work_nodes.py)."""
MIP_ITERATIONS = 2.0
"""Work budget: a MILP stops once its LP iterations reach this many times its iteration limit (solvers/highs.py
`run_mip_within`; HiGHS's MIP ignores the limit itself). 1 cut the last MILP of a level-model round short of its
first node (607 iterations given 547; finished at 1,019): its certified gap 0.015 -> 0.076
(tests/test_solver_level_energy.py seed 9); the iterations run are charged as they are, so what a MILP runs past
its share comes off the round's later steps."""
BACKSTOP = 10.0
BACKSTOP_S = 20.0
"""Work budget: a HiGHS call still gets a wall-clock limit of BACKSTOP x its seconds + BACKSTOP_S, a safety net
(where a call meets it, time decides its answer and so the plan: `backstop_met` logs it). Every call stops by work
first: an LP at its iteration limit, a MILP at its node limit or, in its root, where its display lines show
MIP_ITERATIONS x the iteration limit reached (solvers/highs.py `run_mip_within`: HiGHS's MIP ignores
simplex_iteration_limit), so the backstop bounds only the one step a MILP runs past it (a root LP, a cut round, a
sub-MIP heuristic). Such a step of a 106-row repair MILP (a RENS sub-MIP, 1,200 iterations) took 6.5 s beside two
CPU hogs at load 9 (with the limit at 1x, 5 s met it: the plan of random_instance(1000, 10, 6, 0, lam=0.5,
memory_fraction=(0.5, 0.7)) 3,263.18 -> 3,245.50);
before that stop, MILP roots ran 10x their iterations and more into the 5 s backstop (the repairs of that round:
3,558.72 quiet, 3,562.88 loaded; experiments/solver_work_backstop.py). Not stopped so: cvxpy's MILPs
(solvers/model.py `run_highs`, the cvxpy repair), no callback there (small rounds; none met it in the probe)."""


ITERATION_COUNTS = ("simplex_iteration_count", "ipm_iteration_count", "crossover_iteration_count",
                    "pdlp_iteration_count", "qp_iteration_count")
"""The HighsInfo counts a call's iterations are the sum of."""


@dataclass
class WorkMeter:
    """Deterministic seconds of one solve: its clock readings, simplex iterations and nodes, at calibrated costs."""

    ticks: int = 0
    iterations: int = 0
    nodes: int = 0

    def seconds(self) -> float:
        return self.ticks * TICK_S + self.iterations * ITERATION_S + self.nodes * NODE_S


_METER: ContextVar[WorkMeter | None] = ContextVar("solvers_work_meter", default=None)


@contextmanager
def under_budget(kind: str, meter: WorkMeter | None = None) -> Iterator[WorkMeter | None]:
    """Run the enclosed solve under `kind` ("time" or "work"); yields the meter in effect (None: wall clock). A
    solve inside a work budget keeps the enclosing meter; `meter` (work only): count on this one instead, whatever
    encloses it (a worker process going on from its parent's count)."""
    check_budget(kind)
    outer = _METER.get()
    if kind == "time" or (outer is not None and meter is None):
        yield outer
        return
    token = _METER.set(WorkMeter() if meter is None else meter)
    try:
        yield _METER.get()
    finally:
        _METER.reset(token)


def current_meter() -> WorkMeter | None:
    """The work meter of the solve running in this context (None: the wall clock)."""
    return _METER.get()


def now() -> float:
    """The solve's clock in seconds: time.perf_counter(), or under a work budget the meter's seconds (each reading
    counts one tick of work, so a loop that checks the clock pays for its checks)."""
    m = _METER.get()
    if m is None:
        return time.perf_counter()
    m.ticks += 1
    return m.seconds()


def highs_limits(seconds: float, rows: int = 0) -> dict[str, Any]:
    """HiGHS options that stop a call after `seconds` of this solve's clock: a time limit, or under a work budget
    a simplex iteration and node limit (a node of a MILP of `rows` rows priced with its expected iterations, see
    NODE_ITERATIONS_PER_ROW) and the wall-clock BACKSTOP."""
    s = max(float(seconds), 0.0)
    if _METER.get() is None:
        return {"time_limit": s}
    node_s = NODE_S + ITERATION_S * NODE_ITERATIONS_PER_ROW * max(int(rows), 0)
    return {"time_limit": BACKSTOP * s + BACKSTOP_S, "simplex_iteration_limit": int(s / ITERATION_S) + 1,
            "mip_max_nodes": int(s / node_s) + 1}


def set_limits(h: Any, seconds: float) -> None:
    """Give the HiGHS object `h`, its model passed, the limits of `highs_limits(seconds, its rows)`. Under a work
    budget the backstop is counted from this call on: HiGHS checks its time limit against its run clock, which adds
    up every run of the object (a warm-started LP solved again and again)."""
    for key, value in highs_limits(seconds, h.getNumRow()).items():
        if key == "time_limit" and _METER.get() is not None:
            value += h.getRunTime()
        h.setOptionValue(key, value)


def limit_statuses(highspy: Any) -> tuple[Any, ...]:
    """HiGHS model statuses of a call stopped by its limits (time, or the work budget's iterations and nodes; a MILP
    stopped at its iterations by solvers/highs.py `run_mip_within` reads kInterrupt)."""
    s = highspy.HighsModelStatus
    return s.kTimeLimit, s.kIterationLimit, s.kSolutionLimit, s.kInterrupt


_BACKSTOP_LOGGED = False
"""Whether this process logged a met backstop as a warning (the later ones go to debug)."""


def backstop_met(h: Any) -> bool:
    """Whether the HiGHS call just run on `h` stopped at its wall-clock backstop under a work budget (a time limit
    there is only the backstop); logs it (a warning the first time in a process): time, not work, decided that
    call's answer."""
    global _BACKSTOP_LOGGED
    if _METER.get() is None or getattr(h.getModelStatus(), "name", "") != "kTimeLimit":
        return False
    report = log.debug if _BACKSTOP_LOGGED else log.warning
    report("solvers: a HiGHS call (%d rows) met its wall-clock backstop under budget='work': its answer, and so the "
           "plan, depend on the machine's speed and load (solvers/clock.py BACKSTOP_S)", h.getNumRow())
    _BACKSTOP_LOGGED = True
    return True


def charge(info: Any) -> None:
    """Count a finished HiGHS call's iterations and nodes (its HighsInfo) on the work meter, if one runs."""
    m = _METER.get()
    if m is None or info is None:
        return
    its = sum(max(int(getattr(info, k, 0) or 0), 0) for k in ITERATION_COUNTS)
    m.iterations += its
    m.nodes += max(int(getattr(info, "mip_node_count", 0) or 0), 0)


def load_libraries(tree: bool = False, cvxpy: bool = False) -> None:
    """Import what a solve loads lazily (highspy's solver; scipy.sparse.csgraph for trees; cvxpy and scipy.sparse
    where the round's cvxpy model may run) before the round's clock starts: a process's first solve paid 0.1-0.25 s
    for scipy.sparse quiet and 0.55 s under load, and 0.7 CPU s for cvxpy, inside its time limit. Not at `import
    solvers`: config errors and the CLI's validation never solve and stay light (experiments/startup_time.py); and
    only what the round needs (the heuristics and the column models use no scipy). After the first call each import
    is a dictionary look-up."""
    if tree:
        import scipy.sparse.csgraph  # noqa: F401
    if cvxpy:
        import cvxpy as _  # noqa: F401
        import scipy.sparse  # noqa: F401
    with contextlib.suppress(ImportError):  # solvers/highs.py's bare solver (it imports this module: not from there)
        import highspy._core  # noqa: F401


@dataclass(frozen=True)
class Clock:
    """A deadline on the solve's clock, `now` (inf: unbounded)."""

    end: float = math.inf

    @classmethod
    def start(cls, time_limit_s: float, at: float | None = None) -> Clock:
        """The round's clock: time_limit_s from `at` (a reading of `now`; default: this instant); 0 = unbounded."""
        if time_limit_s <= 0:
            return cls()
        return cls((now() if at is None else at) + time_limit_s)

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.end)

    def left(self) -> float:
        """Seconds until the deadline (inf when unbounded, 0 once passed)."""
        return max(self.end - now(), 0.0) if self.bounded else math.inf

    def expired(self) -> bool:
        return self.bounded and now() >= self.end

    def share(self, fraction: float) -> Clock:
        """A sub-deadline: this instant plus `fraction` of the time left (unbounded stays unbounded)."""
        if not self.bounded:
            return self
        t = now()
        return Clock(t + fraction * max(self.end - t, 0.0))

    def before(self, seconds: float) -> Clock:
        """This deadline moved `seconds` earlier (unbounded stays unbounded)."""
        return Clock(self.end - seconds) if self.bounded else self

    def within(self, seconds: float | None) -> Clock:
        """This deadline or `seconds` from this instant, whichever comes first (None: this one)."""
        if seconds is None:
            return self
        return Clock(min(self.end, now() + seconds))

    def milp_limit(self, pending: int = 1) -> float:
        """Time limit of the next of `pending` MILPs that must each return an answer: an equal part of the time
        left, within [MILP_FLOOR_S, MILP_CAP_S]."""
        return max(MILP_FLOOR_S, min(MILP_CAP_S, self.left() / max(pending, 1)))
