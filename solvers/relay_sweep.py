"""lambda > 0, large rounds: every single relay move of every edge priced at once by the edge's band price.

solvers/relay_search.py prices each move of an edge exactly (one water-filling per move and edge: 0.05 CPU s an
edge of 100 devices), so at 10,000 devices the round's clock ran out before it reached the edges. Here, at the
round's deadline T, each edge's least upload energy is the water-filling of solvers/energy.py, whose level nu (J/Hz)
is the band's price: with it every uploader j alone chooses b_j = max(h_j, beta_j(nu)) and costs
E_j(b_j) + nu b_j. A move (device i to a direct D2D neighbour t, or back to direct) changes at most two uploads (its
old relay's, which loses i's bits and maybe its latest arrival, and its new one's, which gains them and may start
later) and i's D2D energy, so it is priced from those few terms, vectorized over every device of every edge. At the
old price the priced change is optimistic (weak duality: the new choices' priced sum is at most their least energy,
so a move never saves more than it is priced to), so the improving moves are taken on disjoint devices (the mover,
its old and new relay) and each edge's combination is checked by its exact energy at T: kept if lower, else that
edge takes only its best move, if that is lower. Repeated while moves improve and the clock lasts; the caller
re-optimizes T and the band. On 1,000-device rounds at lambda 0.5 it reached the relays of relay_search.py to the
digit in 0.016 against 0.47-0.56 CPU s, at 10,000 devices 0.11 against 5.9 CPU s (the same energy at T to 4e-5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock
from solvers.energy import deadline_energy, deadline_level, level_band
from solvers.evaluate import Timeline, link_rates, round_timeline, uplink_rate
from solvers.instance import RoundProblem

ROUNDS = 30
"""Most rounds of moves (each prices every move of the round once and checks the chosen ones exactly)."""


def sweep_relays(problem: RoundProblem, x: np.ndarray, relay: np.ndarray, deadline: float, edges: list[int],
                 clock: Clock | None = None, rounds: int = ROUNDS, min_rounds: int = 0) -> tuple[np.ndarray, int]:
    """(relay with the relays of `edges` improved at `deadline`, rounds that changed something); x is kept. Stops
    when `clock` runs out, but only after `min_rounds` rounds (None: after `rounds`). Compression levels are out of
    its scope (relay returned as is)."""
    p = problem
    relay = np.asarray(relay, dtype=int).copy()
    if p.level is not None or not edges or not np.isfinite(deadline):
        return relay, 0
    mine = np.zeros(p.num_edges, dtype=bool)
    mine[edges] = True
    relay, _, changed = move_sweep(p, x, relay, mine, lambda r: _edge_cost(p, x, r, deadline),
                                   lambda r, tl, ok, _: _moves(p, x, r, tl, deadline, ok), clock, rounds, min_rounds)
    return relay, changed


Priced = Callable[[np.ndarray], tuple[np.ndarray, Timeline]]
Moves = Callable[[np.ndarray, Timeline, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray] | None]


def move_sweep(p: RoundProblem, x: np.ndarray, relay: np.ndarray, mine: np.ndarray, cost_of: Priced, moves_of: Moves,
               clock: Clock | None, rounds: int, min_rounds: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Rounds of relay moves of the plan (x, relay) on the edges `mine` [E bool]: cost_of(relay) gives each edge's
    cost (lower is better)
    and the round's timeline, moves_of(relay, timeline, edges) each improving move's (mover, new relay, priced gain);
    the best moves on disjoint devices are taken together, and an edge whose combination is not cheaper takes its
    best move alone, if that is. (relay, each edge's cost, rounds that changed something)."""
    cost, tl = cost_of(relay)
    changed = 0
    for step in range(rounds):
        if step >= min_rounds and clock is not None and clock.expired():
            break
        moves = moves_of(relay, tl, mine & np.isfinite(cost), cost)
        if moves is None:
            break
        mover, target, gain = moves
        combo = disjoint_moves(relay, mover, target, gain)
        new_r = relay.copy()
        new_r[mover[combo]] = target[combo]
        new_cost, new_tl = cost_of(new_r)
        touched = np.zeros(p.num_edges, dtype=bool)
        touched[p.device_edge[mover[combo]]] = True
        worse = touched & ~(new_cost < cost * (1 - 1e-12))
        if worse.any():  # those edges try their best move alone
            best = np.full(p.num_edges, -1)
            order = np.argsort(gain, kind="stable")  # ascending: the last write per edge is its largest gain
            best[p.device_edge[mover[order]]] = order
            back = worse[p.device_edge]
            new_r[back] = relay[back]
            retry = best[worse]
            new_r[mover[retry]] = target[retry]
            new_cost, new_tl = cost_of(new_r)
            still = worse & ~(new_cost < cost * (1 - 1e-12))
            if not (touched & ~still).any():
                break
            back = still[p.device_edge]
            new_r[back] = relay[back]
            new_cost = np.where(still, cost, new_cost)
            if still.any():
                new_tl = round_timeline(p, x, new_r)
        relay, cost, tl = new_r, new_cost, new_tl
        changed += 1
    return relay, cost, changed


