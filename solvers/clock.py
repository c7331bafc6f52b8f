"""One deadline for the round: what keeps every heuristic and every MILP of `joint` within `time_limit_s`.

`joint_solve` makes one `Clock` from the round's `time_limit_s` (0: unbounded, and then every step runs to its own
end, so the plan is deterministic). The heuristics get `HEURISTIC_SHARE` of it (`HEURISTIC_ALONE` where the model
cannot work on the round) and stop early when their share is
spent (keeping the best choices so far: a heuristic is a warm start, not an answer); the model
(solvers/improve.py) gets the rest. A MILP that must return an answer to continue (the placement repair of
solvers/milp.py) gets `milp_limit`: the time left, at most `MILP_CAP_S`, at least `MILP_FLOOR_S` (it needs a
moment to find a cover at all, and without one the round has no plan). The clock is a value passed down, never
a global: a forked worker (solvers/parallel.py) reads the same monotonic clock.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from solvers.highs import bare_highs

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
    bare_highs()


@dataclass(frozen=True)
class Clock:
    """A deadline on time.perf_counter() (inf: unbounded)."""

    end: float = math.inf

    @classmethod
    def start(cls, time_limit_s: float, now: float | None = None) -> Clock:
        """The round's clock: time_limit_s from `now` (default: this instant); 0 = unbounded."""
        if time_limit_s <= 0:
            return cls()
        return cls((time.perf_counter() if now is None else now) + time_limit_s)

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.end)

    def left(self) -> float:
        """Seconds until the deadline (inf when unbounded, 0 once passed)."""
        return max(self.end - time.perf_counter(), 0.0) if self.bounded else math.inf

    def expired(self) -> bool:
        return self.bounded and time.perf_counter() >= self.end

    def share(self, fraction: float) -> Clock:
        """A sub-deadline: this instant plus `fraction` of the time left (unbounded stays unbounded)."""
        if not self.bounded:
            return self
        now = time.perf_counter()
        return Clock(now + fraction * max(self.end - now, 0.0))

    def before(self, seconds: float) -> Clock:
        """This deadline moved `seconds` earlier (unbounded stays unbounded)."""
        return Clock(self.end - seconds) if self.bounded else self

    def within(self, seconds: float | None) -> Clock:
        """This deadline or `seconds` from this instant, whichever comes first (None: this one)."""
        if seconds is None:
            return self
        return Clock(min(self.end, time.perf_counter() + seconds))

    def milp_limit(self, pending: int = 1) -> float:
        """Time limit of the next of `pending` MILPs that must each return an answer: an equal part of the time
        left, within [MILP_FLOOR_S, MILP_CAP_S]."""
        return max(MILP_FLOOR_S, min(MILP_CAP_S, self.left() / max(pending, 1)))
