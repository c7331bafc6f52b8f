"""Compression levels as a decision: which level each device sends at, given the rest of the plan.

A level l shrinks a device's payload by its factor phi_l and adds its distortion d_l (measured on the model's
real updates). Given placement and relays, edge e's least latency for a level vector is its min-max bandwidth
T_e(l) (the exact convex bandwidth step, solvers/bandwidth.py), so the round's program is

    min  max_e T_e(l_e) + lambda sum_e E_e(l_e) + mu sum_i d_{l_i}     s.t.  sum_i d_{l_i} <= D

over each edge's level vector l_e. Each edge's vectors are enumerated (L^n of them; exact up to ``max_combos``),
then the round is solved exactly by a threshold on T: at threshold T every edge takes its cheapest vector with
T_e <= T (cheapest in mu d, which at lambda = 0 is also the least distortion, so the budget test is exact), and
the best feasible threshold wins: exact at lambda = 0 (``LevelChoice.exact``). At lambda > 0 an edge's energy
E_e is taken at its min-max band (the final band is then re-planned for T + lambda E) and a threshold whose
cheapest vectors break the budget falls back to the least distorting ones: a heuristic. Only devices that send
something choose; the others keep level 0.

``fewer_bytes`` then breaks ties: levels whose distortions differ by at most LEVEL_TIE of the largest offered are
equal to the model (it solves distortion to that resolution), and among them the one of fewest bytes wins, as far
as the budget allows. A smaller payload finishes no later and spends no more energy at the same band, so the
round's objective never grows; at lambda = 0, where energy is not priced, this is what keeps `auto` from sending
none or fp16 where int8 costs a measured 7.6e-6 of distortion and a quarter of the bytes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from solvers.bandwidth import minmax_bandwidth
from solvers.evaluate import link_rates, timeline, uplink_rate
from solvers.instance import RoundProblem

LEVEL_TIE = 1e-3
"""Distortions within this share of the largest level distortion offered count as equal (solvers/level_model.py's
DISTORTION_GAP: the resolution to which the model solves each edge's least distortion)."""
MAX_COMBOS = 4096
"""Most level vectors enumerated per edge; a larger edge gets one level for all its senders (not exact)."""


@dataclass(frozen=True)
class LevelChoice:
    level: np.ndarray  # int [N]
    exact: bool  # optimal for the program above given placement and relays
    edges_enumerated: int  # edges whose every level vector was tried


@dataclass(frozen=True)
class _EdgeTable:
    """One edge's level vectors: their senders' levels [K, s], latency T_e, energy E_e and distortion."""

    senders: np.ndarray
    combos: np.ndarray
    latency: np.ndarray
    energy: np.ndarray
    distortion: np.ndarray
    complete: bool


def choose_levels(problem: RoundProblem, x: np.ndarray, relay: np.ndarray, max_combos: int = MAX_COMBOS
                  ) -> LevelChoice:
    """The levels per device for placement ``x`` and one-hop ``relay`` (see the module doc)."""
    p = problem
    if p.level_factor is None or p.level_distortion is None:
        raise ValueError("choose_levels: the problem offers no compression levels")
    tables = [_edge_table(p, x, relay, e, max_combos) for e in range(p.num_edges)]
    cuts = np.unique(np.concatenate([t.latency for t in tables]))
    cheap, least = [], []  # per edge, per cut: its cheapest vector under the cut, and its least distorting one
    for t in tables:
        order = np.argsort(t.latency, kind="stable")
        own = p.lam * t.energy + p.distortion_penalty * t.distortion
        pos = np.searchsorted(t.latency[order], cuts, side="right") - 1
        cheap.append(_prefix_best(order, own, t.distortion)[np.maximum(pos, 0)])
        least.append(_prefix_best(order, t.distortion, own)[np.maximum(pos, 0)])
        cuts = np.where(pos >= 0, cuts, np.nan)  # a cut below an edge's fastest vector fits nothing
    valid = ~np.isnan(cuts)
    picks = [np.array(cheap)]
    if p.distortion_budget is not None and p.lam > 0:
        picks.append(np.array(least))  # at lambda = 0 the cheapest already are the least distorting
    best, best_pick = np.inf, None  # type: tuple[float, list[int] | None]
    for option, pick in enumerate(picks):  # pick: [E, cuts] vector index per edge
        lat = np.max([t.latency[k] for t, k in zip(tables, pick, strict=True)], axis=0)
        dist = np.sum([t.distortion[k] for t, k in zip(tables, pick, strict=True)], axis=0)
        energy = np.sum([t.energy[k] for t, k in zip(tables, pick, strict=True)], axis=0)
        ok = valid.copy()
        if p.distortion_budget is not None:
            ok &= dist <= p.distortion_budget * (1 + 1e-12)
        if option == 1:
            ok &= ~_fits(tables, picks[0], p)  # the fallback only where the cheapest break the budget
        if not ok.any():
            continue
        score = np.where(ok, lat + p.lam * energy + p.distortion_penalty * dist, np.inf)
        c = int(np.argmin(score))
        if score[c] < best:
            best, best_pick = float(score[c]), [int(k[c]) for k in pick]
    if best_pick is None:
        raise ValueError("choose_levels: no level vector meets distortion_budget; raise it")
    level = np.zeros(p.num_devices, dtype=int)
    for t, k in zip(tables, best_pick, strict=True):
        level[t.senders] = t.combos[k]
    complete = all(t.complete for t in tables)
    return LevelChoice(level, complete and p.lam == 0, sum(t.complete for t in tables))


def fewer_bytes(problem: RoundProblem, x: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Each sending device moved to the level of fewest bytes among those no more distorting than its own, up to
    LEVEL_TIE x the largest distortion offered, while the round's summed distortion stays within the budget (the
    largest byte savings first). Placement and relays stay; the caller re-plans the band and keeps the result only
    where the objective did not grow."""
    p = problem
    if p.level_factor is None or p.level_distortion is None:
        raise ValueError("fewer_bytes: the problem offers no compression levels")
    f, d = p.level_factor, p.level_distortion
    tol = LEVEL_TIE * float(d.max())
    level = np.asarray(level, dtype=int).copy()
    payload = np.asarray(x, dtype=float) @ p.module_bytes
    sends = payload > 0
    # per current level, the level of fewest bytes within the tie (itself when none has fewer)
    order = np.lexsort((d, f))  # fewest bytes first, then least distortion
    target = np.array([next(int(m) for m in order if d[m] <= d[lv] + tol and f[m] <= f[lv]) for lv in range(len(f))])
    cap = math.inf if p.distortion_budget is None else float(p.distortion_budget)
    room = cap - p.with_levels(level).distortion(x)
    moves = [i for i in np.flatnonzero(sends) if target[level[i]] != level[i]]
    moves.sort(key=lambda i: -payload[i] * (f[level[i]] - f[target[level[i]]]))
    for i in moves:
        extra = float(d[target[level[i]]] - d[level[i]])
        if extra <= room:
            room -= max(extra, 0.0)
            level[i] = target[level[i]]
    return level


def _prefix_best(order: np.ndarray, key: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """For each prefix of ``order`` (vectors by latency), the index with the least (key, tie)."""
    out = np.empty(len(order), dtype=int)
    best = int(order[0])
    for j, k in enumerate(order.tolist()):
        if (key[k], tie[k]) < (key[best], tie[best]):
            best = k
        out[j] = best
    return out


def _fits(tables: list[_EdgeTable], pick: np.ndarray, p: RoundProblem) -> np.ndarray:
    dist = np.sum([t.distortion[k] for t, k in zip(tables, pick, strict=True)], axis=0)
    return dist <= (np.inf if p.distortion_budget is None else p.distortion_budget * (1 + 1e-12))


def _edge_table(p: RoundProblem, x: np.ndarray, relay: np.ndarray, e: int, max_combos: int) -> _EdgeTable:
    assert p.level_factor is not None and p.level_distortion is not None
    dev = p.edge_devices(e)
    sends = (x[dev].astype(float) @ p.module_bytes) > 0
    senders = dev[sends]
    n_levels, s = len(p.level_factor), int(sends.sum())
    complete = n_levels ** s <= max_combos
    if complete:
        combos = np.array(list(itertools.product(range(n_levels), repeat=s)), dtype=int).reshape(-1, s)
    else:
        combos = np.repeat(np.arange(n_levels)[:, None], s, axis=1)
    k = len(combos)
    local = {int(d): j for j, d in enumerate(dev)}
    rel = np.array([local[int(r)] for r in relay[dev]], dtype=int)
    factor = np.ones((k, len(dev)))
    factor[:, np.flatnonzero(sends)] = p.level_factor[combos]
    lr = link_rates(p, relay)[dev]
    tl = timeline(np.broadcast_to(x[dev], (k, *x[dev].shape)), np.broadcast_to(rel, (k, len(dev))),
                  np.broadcast_to(lr, (k, len(dev))), p.samples[dev], p.cpu_hz[dev], p.module_cycles,
                  p.module_bytes, p.relay_aggregates, factor)
    cand, j = np.nonzero(tl.uploader)
    a = p.snr_hz[dev][j]
    latency, band = minmax_bandwidth(cand, tl.start[cand, j], tl.bits[cand, j], a,
                                     np.full(k, p.edge_bandwidth_hz[e]))
    energy = np.zeros(k)
    if p.lam > 0:
        up_time = tl.bits[cand, j] / uplink_rate(band, a)
        np.add.at(energy, cand, p.tx_power_w[dev][j] * up_time)
        moved = tl.relayed
        with np.errstate(divide="ignore", invalid="ignore"):
            hop = np.where(moved, p.d2d_power_w[dev] * tl.payload_bits / np.where(moved, lr, 1.0), 0.0)
        energy += hop.sum(axis=1)
    distortion = p.level_distortion[combos].sum(axis=1)
    return _EdgeTable(senders, combos, latency, energy, distortion, complete)
