"""Baselines: equal bandwidth / no relay / full placement; greedy best-rate relay; random choices.

All three share the edge's band equally among the devices that upload, so they isolate what the joint
solver's placement, relay and bandwidth decisions buy.
"""

from __future__ import annotations

import time

import numpy as np

from solvers.evaluate import evaluate, round_timeline, uplink_rate
from solvers.instance import RoundProblem
from solvers.plan import RoundPlan


def full_placement(problem: RoundProblem) -> np.ndarray:
    """Every eligible module, dropping the largest-memory ones on a device until its memory holds."""
    x = problem.eligible.copy()
    over = np.flatnonzero(x @ problem.module_memory_bytes > problem.memory_bytes * (1 + 1e-12))
    for i in over:
        for k in np.argsort(-problem.module_memory_bytes):
            if x[i] @ problem.module_memory_bytes <= problem.memory_bytes[i] * (1 + 1e-12):
                break
            x[i, k] = False
    return x


def equal_bandwidth(problem: RoundProblem, x: np.ndarray, relay: np.ndarray) -> np.ndarray:
    """B_e / (number of uploaders of e) to each uploader, 0 to the others."""
    tl = round_timeline(problem, x, relay)
    cnt = np.bincount(problem.device_edge[tl.uploader], minlength=problem.num_edges)
    share = problem.edge_bandwidth_hz / np.maximum(cnt, 1)
    return np.where(tl.uploader, share[problem.device_edge], 0.0)


def equal_share_plan(problem: RoundProblem, x: np.ndarray, relay: np.ndarray, name: str, t0: float) -> RoundPlan:
    b = equal_bandwidth(problem, x, relay)
    c = evaluate(problem, x, relay, b)
    return RoundPlan(placement=x, relay=relay, bandwidth_hz=b, latency_s=c.latency_s, energy_j=c.energy_j,
                     objective=c.objective, solver=name, status="solved", solve_seconds=time.perf_counter() - t0)


def equal_plan(problem: RoundProblem) -> RoundPlan:
    """Full placement, direct uploads, equal bandwidth shares."""
    t0 = time.perf_counter()
    return equal_share_plan(problem, full_placement(problem), np.arange(problem.num_devices), "equal", t0)


def greedy_plan(problem: RoundProblem) -> RoundPlan:
    """Full placement; worst direct links first, each relays to its best-rate direct neighbour if faster."""
    t0 = time.perf_counter()
    p = problem
    x = full_placement(p)
    n = p.num_devices
    relay = np.arange(n)
    share = p.edge_bandwidth_hz[p.device_edge] / np.bincount(p.device_edge, minlength=p.num_edges)[p.device_edge]
    direct = uplink_rate(share, p.snr_hz)
    served = np.zeros(n, dtype=int)
    cap = p.relay_capacity
    out: dict[int, list[tuple[float, int]]] = {i: [] for i in range(n)}
    for s, d, r in zip(p.d2d_src, p.d2d_dst, p.d2d_rate_bps, strict=True):
        out[int(s)].append((float(r), int(d)))
    for i in np.argsort(direct):
        if served[i] > 0 or not x[i].any():
            continue
        for r, j in sorted(out[int(i)], reverse=True):
            if relay[j] == j and (cap is None or served[j] < cap) and r > direct[i]:
                relay[i] = j
                served[j] += 1
                break
            if r <= direct[i]:
                break
    return equal_share_plan(p, x, relay, "greedy", t0)


def random_placement(problem: RoundProblem, rng: np.random.Generator) -> np.ndarray:
    """A random cover per (edge, module) within memory (devices in random order until the demand is met)."""
    p = problem
    n = p.num_devices
    x = np.zeros((n, p.num_modules), dtype=bool)
    demand = p.coverage_demand()
    for k in rng.permutation(p.num_modules):
        got = np.zeros(p.num_edges)
        for i in rng.permutation(n):
            e = p.device_edge[i]
            fits = x[i] @ p.module_memory_bytes + p.module_memory_bytes[k] <= p.memory_bytes[i] * (1 + 1e-12)
            if p.eligible[i, k] and got[e] < demand[e, k] * (1 - 1e-12) and fits:
                x[i, k] = True
                got[e] += p.samples[i]
    return x


def random_plan(problem: RoundProblem, seed: int = 0) -> RoundPlan:
    """Random cover per (edge, module) within memory, random one-hop relays, equal bandwidth."""
    t0 = time.perf_counter()
    p = problem
    rng = np.random.default_rng(seed)
    n = p.num_devices
    x = random_placement(p, rng)
    relay = np.arange(n)
    served = np.zeros(n, dtype=int)
    cap = p.relay_capacity
    for i in rng.permutation(n):
        nb = p.d2d_dst[p.d2d_src == i]
        if served[i] > 0 or relay[i] != i or nb.size == 0 or rng.uniform() < 0.5:
            continue
        j = int(rng.choice(nb))
        if relay[j] == j and (cap is None or served[j] < cap):
            relay[i] = j
            served[j] += 1
    return equal_share_plan(p, x, relay, "random", t0)
