"""Exact reference for small instances: enumeration of every undominated discrete choice, exact bandwidth.

Why enumeration is exact: removing a module from a device never increases T or E (less compute, smaller
payloads, earlier arrivals, smaller relay uploads at the same bandwidth), so some optimal placement is a
*minimal* cover: for every (edge, module) a set of eligible devices whose samples reach gamma x the
demand and from which no device can be dropped. We enumerate, per edge, every product of minimal covers
that fits the memories, times every one-hop relay map allowed by the D2D links and the relay capacity,
and solve the bandwidth of each exactly (vectorized bisection). With lambda = 0 the edges are independent
(T = max_e T_e), so each edge is enumerated alone. With lambda > 0 the edges are independent at a common
deadline T: every candidate's energy at T is exact (solvers/energy.py) and the branch and bound over T of
solvers/candidates.py picks one candidate per edge; the plan carries that certified lower bound. The
dominance argument holds for relay_aggregates too (a relay's union never grows when a module is dropped).
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from solvers.bandwidth import bisection_bandwidth
from solvers.candidates import EdgeCandidates, select_exact
from solvers.edgebatch import EdgeView
from solvers.energy import plan_bandwidth
from solvers.errors import CoverageError, TooLargeError
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


def edge_placements(view: EdgeView) -> np.ndarray:
    """[P, n, M] every product of minimal covers of the edge that fits the memories (see `placements_upto`)."""
    pl = placements_upto(view, None)
    assert pl is not None  # no limit
    return pl


def placements_upto(view: EdgeView, limit: int | None) -> np.ndarray | None:
    """[P, n, M] every product of minimal covers of the edge that fits the memories; None once more than `limit`
    fit (the search stops there: an edge too large to enumerate costs about `limit` steps, not its product).

    Depth-first over the modules in order (the order of itertools.product over the covers, so ties between equal
    candidates break as before), adding one cover at a time and pruning a branch as soon as a memory overflows."""
    p, m = view.problem, view.problem.num_modules
    d = view.dev
    covers = [minimal_covers(p.samples[d], p.eligible[d, k], view.demand[k]) for k in range(m)]
    if any(not c for c in covers):
        raise CoverageError(f"coverage: edges[{view.edge}] cannot reach gamma of the samples even with every eligible "
                            "device")
    count = int(np.prod([len(c) for c in covers], dtype=float))
    if limit is None and count > 5_000_000:
        raise TooLargeError(f"edges[{view.edge}]: {count} cover products; the exact reference is for small instances")
    mem_cap = (p.memory_bytes[d] * (1 + 1e-12)).tolist()
    mem_of = p.module_memory_bytes.tolist()
    used = [0.0] * view.n
    chosen: list[tuple[int, ...]] = [()] * m
    out: list[list[tuple[int, ...]]] = []

    def visit(level: int) -> bool:  # False once the limit is passed
        if level == m:
            out.append(list(chosen))
            return limit is None or len(out) <= limit
        k = level
        for sub in covers[k]:
            if all(used[i] + mem_of[k] <= mem_cap[i] for i in sub):
                for i in sub:
                    used[i] += mem_of[k]
                chosen[k] = sub
                ok = visit(level + 1)
                for i in sub:
                    used[i] -= mem_of[k]
                if not ok:
                    return False
        return True

    if not visit(0):
        return None
    if not out:
        raise CoverageError(f"coverage: edges[{view.edge}]: no placement satisfies both memory and coverage")
    pl = np.zeros((len(out), view.n, m), dtype=bool)
    for j, combo in enumerate(out):
        for k, sub in enumerate(combo):
            pl[j, list(sub), k] = True
    return pl


def edge_candidates(view: EdgeView, max_candidates: int) -> EdgeCandidates | None:
    """Every undominated choice of one edge (placements x relay maps), or None if more than max_candidates."""
    maps = np.array(relay_maps(view.rate, view.problem.relay_capacity), dtype=int)
    pl = placements_upto(view, max_candidates // max(len(maps), 1))
    if pl is None or len(pl) * len(maps) > max_candidates:
        return None
    a, b = np.divmod(np.arange(len(pl) * len(maps)), len(maps))
    return EdgeCandidates.of(view, pl[a], maps[b])


def exact_solve(problem: RoundProblem, max_candidates: int = 2_000_000, chunk: int = 20000) -> RoundPlan:
    """Proven-optimal plan of a small instance (lambda = 0: up to the bisection tolerance 1e-9; lambda > 0: the
    plan's lower_bound certifies it to 1e-7 relative)."""
    if problem.lam > 0:
        return _exact_energy(problem, min(max_candidates, 400_000))
    t0 = time.perf_counter()
    n_all = problem.num_devices
    x = np.zeros((n_all, problem.num_modules), dtype=bool)
    relay = np.arange(n_all)
    for e in range(problem.num_edges):
        view = EdgeView.of(problem, e)
        if view.n == 0:
            continue
        d = view.dev
        maps = np.array(relay_maps(view.rate, problem.relay_capacity), dtype=int)
        pl = edge_placements(view)
        if len(pl) * len(maps) > max_candidates:
            raise TooLargeError(f"edges[{e}]: {len(pl) * len(maps)} candidates exceed max_candidates={max_candidates}; "
                             "the exact reference is for small instances")
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
                     solve_seconds=time.perf_counter() - t0, lower_bound=cost.objective * (1 - 1e-8))


def _exact_energy(problem: RoundProblem, max_candidates: int) -> RoundPlan:
    t0 = time.perf_counter()
    views = [EdgeView.of(problem, e) for e in range(problem.num_edges)]
    views = [v for v in views if v.n > 0]
    cands = []
    for v in views:
        c = edge_candidates(v, max_candidates)
        if c is None:
            raise TooLargeError(f"edges[{v.edge}]: more than max_candidates={max_candidates} choices; the exact "
                             "reference is for small instances")
        cands.append(c.pareto())
    sel = select_exact(cands, problem.lam)
    x = np.zeros((problem.num_devices, problem.num_modules), dtype=bool)
    relay = np.arange(problem.num_devices)
    for v, c, j in zip(views, cands, sel.choice, strict=True):
        x[v.dev] = c.x[j]
        relay[v.dev] = v.dev[c.relay[j]]
    b = plan_bandwidth(problem, x, relay, hint=sel.t)
    cost = evaluate(problem, x, relay, b)
    return RoundPlan(placement=x, relay=relay, bandwidth_hz=b, latency_s=cost.latency_s, energy_j=cost.energy_j,
                     objective=cost.objective, solver="exact", status="optimal",
                     solve_seconds=time.perf_counter() - t0, lower_bound=min(sel.lower_bound, cost.objective))
