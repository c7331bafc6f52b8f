"""lambda = 0, one edge: the search over trial latencies T with a column model (solvers/latency_model.py for relays
that forward, solvers/union_model.py for relays that aggregate).

T = (1 - TRIAL x gap) x the incumbent's latency: infeasible certifies the incumbent within the gap, feasible gives
a plan at least that much faster, which becomes the incumbent; repeat until proven or out of time. Where the tight
test does not finish, a ladder of coarser T (each proof a valid bound) certifies what the time allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.clock import now
from solvers.instance import RoundProblem
from solvers.latency_model import LatencyModel
from solvers.model import exact_cost, feasible
from solvers.union_model import UnionModel

TRIAL = 0.9
"""The search tests T = (1 - TRIAL x gap) x the incumbent's latency: far enough below it that the MILP's proof is
easy, close enough that a proof certifies the gap."""

TIGHT_SHARE = 0.5
"""Share of the time left that the tight test may take before the search falls back to the ladder."""

LADDER = (0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.035, 0.025, 0.018, 0.013)
"""Where the tight test does not finish: T = (1 - step) x the incumbent, coarse first, each proof a valid bound."""


@dataclass(frozen=True)
class Searched:
    """The latency search's answer: the best plan found, its exact latency, the certified bound, the MILPs run."""

    x: np.ndarray
    relay: np.ndarray
    latency: float
    lower_bound: float
    proven: bool
    milps: int


def search_latency(p: RoundProblem, x0: np.ndarray, relay0: np.ndarray, upper: float, deadline: float,
                   gap: float = 0.01, model: Any = None, lower: float = 0.0) -> Searched:
    """Improve and certify the incumbent (x0, relay0) of latency `upper` on the one-edge problem p (lower: a latency
    already proven out of reach; the ladder starts above it)."""
    if model is None:
        model = UnionModel(p) if p.relay_aggregates else LatencyModel(p)
    lm = model
    best_x, best_r, best = np.asarray(x0, dtype=bool), np.asarray(relay0, dtype=int), float(upper)

    def better(cols: np.ndarray) -> bool:
        x, relay = lm.plan(cols)
        return feasible(p, x, relay) and exact_cost(p, x, relay) < best

    settled = False
    while lower < (1 - gap) * best and now() < deadline:
        t = best * (1 - TRIAL * gap)
        left = deadline - now()
        r = lm.at(t, now() + getattr(lm, "tight_share", TIGHT_SHARE) * left, accept=better)
        if r.feasible is None:
            break
        if not r.feasible:
            lower, settled = max(lower, t), True
            break
        assert r.cols is not None
        x, relay = lm.plan(r.cols)
        if not feasible(p, x, relay):
            break
        got = exact_cost(p, x, relay)
        if not got < best:
            break
        best_x, best_r, best = x, relay, got
    if not settled:  # the tight test did not finish: certify what the time allows, coarse steps first
        for step in LADDER:
            t = best * (1 - step)
            if t <= lower or now() >= deadline:
                continue
            if lm.at(t, deadline).feasible is not False:
                break
            lower = t
    lower = min(lower, best)
    return Searched(best_x, best_r, best, lower, lower >= (1 - gap) * best, lm.milps)
