"""lambda = 0: every single relay move of every edge priced at once by the band it saves at the edge's latency.

At an edge's latency T its uploaders' least bands h_j(T) = R_j^-1(U_j / (T - S_j)) sum to B_e, so a change that
lowers that sum at T lets the edge finish before T. A relay move (device i to a direct D2D neighbour, or back to
direct) changes at most two uploads, its old relay's (which loses i's bits, with `relay_aggregates` maybe nothing
of its union, and maybe its latest arrival) and its new one's, so it is priced exactly from those few terms,
vectorized over every device of every edge (solvers/relay_sweep.py does the same with energy at lambda > 0, and
its helpers give the old and new groups' bits and starts). Moves on disjoint devices (the mover, its old and new
relay) change disjoint uploads, so their savings add up; each edge's combination is checked by its exact min-max
latency: kept if lower, else that edge takes only its best move, if that is lower.
"""

from __future__ import annotations

import numpy as np

from solvers.clock import Clock
from solvers.energy import edge_latency
from solvers.evaluate import Timeline, round_timeline
from solvers.greedy import price
from solvers.instance import RoundProblem
from solvers.relay_sweep import move_sweep, single_moves

Moved = tuple[np.ndarray, np.ndarray, np.ndarray]

ROUNDS = 20
"""Most rounds of moves (each prices every move of the round once and checks the chosen ones exactly)."""


def band_moves(
    p: RoundProblem,
    x: np.ndarray,
    relay: np.ndarray,
    t_edge: np.ndarray,
    edges: np.ndarray,
    clock: Clock | None = None,
    rounds: int = ROUNDS,
) -> tuple[np.ndarray, np.ndarray]:
    """(relay, t_edge) with the relays of `edges` [E bool] improved (t_edge: the plan's exact latency of each edge);
    x is kept. Stops when `clock` runs out."""
    relay = np.asarray(relay, dtype=int).copy()
    t = np.asarray(t_edge, dtype=float).copy()
    mine = edges & np.isfinite(t)
    if p.level is not None or p.d2d_src.size == 0 or not mine.any():
        return relay, t

    def cost_of(r: np.ndarray) -> tuple[np.ndarray, Timeline]:
        return edge_latency(p, [(x, r)])[0], round_timeline(p, x, r)

    def moves_of(r: np.ndarray, tl: Timeline, ok: np.ndarray, at: np.ndarray) -> Moved | None:
        return _moves(p, x, r, tl, at, ok)

    relay, t, _ = move_sweep(p, x, relay, mine, cost_of, moves_of, clock, rounds, 0)
    return relay, t


def _band(p: RoundProblem, bits: np.ndarray, start: np.ndarray, dev: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Each upload's least band to finish by its edge's latency (0 for no bits, inf when it cannot)."""
    return price(t[p.device_edge[dev]], start, bits, p.snr_hz[dev])


def _moves(
    p: RoundProblem, x: np.ndarray, relay: np.ndarray, tl: Timeline, t: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(mover, new relay, band saved in Hz) of every improving single move on `edges`, or None."""
    m = single_moves(p, x, relay, tl, edges)
    if m is None:
        return None
    mover, target, old = m.mover, m.target, m.old
    cur = _band(p, tl.bits, tl.start, np.arange(p.num_devices), t)
    lose = _band(p, m.lose_bits, m.lose_start, old, t) - cur[old]
    join = _band(p, m.gain_bits, m.gain_start, target, t) - np.where(target != mover, cur[target], 0.0)
    with np.errstate(invalid="ignore"):
        delta = lose + join
    scale = np.maximum(cur[old] + np.where(target != mover, cur[target], 0.0), 1e-300)
    good = np.isfinite(delta) & (delta < -1e-9 * scale)
    if not good.any():
        return None
    return mover[good], target[good], -delta[good]
