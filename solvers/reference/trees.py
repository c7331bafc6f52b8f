"""Exact reference for aggregation trees (any lambda): per edge every product of minimal covers x every spanning tree
within relay_capacity, each costed by a direct recursion over the tree (this file's own code, not tree.py's
vectorized cost), then the exact choice of one candidate per edge at a common deadline."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from solvers.edgebatch import EdgeView
from solvers.errors import TooLargeError
from solvers.evaluate import uplink_rate
from solvers.exact import edge_placements
from solvers.instance import RoundProblem
from solvers.plan import RoundPlan
from solvers.tree import all_trees


def _tree_edge_cost(p: RoundProblem, view: EdgeView, xe: np.ndarray, parent: np.ndarray) -> tuple[float, float]:
    """(finish, energy) of one edge's tree by recursion from the root (the definitions of solvers/tree.py)."""
    d, n = view.dev, view.n
    kids: list[list[int]] = [[] for _ in range(n)]
    root = -1
    for i in range(n):
        if parent[i] == i:
            root = i
        else:
            kids[int(parent[i])].append(i)
    energy = 0.0

    def visit(i: int) -> tuple[float, np.ndarray]:  # (ready time, modules of the subtree)
        nonlocal energy
        cycles = float(p.samples[d[i]] * (xe[i].astype(float) @ p.module_cycles))
        energy += p.kappa * cycles * float(p.cpu_hz[d[i]]) ** 2
        ready, union = cycles / float(p.cpu_hz[d[i]]), xe[i].copy()
        for c in kids[i]:
            r_c, u_c = visit(c)
            bits = 8.0 * float(u_c.astype(float) @ p.module_bytes)
            hop = bits / float(view.rate[c, i]) if bits > 0 else 0.0
            energy += float(p.d2d_power_w[d[c]]) * hop
            ready, union = max(ready, r_c + hop), union | u_c
        return ready, union

    ready, union = visit(root)
    bits = 8.0 * float(union.astype(float) @ p.module_bytes)
    up = 0.0
    if bits > 0:
        up = bits / float(uplink_rate(np.array([p.edge_bandwidth_hz[view.edge]]), np.array([p.snr_hz[d[root]]]))[0])
    energy += float(p.tx_power_w[d[root]]) * up
    return ready + up, energy


def pick_per_edge(finish: list[np.ndarray], energy: list[np.ndarray], lam: float) -> tuple[list[int], float]:
    """One candidate per edge minimizing max finish + lam sum energy, exactly: the optimal T is one of the finishes;
    at threshold t every edge takes its least energy among the candidates finishing by t."""
    best, pick = math.inf, [0] * len(finish)
    for t in np.unique(np.concatenate(finish)):
        idx = []
        for f, e in zip(finish, energy, strict=True):
            ok = np.flatnonzero(f <= t)
            if ok.size == 0:
                break
            idx.append(int(ok[np.argmin(e[ok] + (0.0 if lam > 0 else f[ok]))]))
        else:
            val = max(float(f[i]) for f, i in zip(finish, idx, strict=True)) + lam * sum(
                float(e[i]) for e, i in zip(energy, idx, strict=True))
            if val < best:
                best, pick = val, idx
    return pick, best


def reference_trees(problem: RoundProblem, max_choices: int = 200_000) -> RoundPlan:
    """Proven-optimal aggregation trees (any lambda) by enumeration; TooLargeError beyond max_choices per edge."""
    t0 = time.perf_counter()
    p = problem
    if not p.tree_aggregation:
        raise ValueError("reference_trees: the instance has no tree_aggregation; use exact_solve")
    views = [v for v in (EdgeView.of(p, e) for e in range(p.num_edges)) if v.n > 0]
    cands = []
    for v in views:
        trees = all_trees(v.rate, limit=max_choices, capacity=p.relay_capacity) if v.n <= 8 else None
        if trees is None:
            raise TooLargeError(f"edges[{v.edge}]: more than {max_choices} trees (or > 8 devices); the tree reference "
                                "is for small edges")
        pls = edge_placements(v)
        if len(trees) * len(pls) > max_choices:
            raise TooLargeError(f"edges[{v.edge}]: {len(trees) * len(pls)} trees x placements > max_choices="
                                f"{max_choices}; the tree reference is for small edges")
        combos = list(itertools.product(range(len(pls)), range(len(trees))))
        cost = np.array([_tree_edge_cost(p, v, pls[a], trees[b]) for a, b in combos]).reshape(-1, 2)
        cands.append((v, pls, trees, combos, cost))
    pick, _ = pick_per_edge([c[4][:, 0] for c in cands], [c[4][:, 1] for c in cands], p.lam)
    x = np.zeros((p.num_devices, p.num_modules), dtype=bool)
    parent = np.arange(p.num_devices)
    b = np.zeros(p.num_devices)
    t, en = 0.0, 0.0
    for (v, pls, trees, combos, cost), j in zip(cands, pick, strict=True):
        a, k = combos[j]
        x[v.dev] = pls[a]
        parent[v.dev] = v.dev[trees[k]]
        b[v.dev[int(np.flatnonzero(trees[k] == np.arange(v.n))[0])]] = p.edge_bandwidth_hz[v.edge]
        t, en = max(t, float(cost[j, 0])), en + float(cost[j, 1])
    return RoundPlan(placement=x, relay=parent, bandwidth_hz=b, latency_s=t, energy_j=en, objective=t + p.lam * en,
                     solver="reference", status="optimal", solve_seconds=time.perf_counter() - t0, parent=parent)
