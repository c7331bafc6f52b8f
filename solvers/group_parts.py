"""One edge's (device, subset) parts, the atoms of solvers/group_columns.py's relay groups, and the 3-D Pareto filter
(ready time, bits, reduced cost) that pricing keeps the members' combinations on."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from solvers.instance import RoundProblem
from solvers.subsets import trainable_subsets

MAX_SUBSETS = 4096
"""Most subsets of one edge's devices in all (2^M per device); an edge with more gets no group bound."""


@dataclass
class Parts:
    """One edge's (device, subset) parts."""

    dev: np.ndarray  # [K] device
    mask: np.ndarray  # [K] module bit mask
    mbits: np.ndarray  # [K, M] 0/1
    bits: np.ndarray  # [K] payload bits
    energy: np.ndarray  # [K] compute energy (J)
    tau: np.ndarray  # [K] compute time (s)


def edge_parts(p: RoundProblem, e: int) -> Parts | None:
    """Every (device, non-empty eligible subset within memory) of edge e; None where there are too many."""
    m = p.num_modules
    members = p.edge_devices(e)
    elig_bits = p.eligible[members] & (p.samples[members, None] > 0)
    if m > 12 or float(np.sum(2.0 ** elig_bits.sum(axis=1))) > MAX_SUBSETS:
        return None
    li, mask, bits = trainable_subsets(p, members)
    dev = members[li]
    mb = bits.astype(float)
    cycles = p.samples[dev] * (mb @ p.module_cycles)
    return Parts(dev=dev, mask=mask, mbits=mb, bits=8.0 * (mb @ p.module_bytes),
                 energy=p.kappa * cycles * p.cpu_hz[dev] ** 2, tau=cycles / p.cpu_hz[dev])



def pareto3(ready: np.ndarray, bits: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """[n] bool: the points no other point matches or beats on ready time, bits and cost together (of equal
    points the first is kept)."""
    n = ready.size
    order = np.lexsort((bits, ready, cost))  # by cost: a point can only be dominated by one before it
    r, b = ready[order], bits[order]
    keep = np.ones(n, dtype=bool)
    if n <= 256:
        dom = (r[None, :] <= r[:, None]) & (b[None, :] <= b[:, None]) & np.tri(n, n, -1, dtype=bool)
        keep = ~dom.any(axis=1)
    else:  # a staircase of the kept points' (ready, bits): ready ascending, bits descending
        sr: list[float] = []
        sb: list[float] = []
        for i, (ri, bi) in enumerate(zip(r.tolist(), b.tolist(), strict=True)):
            at = bisect.bisect_right(sr, ri)
            if at > 0 and sb[at - 1] <= bi:
                keep[i] = False
                continue
            end = at
            while end < len(sr) and sb[end] >= bi:
                end += 1
            sr[at:end] = [ri]
            sb[at:end] = [bi]
    out = np.zeros(n, dtype=bool)
    out[order[keep]] = True
    return out
