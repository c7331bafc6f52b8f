"""Tree-aware starting placements for the tree search (solvers/tree.py): per root, each module (largest first) goes
to the devices whose estimated arrival at the root is earliest, until its coverage demand is met.

A device's arrival estimate is its compute so far plus this module's, then its bits so far plus this module's
along the shortest D2D path to the root (sum of 1 / rate): what the tree timeline charges when no relay merges
or waits. It spreads work over fast, well-connected devices and lets the root compute what would travel far,
which the one-hop price cover (greedy_placement) does not see. A heuristic: a warm start for the local search and
the tree MILP, never a bound.
"""

from __future__ import annotations

import numpy as np

from solvers.edgebatch import EdgeView
from solvers.tree_bound import shortest_paths


def arrival_placement(view: EdgeView, root: int, sp: np.ndarray | None = None) -> np.ndarray | None:
    """[n, M] a minimal cover of the edge's demand for a tree toward `root`, or None if memory blocks it."""
    p, d, n = view.problem, view.dev, view.n
    sp = shortest_paths(view) if sp is None else sp
    dist = np.where(np.isfinite(sp[:, root]), sp[:, root], np.inf)
    x = np.zeros((n, p.num_modules), dtype=bool)
    busy, bits, mem = np.zeros(n), np.zeros(n), np.zeros(n)
    samples = p.samples[d].astype(float)
    for m in np.argsort(-p.module_bytes, kind="stable"):
        need = float(view.demand[m])
        if need <= 0:
            continue
        cand = np.flatnonzero(p.eligible[d, m] & (samples > 0) & np.isfinite(dist)
                              & (mem + p.module_memory_bytes[m] <= p.memory_bytes[d] * (1 + 1e-12)))
        tau = samples[cand] * p.module_cycles[m] / p.cpu_hz[d[cand]]
        arrive = busy[cand] + tau + (bits[cand] + 8.0 * p.module_bytes[m]) * dist[cand]
        order = cand[np.argsort(arrive, kind="stable")]
        cum = np.cumsum(samples[order])
        hit = np.flatnonzero(cum >= need * (1 - 1e-12))
        if hit.size == 0:
            return None
        take = order[:hit[0] + 1]
        slack = float(cum[hit[0]]) - need * (1 - 1e-12)
        drop = np.zeros(take.size, dtype=bool)
        for j in np.argsort(-samples[take], kind="stable").tolist():  # minimal: drop what the cover does not need
            if samples[take[j]] <= slack and not drop.all():
                drop[j] = True
                slack -= float(samples[take[j]])
        take_a = take[~drop]
        x[take_a, m] = True
        busy[take_a] += samples[take_a] * p.module_cycles[m] / p.cpu_hz[d[take_a]]
        bits[take_a] += 8.0 * p.module_bytes[m]
        mem[take_a] += p.module_memory_bytes[m]
    return x
