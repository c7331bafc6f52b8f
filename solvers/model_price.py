"""What a MILP answer of the round's model (solvers/model.py) is worth: its discrete choices checked (an answer
stopped early may be junk) and costed exactly, with their exact bandwidth (and power and frequency where they are
decisions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from solvers import model_powerfreq as mp
from solvers.energy import plan_bandwidth
from solvers.evaluate import evaluate
from solvers.instance import RoundProblem

if TYPE_CHECKING:
    from solvers.model import RoundModel, Solution
    from solvers.model_scales import Scales


def exact_cost(p: RoundProblem, x: np.ndarray, relay: np.ndarray, level: np.ndarray | None = None) -> float:
    """T + lambda E (+ the distortion penalty) of fixed discrete choices with their exact bandwidth (and power and
    frequency where they are decisions: solvers/powerfreq.py)."""
    if p.has_power_frequency:
        return mp.cost(p, x, relay)[0]
    q = p if level is None else p.with_levels(level)
    return evaluate(q, x, relay, plan_bandwidth(q, x, relay)).objective


def feasible(p: RoundProblem, x: np.ndarray, relay: np.ndarray, level: np.ndarray | None = None) -> bool:
    """Coverage, memory, eligibility, one-hop relays over existing links, the distortion budget (a MILP stopped
    early may return junk)."""
    n = p.num_devices
    if level is not None and p.distortion_budget is not None and \
            p.with_levels(level).distortion(x) > p.distortion_budget * (1 + 1e-9):
        return False
    if np.any(x & ~p.eligible) or np.any(x.astype(float) @ p.module_memory_bytes > p.memory_bytes * (1 + 1e-9)):
        return False
    got = np.zeros((p.num_edges, p.num_modules))
    np.add.at(got, p.device_edge, x * p.samples[:, None])
    if np.any(got < p.coverage_demand() * (1 - 1e-9)):
        return False
    moved = np.flatnonzero(relay != np.arange(n))
    if moved.size and (np.any(relay[relay[moved]] != relay[moved]) or np.any(p.link_rate(moved, relay[moved]) <= 0)):
        return False
    if moved.size and p.relay_capacity is not None and np.bincount(relay[moved]).max() > p.relay_capacity:
        return False
    return True


def price(p: RoundProblem, m: RoundModel, sol: Solution, sc: Scales, own: bool,
           memo: dict) -> tuple[float, tuple | None]:
    """T + lambda E of a MILP answer, and (objective, band, power, frequency) where power / frequency are decisions.
    own: with the MILP's own continuous values (constraints added by `extra` hold for them, not for another band)."""
    x, relay, share, level = sol
    if m.pf is not None:  # the MILP's (b, p, f), or powerfreq.py's for its choices where better
        mine = mp.plan_of(p, x, relay, share, m.var["eps"].value, m.var["zeta"].value, sc)
        priced = (evaluate(p, x, relay, *mine).objective, *mine) if own else mp.cost(p, x, relay, mine, memo)
        return float(priced[0]), priced
    if own:
        q = p if level is None else p.with_levels(level)
        return evaluate(q, x, relay, share * p.edge_bandwidth_hz[p.device_edge]).objective, None
    return exact_cost(p, x, relay, level), None
