"""Load levels of a relay in the subset LP (solvers/subset_energy.py `EdgeEnergy.of(levels=...)`, solvers/pair_dual.py).

Without levels a bit relayed to j pays the secant of g(R) = phi_B(top + R) - phi_B(top) over the most j can relay
(solvers/relay_price.py): the price of j carrying every in-neighbour's largest payload, low where few senders relay.
With levels, j's relayed load R lies in one of [0, L_1], [L_1, L_2], ..., [L_(V-1), L_V]: L_l the sum of j's l
largest in-neighbour payloads (the in-neighbours' largest columns), L_V all of them (R never exceeds it). Each of j's
direct columns (of every payload class) gets a copy per level l >= 1 (level 0: the column itself), its cost plus the
intercept of the level's chord of g (`relay_price.level_chord`), and each route via j gets a copy per level, its
bits at that chord's slope, paired with j's columns of the same class and level (the pair rows of
solvers/route_lp.py, one per (link, class, level)).

Valid: a plan whose relay j carries R in level l is the LP point with j's level-l copy of its column and every
route into j at level l; the pair rows hold, the device row holds (one column of j), and its cost is at most the
plan's: own upload + intercept + slope R <= phi_B(O) + g(R) <= phi_B(O + R) (the chord lies below the concave g on
its level, and g shrinks as the own payload O <= top grows). A route at level l needs its bits <= L_(l+1); with the
room of relay_price (time, band) below L_l the level is out for it.
"""

from __future__ import annotations

import numpy as np


def breakpoints(own: np.ndarray, src: np.ndarray, dst: np.ndarray, levels: int) -> np.ndarray:
    """[N, levels + 1] per device its levels' ends 0 = L_0 <= L_1 <= ... <= L_levels = the sum of its in-neighbours'
    largest payloads `own` over the links src -> dst (L_l, l < levels: the l largest of them)."""
    n = own.size
    out = np.zeros((n, levels + 1))
    if src.size == 0:
        return out
    q = own[src]
    order = np.lexsort((-q, dst))
    d_s, q_s = dst[order], q[order]
    cum = np.cumsum(q_s)
    first = np.searchsorted(d_s, d_s, side="left")
    within = cum - np.where(first > 0, cum[first - 1], 0.0)  # the sum of this link's and the larger ones into dst
    rank = np.arange(d_s.size) - first  # 0 for the largest
    rin = np.zeros(n)
    np.add.at(rin, dst, q)
    for lv in range(1, levels):
        pick = rank == lv - 1
        out[:, lv] = rin
        out[d_s[pick], lv] = within[pick]
    out[:, levels] = rin
    return out


def expand(
    dev: np.ndarray, pay: np.ndarray, ccls: np.ndarray, bp: np.ndarray, hubs: np.ndarray, levels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(take, ccls, clvl, ctop): the columns after the copies (positions into the given columns: the originals
    first, then per level 1..levels-1 the relays' columns whose level is not empty), their combined class (payload
    class x levels + level), their level and their class's largest payload at their device."""
    relay_cols = np.flatnonzero(np.isin(dev, hubs))
    take, clvl = [np.arange(dev.size)], [np.zeros(dev.size, dtype=np.int64)]
    for lv in range(1, levels):
        d = dev[relay_cols]
        keep = relay_cols[bp[d, lv + 1] > bp[d, lv] * (1 + 1e-12)]
        take.append(keep)
        clvl.append(np.full(keep.size, lv, dtype=np.int64))
    idx, lvl = np.concatenate(take), np.concatenate(clvl)
    comb = ccls[idx].astype(np.int64) * levels + lvl
    ncls = int(comb.max(initial=0)) + 1
    key = dev[idx].astype(np.int64) * ncls + comb
    uniq, inv = np.unique(key, return_inverse=True)
    top = np.full(uniq.size, -np.inf)
    np.maximum.at(top, inv, pay[idx])
    return idx, comb, lvl, top[inv]
