"""Pricing of every uploader's relay groups in one batched pass, with relays that aggregate (`price_union_all`): the
same cells, costs and upload terms as `GroupPricing._price_union` called per uploader (solvers/group_price.py), as a
few array operations over all uploaders instead of ~100 small ones per uploader.

Per uploader j the cells are (start threshold s, union Q of modules): each side's (j's own, each member's) least
cost among its parts ready by s within Q (a member's at most 0: it may stay out), plus the upload of Q's bits in
T - s. What does not depend on the multipliers (each side's parts sorted by ready time, the D2D energy, which parts
lie within which Q) is laid out once per edge (`UnionLayout`); a pass keeps the parts that can count (j's own ready
by T; a member's ready by T at a negative cost), as the per-uploader pricing does, so the least is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from solvers import group_price as gp
from solvers.upload_table import concave_energy

if TYPE_CHECKING:
    from solvers.group_price import GroupPricing


@dataclass
class UnionLayout:
    """Every side of every uploader (its own parts, the empty one first, then one side per member, in the
    per-uploader pricing's order) as one flat list of parts sorted by (uploader, side, ready time)."""

    part: np.ndarray  # [E] part index (-1: the uploader's empty part)
    ready: np.ndarray  # [E] ready time (s)
    rank: np.ndarray  # [E] rank of the ready time among the edge's distinct ones
    d2d: np.ndarray  # [E] D2D energy (J) of a member's part, 0 for the uploader's own
    row: np.ndarray  # [E] device row of the side (for mu)
    orig: np.ndarray  # [E] position in the per-uploader pricing's order of its side (its argmin's ties)
    side: np.ndarray  # [E] side
    own: np.ndarray  # [E] the uploader's own side
    sup: np.ndarray  # [E, 2^M] the part lies within Q (the empty part: every Q)
    side_up: np.ndarray  # [S] each side's uploader (index into devices)
    side_dev: np.ndarray  # [S] each side's device
    first: np.ndarray  # [J] each uploader's first side
    count: np.ndarray  # [J] its sides


def union_layout(g: GroupPricing) -> UnionLayout:
    pa, p = g.parts, g.p
    cols: list[list[np.ndarray]] = [[] for _ in range(7)]
    side_up: list[int] = []
    side_dev: list[int] = []
    first: list[int] = []
    count: list[int] = []
    for a, j in enumerate(g.devices.tolist()):
        own = g.by_dev[j]
        sides = [(j, np.concatenate([[-1], own]), np.concatenate([[0.0], pa.tau[own]]), np.zeros(own.size + 1))]
        for i, r in g.into[j]:
            k = g.by_dev[i]
            sides.append((i, k, pa.tau[k] + pa.bits[k] / r, p.d2d_power_w[i] * pa.bits[k] / r))
        first.append(len(side_up))
        count.append(len(sides))
        for d, (i, k, r_, e) in enumerate(sides):
            order = np.argsort(r_, kind="stable")
            for col, x in zip(
                cols,
                (
                    k[order],
                    r_[order],
                    e[order],
                    np.full(k.size, g.row_of[i]),
                    order,
                    np.full(k.size, len(side_up)),
                    np.full(k.size, d == 0),
                ),
                strict=True,
            ):
                col.append(x)
            side_up.append(a)
            side_dev.append(i)
    part, ready, d2d, row, orig, side, own_ = (np.concatenate(c) for c in cols)
    rank = np.unique(ready, return_inverse=True)[1].astype(np.int64)
    sup = np.where((part >= 0)[:, None], g.sup[np.maximum(part, 0)], True)
    return UnionLayout(
        part.astype(np.int64),
        ready,
        rank,
        d2d,
        row.astype(np.int64),
        orig.astype(np.int64),
        side.astype(np.int64),
        own_.astype(bool),
        sup,
        np.array(side_up),
        np.array(side_dev),
        np.array(first),
        np.array(count),
    )


def _heads(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where each run of equal keys starts, each entry's position within its run) of a sorted key."""
    head = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    return head, np.arange(key.size) - np.repeat(head, np.diff(np.append(head, key.size)))


def price_union_all(
    g: GroupPricing,
    lay: UnionLayout,
    t: float,
    red: np.ndarray,
    mu: np.ndarray,
    nu: float,
    many: int = 1,
    groups: bool = True,
) -> list[tuple[float, list[list[tuple[int, int]]]]]:
    """`GroupPricing.price(j, t, red, mu, nu, many=many)` for every uploader j of the edge (relays that aggregate;
    lay: `union_layout(g)`), in `g.devices` order; groups=False: no groups (the Lagrangian's pass)."""
    nj = g.devices.size
    out: list[tuple[float, list]] = [(0.0, []) for _ in range(nj)]
    c = np.where(lay.part >= 0, red[np.maximum(lay.part, 0)], 0.0) + lay.d2d / g.scale + mu[lay.row]
    kept = np.flatnonzero((lay.ready < t) & (lay.own | (c < 0)))  # what the per-uploader sides keep
    seg, ck, rk = lay.side[kept], c[kept], lay.rank[kept]
    # a member's part outside Q counts 0 (the member may stay out), the uploader's own inf (its empty part counts)
    v = np.where(lay.sup[kept], ck[:, None], np.where(lay.own[kept], np.inf, 0.0)[:, None])  # [E, 2^M]
    longest = int(np.max(_heads(seg)[1])) + 1
    step = 1
    while step < longest:  # each side's running least over its parts in ready order (a segmented scan)
        same = seg[step:] == seg[:-step]
        v[step:] = np.where(same[:, None], np.minimum(v[step:], v[:-step]), v[step:])
        step *= 2
    # start thresholds: per uploader its kept parts' distinct ready times; each against each of its sides
    nr = int(lay.rank.max()) + 1
    tkey = np.unique(lay.side_up[seg] * nr + rk)
    tj, trank = tkey // nr, tkey % nr
    tready = np.full(nr, np.inf)
    tready[rk] = lay.ready[kept]
    tready = tready[trank]
    reps = lay.count[tj]
    pt = np.repeat(np.arange(tj.size), reps)  # pairs (threshold, side of its uploader)
    pstart = np.cumsum(reps) - reps
    pside = lay.first[tj][pt] + np.arange(pt.size) - pstart[pt]
    at = np.searchsorted(seg * nr + rk, pside * nr + trank[pt], side="right") - 1  # the side's last part by s
    has = np.flatnonzero((at >= 0) & (seg[np.maximum(at, 0)] == pside))  # a member none of whose parts is ready
    # by s adds 0 (left out); the uploader's own side has its empty part at any s
    total = np.add.reduceat(np.take(v, at[has], axis=0), np.searchsorted(pt[has], np.arange(tj.size)), axis=0)
    cells, val = _lazy_all(g, tj, total, t - tready, nu * g.scale / g.band, many)
    ts, qs = cells // total.shape[1], cells % total.shape[1]
    js = tj[ts]
    neg = np.flatnonzero(val < 0)
    if neg.size == 0:
        return out
    neg = neg[np.lexsort((val[neg], js[neg]))]  # by uploader, the least first
    head, nth = _heads(js[neg])
    for at_ in neg[head].tolist():
        out[int(js[at_])] = (float(val[at_]), [])
    if not groups:
        return out
    # the chosen cells' groups: per side the least kept part ready by s within Q (ties: the per-uploader order)
    best = neg[nth < many]
    cj, cr, cq = js[best], trank[ts[best]], qs[best]
    up = lay.side_up[seg]
    pc, pe = np.nonzero(up[None, :] == cj[:, None])  # (cell, kept part of its uploader)
    ok = (rk[pe] <= cr[pc]) & lay.sup[kept[pe], cq[pc]]
    pc, pe = pc[ok], pe[ok]
    order = np.lexsort((lay.orig[kept[pe]], ck[pe], seg[pe], pc))
    pc, pe = pc[order], pe[order]
    lead = _heads(pc * (int(seg.max()) + 1) + seg[pe])[0]
    for n, e in zip(pc[lead].tolist(), pe[lead].tolist(), strict=True):
        if lay.own[kept[e]] or ck[e] < 0:
            groups_n = out[int(cj[n])][1]
            if not groups_n or groups_n[-1][0] != n:
                groups_n.append((n, []))
            groups_n[-1][1].append((int(lay.side_dev[seg[e]]), int(lay.part[kept[e]])))
    for a in range(nj):
        uniq: list[list[tuple[int, int]]] = []
        for _, group in out[a][1]:
            if group not in uniq:
                uniq.append(group)
        out[a] = (out[a][0], uniq)
    return out


def _lazy_all(
    g: GroupPricing, tj: np.ndarray, total: np.ndarray, w: np.ndarray, nu_j: float, many: int
) -> tuple[np.ndarray, np.ndarray]:
    """`GroupPricing._lazy` for every uploader's cells (threshold rows of `total` [T, 2^M], by uploader tj, with
    w = T - s): (the flat cells priced, base + upload_lb / scale there), those that may be among their uploader's
    `many` least negative values. The cheap term (as `upload_cheap`: the whole band's energy per bit and the chords
    of the unconstrained least upload, here through a grid up to the edge's largest union, per uploader and Q) orders
    the cells; the upload term is taken on each uploader's LAZY least first, then where the cheap value is below the
    `many`-th least found (a cell skipped costs at least its cheap value, so each uploader's least stays the same)."""
    p, dv = g.p, g.devices
    a, pw, rb = p.snr_hz[dv], p.tx_power_w[dv], g.rb[dv]
    grid = np.linspace(0.0, float(g.qbits.max()), gp.CHORDS)
    phi, _ = concave_energy(
        pw[:, None] * grid[None, :] / a[:, None], np.full((dv.size, gp.CHORDS), 1.0) * (nu_j * a)[:, None]
    )  # [J, gp.CHORDS]
    i = np.clip(np.searchsorted(grid, g.qbits, side="right") - 1, 0, gp.CHORDS - 2)
    frac = np.clip((g.qbits - grid[i]) / np.maximum(grid[i + 1] - grid[i], 1e-300), 0.0, 1.0)
    chord = phi[:, i] + frac[None, :] * (phi[:, i + 1] - phi[:, i])
    cheap = total + (np.maximum(chord, pw[:, None] * g.qbits[None, :] / rb[:, None]) / g.scale)[tj]
    cand = (total < 0) & (g.qbits[None, :] < rb[tj][:, None] * w[:, None]) & (cheap < 0)
    nq = total.shape[1]
    flat_cheap, flat_total = cheap.ravel(), total.ravel()
    rows = np.searchsorted(tj, np.arange(dv.size + 1))
    firsts = []
    for a_ in range(dv.size):  # each uploader's gp.LAZY cheapest cells
        idx = np.flatnonzero(cand[rows[a_] : rows[a_ + 1]]) + rows[a_] * nq
        if gp.LAZY and idx.size > gp.LAZY:
            idx = idx[np.argpartition(flat_cheap[idx], gp.LAZY - 1)[: gp.LAZY]]
        firsts.append(idx)
    first = np.concatenate(firsts)

    def exact(at: np.ndarray) -> np.ndarray:
        r, q = at // nq, at % nq
        j = tj[r]
        return flat_total[at] + gp.upload_lb(a[j], pw[j], rb[j], g.band, g.qbits[q], w[r], nu_j) / g.scale

    val = exact(first)
    cut = np.zeros(dv.size)  # per uploader min(0, its many-th least found), 0 where fewer were found
    start = 0
    for a_, idx in enumerate(firsts):
        got = val[start : start + idx.size]
        start += idx.size
        if got.size >= many:
            cut[a_] = min(float(np.partition(got, many - 1)[many - 1]), 0.0)
    if not gp.LAZY:
        return first, val
    done = np.zeros(cand.size, dtype=bool)
    done[first] = True
    rest = np.flatnonzero(cand.ravel() & (flat_cheap < np.repeat(cut[tj], nq)) & ~done)
    return np.concatenate([first, rest]), np.concatenate([val, exact(rest)])