def _edge_cost(p: RoundProblem, x: np.ndarray, relay: np.ndarray, t: float) -> tuple[np.ndarray, Timeline]:
    """([E] D2D energy + least upload energy by t of each edge (inf: cannot finish), the round's timeline)."""
    tl = round_timeline(p, x, relay)
    idx = np.flatnonzero(tl.uploader)
    up, _ = deadline_energy(p.device_edge[idx], tl.start[idx], tl.bits[idx], p.snr_hz[idx], p.tx_power_w[idx],
                            p.edge_bandwidth_hz, np.full(p.num_edges, t))
    d2d = np.zeros(p.num_edges)
    rel = np.flatnonzero(tl.relayed)
    if rel.size:
        np.add.at(d2d, p.device_edge[rel], p.d2d_power_w[rel] * tl.payload_bits[rel] / p.link_rate(rel, relay[rel]))
    return up + d2d, tl


def _priced(bits: np.ndarray, start: np.ndarray, dev: np.ndarray, p: RoundProblem, t: float,
            level: np.ndarray) -> np.ndarray:
    """Each upload's E_j(b_j) + nu b_j at its edge's level (0 for no bits, inf when it cannot finish alone)."""
    out = np.zeros(bits.shape)
    on = bits > 0
    if not on.any():
        return out
    b_, s_, d = bits[on], start[on], dev[on]
    a, pw, e = p.snr_hz[d], p.tx_power_w[d], p.device_edge[d]
    slack = t - s_
    with np.errstate(divide="ignore", invalid="ignore"):
        h = min_bandwidth(np.where(slack > 0, b_ / np.where(slack > 0, slack, 1.0), np.inf), a)
    fine = np.isfinite(h) & (h <= p.edge_bandwidth_hz[e])
    b = np.maximum(h, level_band(a, pw, b_, level[e]))
    b = np.where(fine, b, 1.0)
    val = pw * b_ / uplink_rate(b, a) + np.exp(level[e]) * b
    out[on] = np.where(fine, val, np.inf)
    return out


