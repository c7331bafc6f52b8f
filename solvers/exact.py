"""Exact reference for small instances: enumeration of every undominated discrete choice, exact bandwidth.

Why enumeration is exact: removing a module from a device never increases T or E (less compute, smaller
payloads, earlier arrivals, smaller relay uploads at the same bandwidth), so some optimal placement is a
*minimal* cover: for every (edge, module) a set of eligible devices whose samples reach gamma x the
demand and from which no device can be dropped. We enumerate, per edge, every product of minimal covers
that fits the memories, times every one-hop relay map allowed by the D2D links and the relay capacity,
and solve the bandwidth of each exactly (vectorized bisection). With lambda = 0 the edges are independent
(T = max_e T_e), so each edge is enumerated alone. lambda > 0 is not supported here.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from solvers.bandwidth import bisection_bandwidth
from solvers.edgebatch import EdgeView
from solvers.evaluate import evaluate, round_timeline
from solvers.instance import RoundProblem
from solvers.plan import RoundPlan


def minimal_covers(samples: np.ndarray, eligible: np.ndarray, demand: float) -> list[tuple[int, ...]]:
    """All minimal subsets of the eligible local devices whose samples reach demand (() if demand <= 0)."""
    if demand <= 0:
        return [()]
    idx = [i for i in range(len(samples)) if eligible[i] and samples[i] > 0]
    out = []
    for r in range(1, len(idx) + 1):
        for sub in itertools.combinations(idx, r):
            tot = sum(samples[i] for i in sub)
            if tot >= demand * (1 - 1e-12) and all(tot - samples[i] < demand * (1 - 1e-12) for i in sub):
                out.append(sub)
    return out


def relay_maps(rate: np.ndarray, capacity: int | None) -> list[tuple[int, ...]]:
    """Every one-hop relay map of n devices: a direct set D, each other device sends to a neighbour in D."""
    n = rate.shape[0]
    maps = []
    for mask in range(1, 1 << n) if n else []:
        direct = [i for i in range(n) if mask >> i & 1]
        others = [i for i in range(n) if not mask >> i & 1]
        choices = [[j for j in direct if rate[i, j] > 0] for i in others]
        if any(not c for c in choices):
            continue
        for pick in itertools.product(*choices):
            relay = list(range(n))
            for i, j in zip(others, pick, strict=True):
                relay[i] = j
            if capacity is not None and any(pick.count(j) > capacity for j in direct):
                continue
            maps.append(tuple(relay))
    return maps


def exact_solve(problem: RoundProblem, max_candidates: int = 2_000_000, chunk: int = 20000) -> RoundPlan:
    """Proven-optimal plan (up to the bisection tolerance, 1e-9) of a small instance with lambda = 0."""
    if problem.lam != 0:
        raise ValueError("lambda: the exact reference supports lambda = 0 only (edges are then independent)")
    t0 = time.perf_counter()
    n_all, m = problem.num_devices, problem.num_modules
    x = np.zeros((n_all, m), dtype=bool)
    relay = np.arange(n_all)
    for e in range(problem.num_edges):
        view = EdgeView.of(problem, e)
        if view.n == 0:
            continue
        d = view.dev
        covers = [minimal_covers(problem.samples[d], problem.eligible[d, k], view.demand[k]) for k in range(m)]
        if any(not c for c in covers):
            raise ValueError(f"edges[{e}]: coverage cannot be met even with every eligible device")
        maps = np.array(relay_maps(view.rate, problem.relay_capacity), dtype=int)
        count = int(np.prod([len(c) for c in covers], dtype=float)) * len(maps)
        if count > max_candidates:
            raise ValueError(f"edges[{e}]: {count} candidates exceed max_candidates={max_candidates}; "
                             "the exact reference is for small instances")
        placements = []
        for combo in itertools.product(*covers):
            xe = np.zeros((view.n, m), dtype=bool)
            for k, sub in enumerate(combo):
                xe[list(sub), k] = True
            placements.append(xe)
        pl = np.array(placements)
        pl = pl[view.feasible(pl)]
        if len(pl) == 0:
            raise ValueError(f"edges[{e}]: no placement satisfies both memory and coverage")
        best = (np.inf, None, None)
        pairs = [(a, b) for a in range(len(pl)) for b in range(len(maps))]
        for s in range(0, len(pairs), chunk):
            pa = np.array(pairs[s:s + chunk])
            t = view.latency(pl[pa[:, 0]], maps[pa[:, 1]])
            j = int(np.argmin(t))
            if t[j] < best[0]:
                best = (float(t[j]), pl[pa[j, 0]], maps[pa[j, 1]])
        x[d] = best[1]
        relay[d] = d[best[2]]
    tl = round_timeline(problem, x, relay)
    b, _ = bisection_bandwidth(problem, tl.start, tl.bits, tl.uploader)
    cost = evaluate(problem, x, relay, b)
    return RoundPlan(placement=x, relay=relay, bandwidth_hz=b, latency_s=cost.latency_s, energy_j=cost.energy_j,
                     objective=cost.objective, solver="exact", status="optimal",
                     solve_seconds=time.perf_counter() - t0)
