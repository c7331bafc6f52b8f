"""lambda = 0, edges above the model's size: a plan read off the subset LP of solvers/bounds.py.

On 100-device edges the price-guided plan (solvers/joint.py) is a local optimum of single relay moves, and the LP's
threshold (the certified bound) sits 3-4.5 % under it. The LP's solution at a latency just above its threshold is
almost integral (each basic solution splits at most about M devices between subsets), so it is a placement: each
device takes its heaviest subset (when its columns carry at least half a unit), coverage is repaired at the least
marginal price per sample (the band a device's extra module costs at that latency, solvers/greedy.py `price`), the
cover pruned back to minimal (costliest per sample first), and the relays chosen by the price greedy of
solvers/greedy.py at that latency (the LP's own routes price each relayed payload alone, so they over-use relays).
The candidate's exact min-max latency decides: it replaces the edge's plan only when faster. A probe at 1,000
devices (seeds 0-2, the slowest edge): 0.6-0.75 % faster on two of three, no gain on the third.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solvers.bounds import EdgeRoutes
from solvers.greedy import greedy_relays, price
from solvers.instance import RoundProblem
from solvers.model import exact_cost, feasible

EPS = (0.01, 0.02, 0.0, 0.005, 0.03)
"""Latencies t_lp (1 + eps) above the LP's threshold t_lp whose LP solutions are rounded (each a candidate; the
ones that won most often in the probes first, since the clock may stop the list)."""
BISECT = 4
"""Bisection steps for the threshold on [max(LOW x the edge's latency, a known bound), its latency]."""
LOW = 0.85


def round_columns(p: RoundProblem, route: EdgeRoutes, values: np.ndarray, t: float) -> np.ndarray:
    """[N, M] a minimal cover of the one-edge problem p from the LP's column values at latency t."""
    n, m = p.num_devices, p.num_modules
    x = np.zeros((n, m), dtype=bool)
    order = np.lexsort((-values, route.dev))  # per device, its heaviest column first
    first = order[np.unique(route.dev[order], return_index=True)[1]]
    mass = np.bincount(route.dev, weights=values, minlength=n)
    take = first[mass[route.dev[first]] >= 0.5]
    x[route.dev[take]] = route.mbits[take] > 0
    demand = p.coverage_demand()[0]
    ok = p.eligible & (p.samples[:, None] > 0)
    tau = p.samples * (x @ p.module_cycles) / p.cpu_hz
    bits = 8.0 * (x @ p.module_bytes)
    tt = np.full(n, t)
    for k in np.flatnonzero(demand > 0):  # repair: add module k where its marginal price per sample is least
        got = float(p.samples[x[:, k]].sum())
        while got < demand[k] * (1 - 1e-9):
            cand = np.flatnonzero(ok[:, k] & ~x[:, k])
            if cand.size == 0:
                break
            d_tau = p.samples[cand] * p.module_cycles[k] / p.cpu_hz[cand]
            with np.errstate(invalid="ignore"):
                extra = price(tt[cand], tau[cand] + d_tau, bits[cand] + 8.0 * p.module_bytes[k], p.snr_hz[cand]) \
                    - price(tt[cand], tau[cand], bits[cand], p.snr_hz[cand])
            per = np.where(np.isfinite(extra), extra, 1e30 * (1 + d_tau)) / p.samples[cand]
            i = int(cand[np.argmin(per)])
            x[i, k] = True
            got += float(p.samples[i])
            tau[i] += p.samples[i] * p.module_cycles[k] / p.cpu_hz[i]
            bits[i] += 8.0 * p.module_bytes[k]
    for k in np.arange(m):  # prune to a minimal cover, costliest per sample first
        hold = np.flatnonzero(x[:, k])
        if hold.size == 0:
            continue
        d_tau = p.samples[hold] * p.module_cycles[k] / p.cpu_hz[hold]
        with np.errstate(invalid="ignore"):
            saved = price(tt[hold], tau[hold], bits[hold], p.snr_hz[hold]) \
                - price(tt[hold], tau[hold] - d_tau, bits[hold] - 8.0 * p.module_bytes[k], p.snr_hz[hold])
        got = float(p.samples[hold].sum())
        for i in hold[np.argsort(-np.nan_to_num(saved / p.samples[hold], nan=np.inf), kind="stable")]:
            if got - p.samples[i] >= demand[k] * (1 - 1e-9):
                x[i, k] = False
                got -= float(p.samples[i])
                tau[i] -= p.samples[i] * p.module_cycles[k] / p.cpu_hz[i]
                bits[i] -= 8.0 * p.module_bytes[k]
    return x


def lp_candidates(p: RoundProblem, upper: float, deadline: float,
                  lower: float = 0.0) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Candidate (x, relay) of the one-edge problem p (its plan's latency `upper`) read off the subset LP, and the
    largest latency the LP proved impossible on the way (a certified lower bound on the edge; 0 if none). lower: a
    latency known to be a bound (the bisection starts there; it counts only if this LP proves it too)."""
    demand = p.coverage_demand()[0]
    if p.num_modules > 12 or not np.any(demand > 0):
        return [], 0.0
    route = EdgeRoutes.of(p, 0, [0])
    lo, hi = max(LOW * upper, min(lower, upper)), upper
    proven = 0.0
    if route.impossible(lo, demand):
        proven = lo
        for _ in range(BISECT):
            if time.perf_counter() >= deadline:
                break
            mid = 0.5 * (lo + hi)
            if route.impossible(mid, demand):
                lo = proven = mid
            else:
                hi = mid
    else:
        hi = lo
    out = []
    lp_key = demand.tobytes()
    for eps in EPS:
        if time.perf_counter() >= deadline:
            break
        t = hi * (1 + eps)
        status, value = route.solve(route.column_cost(t) / p.edge_bandwidth_hz[0], demand)
        if status != "optimal" or value > 1 + 1e-6:
            continue
        x = round_columns(p, route, route.lps[lp_key].values(), t)
        out.append((x, greedy_relays(p, x, np.full(p.num_devices, t))))
    return out, proven


@dataclass(frozen=True)
class Rounded:
    """round_edge's answer: the fastest feasible candidate faster than the edge's plan (x, relay None when none
    is), its exact latency (inf then), and the largest latency the LP proved impossible (0 if none)."""

    x: np.ndarray | None
    relay: np.ndarray | None
    latency: float
    lower_bound: float


def round_edge(p: RoundProblem, upper: float, deadline: float, lower: float = 0.0) -> Rounded:
    """The LP-rounded candidates of the one-edge problem p whose plan takes `upper`, priced exactly (lower: as in
    `lp_candidates`)."""
    cands, proven = lp_candidates(p, upper, deadline, lower)
    best = Rounded(None, None, np.inf, proven)
    for x, relay in cands:
        if not feasible(p, x, relay):
            continue
        t = exact_cost(p, x, relay)
        if t < min(upper * (1 - 1e-9), best.latency):
            best = Rounded(x, relay, t, proven)
    return best