def _moves(p: RoundProblem, x: np.ndarray, relay: np.ndarray, tl: Timeline, t: float,
           edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(mover, new relay, priced saving in J) of every improving single move on `edges`, or None."""
    n = p.num_devices
    idx = np.flatnonzero(tl.uploader)
    ok, level = deadline_level(p.device_edge[idx], tl.start[idx], tl.bits[idx], p.snr_hz[idx], p.tx_power_w[idx],
                               p.edge_bandwidth_hz, np.full(p.num_edges, t))
    m = single_moves(p, x, relay, tl, edges & ok)
    if m is None:
        return None
    mover, target, old = m.mover, m.target, m.old
    payload = tl.payload_bits
    level = np.where(ok, level, 0.0)
    cur = _priced(tl.bits, tl.start, np.arange(n), p, t, level)
    d2d_old = np.where(old != mover, p.d2d_power_w[mover] * payload[mover] / np.where(old != mover, m.old_rate, 1.0),
                       0.0)
    d2d_new = np.where(target != mover, p.d2d_power_w[mover] * payload[mover] / m.new_rate, 0.0)
    lose = _priced(m.lose_bits, m.lose_start, old, p, t, level) - cur[old]
    gain_up = _priced(m.gain_bits, m.gain_start, target, p, t, level) - np.where(target != mover, cur[target], 0.0)
    delta = d2d_new - d2d_old + lose + gain_up
    scale = np.maximum(np.abs(cur[old]) + np.abs(cur[target]), 1e-300)
    good = np.isfinite(delta) & (delta < -1e-9 * scale)
    if not good.any():
        return None
    return mover[good], target[good], -delta[good]


class SingleMoves(NamedTuple):
    """Every single relay move on some edges and the two groups it changes (the old uploader without the mover, the
    new one with it), before any pricing: relay_sweep prices them in energy, union_moves in band."""

    mover: np.ndarray
    target: np.ndarray  # the new relay, or the mover itself for a move to direct upload
    old: np.ndarray  # the mover's uploader now
    old_rate: np.ndarray  # the mover's D2D rate to `old` (inf for a direct mover)
    new_rate: np.ndarray  # its D2D rate to `target` (inf for a move to direct upload)
    lose_bits: np.ndarray  # `old`'s upload once the mover leaves
    lose_start: np.ndarray
    gain_bits: np.ndarray  # `target`'s upload with the mover
    gain_start: np.ndarray


def single_moves(p: RoundProblem, x: np.ndarray, relay: np.ndarray, tl: Timeline,
                 edges: np.ndarray) -> SingleMoves | None:
    """Moves to a direct neighbour (links i -> t in a chosen edge, i serves nobody, t direct and not i's relay
    already, t under the relay capacity) and every relayed device's move to direct upload; None when there are none."""
    n = p.num_devices
    own = relay == np.arange(n)
    served = np.bincount(relay[~own], minlength=n)
    lr = link_rates(p, relay)
    payload = tl.payload_bits
    arrival = np.where(own, tl.tau, tl.tau + payload / np.where(own, 1.0, lr))
    src, dst, rate = p.d2d_src, p.d2d_dst, p.d2d_rate_bps
    cap = p.relay_capacity
    keep = (edges[p.device_edge[src]] & (payload[src] > 0) & (served[src] == 0) & own[dst] & (relay[src] != dst)
            & ((served[dst] < cap) if cap is not None else True))
    mover = np.concatenate([src[keep], np.flatnonzero(~own & edges[p.device_edge] & (payload > 0))])
    target = np.concatenate([dst[keep], mover[keep.sum():]])
    if mover.size == 0:
        return None
    new_rate = np.concatenate([rate[keep], np.full(mover.size - keep.sum(), np.inf)])
    old = relay[mover]
    # the old relay loses the mover (a direct mover: its own upload goes)
    o_bits, o_start = group_without(p, x, relay, tl, arrival, mover, old)
    # the new relay gains it (a mover going direct uploads its own payload from its compute time)
    arr_new = tl.tau[mover] + np.where(target != mover, payload[mover] / new_rate, 0.0)
    g_bits = group_with(p, x, relay, tl, mover, target)
    g_start = np.where(target != mover, np.maximum(tl.start[target], arr_new), tl.tau[mover])
    return SingleMoves(mover, target, old, lr[mover], new_rate, o_bits, o_start, g_bits, g_start)


def group_without(p: RoundProblem, x: np.ndarray, relay: np.ndarray, tl: Timeline, arrival: np.ndarray,
                  mover: np.ndarray, old: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bits and start of each mover's old relay once the mover leaves (0 bits for a direct mover)."""
    n = p.num_devices
    rel = np.flatnonzero(relay != np.arange(n))
    first, second = np.full(n, -np.inf), np.full(n, -np.inf)  # per relay: its members' latest two arrivals
    who = np.full(n, -1)
    if rel.size:
        order = rel[np.lexsort((-arrival[rel], relay[rel]))]
        r = relay[order]
        head = np.concatenate([[True], r[1:] != r[:-1]])
        top = order[head]
        first[relay[top]], who[relay[top]] = arrival[top], top
        nxt = order[np.concatenate([[False], ~head[1:] & head[:-1]])]
        second[relay[nxt]] = arrival[nxt]
    start = np.maximum(tl.tau[old], np.where(who[old] == mover, second[old], first[old]))
    relayed = old != mover
    if p.relay_aggregates:
        bits = _union_bits(p, x, relay, old, exclude=mover)
    else:
        bits = tl.bits[old] - tl.payload_bits[mover]
    return np.where(relayed, np.maximum(bits, 0.0), 0.0), start


def group_with(p: RoundProblem, x: np.ndarray, relay: np.ndarray, tl: Timeline, mover: np.ndarray,
               target: np.ndarray) -> np.ndarray:
    """Bits each move's new uploader sends: the target's upload with the mover's payload (aggregating: the union)."""
    direct = target == mover
    if p.relay_aggregates:
        bits = _union_bits(p, x, relay, target, include=mover)
    else:
        bits = tl.bits[target] + tl.payload_bits[mover]
    return np.where(direct, tl.payload_bits[mover], bits)


def _union_bits(p: RoundProblem, x: np.ndarray, relay: np.ndarray, group: np.ndarray,
                exclude: np.ndarray | None = None, include: np.ndarray | None = None) -> np.ndarray:
    """Union upload bits of relay `group[k]`'s group without device exclude[k] or with device include[k]."""
    counts = np.zeros((p.num_devices, p.num_modules), dtype=np.int64)
    np.add.at(counts, relay, x.astype(np.int64))
    c = counts[group]
    if exclude is not None:
        c = c - x[exclude].astype(np.int64)
    if include is not None:
        c = c + x[include].astype(np.int64)
    return 8.0 * ((c > 0).astype(float) @ p.module_bytes)


def disjoint_moves(relay: np.ndarray, mover: np.ndarray, target: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Indices of moves taken best first, each touching devices (mover, old relay, new relay) no earlier one did."""
    used: set[int] = set()
    take = []
    for k in np.argsort(-gain, kind="stable").tolist():
        touch = {int(mover[k]), int(relay[mover[k]]), int(target[k])}
        if used.isdisjoint(touch):
            used |= touch
            take.append(k)
    return np.array(take, dtype=int)
