"""Enumeration of a one-edge round at lambda > 0 with cheap pruning: many more choices than pricing each allows.

Pricing a choice exactly (its least latency T_min by min-max band, its energies by water-filling) cost about
10 CPU us; a 5- or 6-device edge has 150,000-400,000 choices (placements x relay maps), 2-7 CPU s. Its timeline
alone costs a tenth of that, and gives each choice c a lower bound on its objective at any deadline T:

    T + lambda E_c(T) >= tlb(c) + lambda L(c),

tlb = the slowest upload alone on the whole band B (<= T_min(c) <= T), L = the fixed (compute, D2D) energy plus a
lower bound on the least upload energy sum_j p_j U_j / R_j(b_j) over sum_j b_j <= B (each term convex decreasing in
b_j: the larger of each at b_j = B, and the tangents at b = B / k minimized over the simplex). A choice whose
bound exceeds an achieved objective (x (1 + 1e-7): the water-filling's numbers) is not optimal, so what is left
holds every optimal choice, and `select_exact`'s bound over it is certified. Choices are priced in order of their
bound, in growing chunks; each chunk's selection lowers the achieved objective and prunes the rest.

Only a round with one edge: with several, a choice's bound would need the other edges' least energies and an
achieved objective of the whole round.
"""

from __future__ import annotations

import numpy as np

from solvers.candidates import EdgeCandidates, select_exact
from solvers.edgebatch import EdgeView
from solvers.evaluate import LN2, timeline, uplink_rate
from solvers.exact import placements_upto, relay_maps

CHUNK = 50_000
"""Choices per timeline call (memory: a [chunk, n, M] float array)."""
FIRST = 2_000
"""Choices priced first (the least bounds); each later chunk doubles."""
GIVE_UP = 2
"""After a chunk, more than GIVE_UP x max_priced choices under the objective found: the edge is left to the
heuristics and the model (a 6-device edge at lambda 50: 215,000 there after the first chunk, 62,000 at the
optimum; otherwise 0.6 CPU s more before the same None)."""
SLACK = 1e-7
"""Relative margin on the achieved objective (the water-filling's numbers are not exact)."""


def objective_floor(view: EdgeView, x: np.ndarray, relay: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """([K] tlb, [K] tlb + lam L) of choices x [K, n, M], relay [K, n] local (see the module doc)."""
    p, d, n = view.problem, view.dev, view.n
    band = float(p.edge_bandwidth_hz[view.edge])
    a, power = p.snr_hz[d][None, :], p.tx_power_w[d][None, :]
    r_full = uplink_rate(np.full(n, band), p.snr_hz[d])[None, :]
    tlb, floor = np.empty(x.shape[0]), np.empty(x.shape[0])
    for s in range(0, x.shape[0], CHUNK):
        xs, rs = x[s:s + CHUNK], relay[s:s + CHUNK]
        lr = view.rate[np.arange(n)[None, :], rs]
        lr = np.where(rs == np.arange(n), np.inf, lr)
        tl = timeline(xs, rs, lr, p.samples[d], p.cpu_hz[d], p.module_cycles, p.module_bytes, p.relay_aggregates)
        cycles = p.samples[d] * (xs.astype(float) @ p.module_cycles)
        fixed = (p.kappa * cycles * p.cpu_hz[d] ** 2).sum(axis=1)
        with np.errstate(invalid="ignore"):
            d2d = np.where(tl.relayed, p.d2d_power_w[d] * tl.payload_bits / np.where(tl.relayed, lr, 1.0), 0.0)
        fixed = fixed + d2d.sum(axis=1)
        up = tl.uploader
        bits = np.where(up, tl.bits, 0.0)
        tlb[s:s + CHUNK] = np.max(np.where(up, tl.start + bits / r_full, 0.0), axis=1)
        alone = (power * bits / r_full).sum(axis=1)  # each upload on the whole band
        beta = (band / np.maximum(up.sum(axis=1), 1))[:, None]
        lg = np.log1p(a / beta)
        rate = beta * lg / LN2
        slope = (lg - a / (a + beta)) / LN2  # R'(beta)
        f = power * bits / rate
        fp = -f * slope / rate  # d/db of p U / R(b) at beta (<= 0)
        tangent = (f - fp * beta).sum(axis=1) + band * np.min(np.where(up, fp, 0.0), axis=1)
        floor[s:s + CHUNK] = tlb[s:s + CHUNK] + lam * (fixed + np.maximum(alone, tangent))
    return tlb, floor


def pruned_candidates(view: EdgeView, lam: float, max_choices: int, max_priced: int) -> EdgeCandidates | None:
    """Every choice of the round's only edge that can be optimal at lam > 0 (see the module doc), priced; None when
    the edge has more than max_choices choices or more than max_priced survive the pruning."""
    maps = np.array(relay_maps(view.rate, view.problem.relay_capacity), dtype=int)
    pl = placements_upto(view, max_choices // max(len(maps), 1))
    if pl is None or len(pl) * len(maps) > max_choices:
        return None
    a, b = np.divmod(np.arange(len(pl) * len(maps)), len(maps))
    x, relay = pl[a], maps[b]
    _, floor = objective_floor(view, x, relay, lam)
    order = np.argsort(floor, kind="stable")
    ranked = floor[order]
    priced: list[EdgeCandidates] = []
    upper, done, size = np.inf, 0, FIRST
    while done < order.size and ranked[done] <= upper * (1 + SLACK):
        left = int(np.searchsorted(ranked, upper * (1 + SLACK), side="right"))
        if left > GIVE_UP * max_priced and done > 0:  # the objective found would have to fall a long way
            return None
        last = min(done + size, left)
        if last > max_priced:
            return None
        idx = order[done:last]
        priced.append(EdgeCandidates.of(view, x[idx], relay[idx]).pareto())
        front = _join(priced)
        if front.size:
            upper = min(upper, select_exact([front], lam).value)
        priced = [front]
        done, size = last, 2 * size
    out = _join(priced)
    return out if out.size else None


def _join(parts: list[EdgeCandidates]) -> EdgeCandidates:
    """One candidate set of several (their undominated choices)."""
    if len(parts) == 1:
        return parts[0]
    view = parts[0].view
    c = EdgeCandidates.of(view, np.concatenate([q.x for q in parts]), np.concatenate([q.relay for q in parts]))
    return c.pareto()
