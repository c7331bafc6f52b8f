"""lambda = 0, edges above the model's size: a plan read off the subset LP of solvers/bounds.py.

On 100-device edges the price-guided plan (solvers/joint.py) is a local optimum of single relay moves, and the LP's
threshold (the certified bound) sits 3-4.5 % under it. The LP's solution at a latency just above its threshold is
almost integral (each basic solution splits at most about M devices between subsets), so it is a placement: each
device takes its heaviest subset (when its columns carry at least half a unit), coverage is repaired at the least
marginal price per sample (the band a device's extra module costs at that latency, solvers/greedy.py `price`), the
cover pruned back to minimal (costliest per sample first), and the relays chosen by the price greedy of
solvers/greedy.py at that latency (the LP's own routes price each relayed payload alone, so they over-use relays).
Then the LP is re-priced at the best plan's relay groups (a relayed column costs what it adds to its relay's upload
with the group's later start) and rounded again, a price for plans, not for the bound. The candidate's exact min-max
latency decides: it replaces the edge's plan only when faster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.bounds import EdgeRoutes
from solvers.clock import now
from solvers.evaluate import round_timeline
from solvers.greedy import greedy_relays, price
from solvers.instance import RoundProblem
from solvers.model import exact_cost, feasible

EPS = (0.01, 0.02, 0.0, 0.005, 0.03)
"""Latencies t_lp (1 + eps) above the LP's threshold t_lp whose LP solutions are rounded (each a candidate; the
ones that won most often in the probes first, since the clock may stop the list)."""
BISECT = 4
"""Bisection steps for the threshold on [max(LOW x the edge's latency, a known bound), its latency]."""
LOW = 0.85
REPRICE = 2
"""Rounds of the LP re-priced at the best plan's relay groups (`group_cost`)."""
TRIALS = (0.99, 0.995, 1.0)
"""Latencies (x the best plan's) of each re-priced round."""


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


def lp_candidates(p: RoundProblem, upper: float, deadline: float, lower: float = 0.0,
                  route: EdgeRoutes | None = None) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Candidate (x, relay) of the one-edge problem p (its plan's latency `upper`) read off the subset LP, and the
    largest latency the LP proved impossible on the way (a certified lower bound on the edge; 0 if none). lower: a
    latency known to be a bound (the bisection starts there; it counts only if this LP proves it too)."""
    demand = p.coverage_demand()[0]
    if p.num_modules > 12 or not np.any(demand > 0):
        return [], 0.0
    route = EdgeRoutes.of(p, 0, [0]) if route is None else route
    lo, hi = max(LOW * upper, min(lower, upper)), upper
    proven = 0.0
    if route.impossible(lo, demand):
        proven = lo
        for _ in range(BISECT):
            if now() >= deadline:
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
        if now() >= deadline:
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


def group_cost(p: RoundProblem, route: EdgeRoutes, x: np.ndarray, relay: np.ndarray, t: float) -> np.ndarray:
    """[columns] each (device, subset)'s band (Hz) at latency t when it joins the groups of the incumbent (x, relay):
    direct at its own window, via a relay j at what it adds to j's upload (j's bits and start with the new part;
    never less than alone), inf via a j that relays itself. A price for the next plan, not a bound."""
    tl = round_timeline(p, x, relay)
    direct = relay == np.arange(p.num_devices)
    slack = t - route.ready
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(slack > 0, route.pay[route.col] / np.where(slack > 0, slack, 1.0), np.inf)
    w = min_bandwidth(q, route.a)
    rel = np.flatnonzero(route.up != route.dev[route.col])
    j = route.up[rel]
    start, bits = tl.start[j], np.where(direct[j], tl.bits[j], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        win = t - np.maximum(start, route.ready[rel])
        q_new = np.where(win > 0, (bits + route.pay[route.col[rel]]) / np.where(win > 0, win, 1.0), np.inf)
        win0 = t - start
        q_old = np.where((bits > 0) & (win0 > 0), bits / np.where(win0 > 0, win0, 1.0), 0.0)
        add = min_bandwidth(q_new, route.a[rel]) - min_bandwidth(q_old, route.a[rel])
    w[rel] = np.where(direct[j], np.maximum(np.nan_to_num(add, nan=np.inf), w[rel]), np.inf)
    cost = np.full(route.dev.size, np.inf)
    np.minimum.at(cost, route.col, w)
    return cost


Polish = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def round_edge(p: RoundProblem, upper: float, deadline: float, lower: float = 0.0,
               incumbent: tuple[np.ndarray, np.ndarray] | None = None, polish: Polish | None = None) -> Rounded:
    """The LP-rounded candidates of the one-edge problem p whose plan (`incumbent`, when given) takes `upper`, priced
    exactly (lower: as in `lp_candidates`); then up to REPRICE rounds of the LP re-priced at the best plan's groups
    (`group_cost`) at TRIALS x its latency, rounded the same way. polish(x, relay): a feasible candidate's local
    search (solvers/pair_moves.py) before it is priced."""
    route = EdgeRoutes.of(p, 0, [0])
    cands, proven = lp_candidates(p, upper, deadline, lower, route)
    best = Rounded(None, None, np.inf, proven)

    def consider(x: np.ndarray, relay: np.ndarray) -> bool:
        nonlocal best
        if not feasible(p, x, relay):
            return False
        if polish is not None:
            x, relay = polish(x, relay)
        t = exact_cost(p, x, relay)
        if t < min(upper * (1 - 1e-9), best.latency):
            best = Rounded(x, relay, t, proven)
            return True
        return False

    for x, relay in cands:
        consider(x, relay)
    demand = p.coverage_demand()[0]
    for _ in range(REPRICE):
        if best.x is not None and best.relay is not None:
            x0, r0, t0 = best.x, best.relay, best.latency
        elif incumbent is not None:
            (x0, r0), t0 = incumbent, upper
        else:
            break
        found = False
        for f in TRIALS:
            if now() >= deadline:
                return best
            t = f * t0
            status, _ = route.solve(group_cost(p, route, x0, r0, t) / p.edge_bandwidth_hz[0], demand)
            if status != "optimal":
                continue
            x = round_columns(p, route, route.lps[demand.tobytes()].values(), t)
            found |= consider(x, greedy_relays(p, x, np.full(p.num_devices, t)))
        if not found:
            break
    return best
