"""One-device moves of a plan where power and frequency are decisions (lambda > 0), priced all at once.

The heuristics choose placement and relays at p_max and f_max and the bound's LP (solvers/powerfreq_round.py) rounds
whole edges; neither tries one device's move once power and frequency are free. On the bench's 8-device lambda 0.5
edge one relay move (device 0 to 7 instead of 4) takes the 2 s plan 0.94 % lower, to a plan the bound certifies
within 0.25 % (experiments/results/solver_model/s25pf/). Priced one by one by the power / frequency step (0.15 CPU
s on 8 devices) the 50-130 neighbours do not fit a 2 s round; solvers/powerfreq_batch.py prices them all in one
batched step with fewer steps (a screen; each value a feasible point's cost), and the best is re-costed at the
screen's deadline with the step's blocks (solvers/powerfreq.py) and kept if better: best improvement, until no move
is better or the clock runs out. Every plan returned is costed by solvers/evaluate.py and kept only where cheaper,
so it is never worse than the input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from solvers.clock import Clock, now
from solvers.evaluate import evaluate
from solvers.instance import RoundProblem
from solvers.plan import RoundPlan
from solvers.powerfreq import Groups, decisions, energy_at
from solvers.powerfreq_batch import batch_objectives

SCREEN_ITERS = 8
"""Golden-section steps over T of the batched screen (solvers/powerfreq_batch.py)."""
SCREEN_ROUNDS = 3
"""Its block rounds at each T (solvers/powerfreq.py `energy_at`)."""
SCREEN_INNER = 20
"""Its blocks' steps (the step's 48 and 40): with 8 steps over T and 3 rounds, the same best move as 24 / 3 / 40 on
8-12-device bench edges, within 0.04-0.1 % of its value where lambda <= 0.5, at 0.3-0.6x the time."""
MAX_PASSES = 6
"""Most passes (one accepted move each)."""


def relay_options(p: RoundProblem, relay: np.ndarray) -> list[np.ndarray]:
    """Every relay vector one device's move away from `relay` that keeps relays one hop: a device no one relays to
    moves to uploading directly or to a D2D neighbour (a link of positive rate) that uploads directly and has
    room (relay_capacity)."""
    n = p.num_devices
    moved = relay != np.arange(n)
    count = np.bincount(relay[moved], minlength=n)
    ok = p.d2d_rate_bps > 0
    out: list[np.ndarray] = []
    for i in range(n):
        if count[i] > 0:  # it relays for others: moving it would make a two-hop chain
            continue
        targets = [i] + [
            int(j)
            for j in p.d2d_dst[ok & (p.d2d_src == i)]
            if relay[j] == j and (p.relay_capacity is None or count[j] < p.relay_capacity)
        ]
        for j in dict.fromkeys(targets):
            if j != relay[i]:
                r = relay.copy()
                r[i] = j
                out.append(r)
    return out


def module_options(p: RoundProblem, x: np.ndarray) -> list[np.ndarray]:
    """Every placement one module away from `x` that keeps eligibility, memory and coverage: one device's module
    added or dropped, or moved to another device of its edge (where dropping it alone breaks coverage)."""
    need = p.coverage_demand()
    got = np.zeros_like(need)
    np.add.at(got, p.device_edge, x * p.samples[:, None])
    room = p.memory_bytes * (1 + 1e-9) - x.astype(float) @ p.module_memory_bytes
    fits = p.eligible & ~x & (p.module_memory_bytes[None, :] <= room[:, None])
    out: list[np.ndarray] = []
    for i, m in np.argwhere(p.eligible).tolist():
        e = p.device_edge[i]
        if not x[i, m]:
            if fits[i, m]:
                y = x.copy()
                y[i, m] = True
                out.append(y)
            continue
        y = x.copy()
        y[i, m] = False
        short = need[e, m] * (1 - 1e-9) - (got[e, m] - p.samples[i])
        if short <= 0:
            out.append(y)
            continue
        for j in np.flatnonzero(fits[:, m] & (p.device_edge == e) & (p.samples >= short)).tolist():
            z = y.copy()
            z[j, m] = True
            out.append(z)
    return out


def plan_moves(
    p: RoundProblem,
    plan: RoundPlan,
    clock: Clock,
    price: Callable[[RoundPlan], RoundPlan] | None = None,
    price_s: float = 0.0,
    pass_s: float = 0.0,
) -> RoundPlan:
    """`plan` after best-improvement moves (module doc): each pass screens every relay and module move at once and
    takes the best where its band, power and frequency (at the screen's deadline, solvers/powerfreq.py's blocks)
    cost less than the plan. A pass starts only where `clock` leaves `pass_s` (the first) or the last pass's time.
    At the end, where a move was taken and the clock leaves twice `price_s`, `price` (the caller's full power /
    frequency step on a plan's choices) prices the last choice, kept if better."""
    best = plan
    for _ in range(MAX_PASSES):
        if clock.left() < pass_s:
            break
        tic = now()
        x, relay = best.placement, best.relay
        moves = [(x, r) for r in relay_options(p, relay)] + [(y, relay) for y in module_options(p, x)]
        if not moves:
            break
        vals, ts = batch_objectives(
            p,
            np.stack([m[0] for m in moves]),
            np.stack([m[1] for m in moves]),
            SCREEN_ITERS,
            SCREEN_ROUNDS,
            SCREEN_INNER,
        )
        j = int(np.argmin(vals))
        if not vals[j] < best.objective:
            break
        got = _at(p, best, *moves[j], float(ts[j]))
        if not got.objective < best.objective:
            break
        best = got
        pass_s = now() - tic
    if best is not plan and price is not None and clock.left() >= 2 * price_s:
        got = price(best)
        best = got if got.objective < best.objective else best
    return best


def _at(p: RoundProblem, plan: RoundPlan, x: np.ndarray, relay: np.ndarray, t_round: float) -> RoundPlan:
    """`plan` with choices (x, relay) and the band, power and frequency of solvers/powerfreq.py's blocks at deadline
    t_round, costed by solvers/evaluate.py."""
    g = Groups.of(p, x, relay)
    _, b, s = energy_at(g, t_round, p.edge_bandwidth_hz)
    band, power, freq = decisions(p, g, t_round, b, s)
    c = evaluate(p, x, relay, band, power, freq)
    return plan.costed(c, placement=x, relay=relay, bandwidth_hz=band, tx_power_w=power, cpu_hz=freq)
