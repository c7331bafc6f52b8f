"""The price-guided greedy steps of the joint solver: minimal covers by least marginal price, greedy relays.

A device's *price* at a target latency T is the least bandwidth it needs to finish by T,
h_i(T) = R_i^-1(U_i / (T - start_i)) (solvers/bandwidth.py); an edge meets T iff its prices fit its band. These
steps choose placements and relays that keep the total price low; solvers/joint.py iterates them, and the energy
search (solvers/tradeoff.py) and the trees (solvers/tree.py) start from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from solvers.bandwidth import min_bandwidth, min_bandwidth_one
from solvers.clock import MILP_CAP_S, Clock
from solvers.errors import CoverageError
from solvers.evaluate import LN2, round_timeline, uplink_rate
from solvers.instance import RoundProblem
from solvers.milp import MilpTimeout, milp_placement

BIG = 1e30
REPAIR_SHARE = 0.5
"""Part of the heuristics' time left at the first repair that the repair MILPs share: given all of it, ten repairs of
a memory-tight 1,000-device round took the whole clock and the steps after them ran past the time limit by 0.1-0.8 s
(experiments/solver_memory_tight.py)."""


@dataclass
class Repairs:
    """The placement repairs of one solve: each memory-tight edge's MILP cover (`repair_edge`), solved once per
    solve (its weights do not depend on the target latencies, so every later greedy cover reuses it) and within the
    round's clock (solvers/clock.py)."""

    clock: Clock = field(default_factory=Clock)
    done: dict[int, np.ndarray] = field(default_factory=dict)  # edge -> its rows of x
    budget: Clock | None = None  # the repairs' part of `clock`, from the first repair on

    def limit(self, pending: int) -> float:
        """Time limit of the next of `pending` repair MILPs: an equal part of what is left of the repairs' budget
        (REPAIR_SHARE of the clock's time left at the first repair; solvers/clock.py `milp_limit`)."""
        if self.budget is None:
            self.budget = self.clock.share(REPAIR_SHARE)
        return self.budget.milp_limit(pending)


def price(t: np.ndarray, start: np.ndarray, bits: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Least bandwidth to send `bits` from `start` by `t` (0 for no bits, inf if impossible)."""
    slack = t - start
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(slack > 0, bits / np.where(slack > 0, slack, 1.0), np.inf)
    q = np.where(bits > 0, q, 0.0)
    return min_bandwidth(q, a)


def greedy_placement(problem: RoundProblem, t_dev: np.ndarray, weights: np.ndarray | None = None,
                     repairs: Repairs | None = None) -> np.ndarray:
    """Minimal cover per (edge, module) by least marginal price per sample at target latencies t_dev [N]
    (or, given weights [N, M], by least weight per sample: e.g. energy, see `energy_weights`). Edges where memory
    blocks the greedy go to the repair MILP (`repairs`: the solve's clock and the repairs made so far)."""
    p = problem
    n, m = p.num_devices, p.num_modules
    x = np.zeros((n, m), dtype=bool)
    tau, bits, mem = np.zeros(n), np.zeros(n), np.zeros(n)
    demand = p.coverage_demand()
    a = p.snr_hz
    repair: set[int] = set()
    for k in np.argsort(-p.module_bytes, kind="stable"):
        need = demand[:, k]
        if not np.any(need > 0):
            continue
        cand = np.flatnonzero(p.eligible[:, k] & (p.samples > 0)
                              & (mem + p.module_memory_bytes[k] <= p.memory_bytes * (1 + 1e-12)))
        d_tau = p.samples[cand] * p.module_cycles[k] / p.cpu_hz[cand]
        before = price(t_dev[cand], tau[cand], bits[cand], a[cand])
        after = price(t_dev[cand], tau[cand] + d_tau, bits[cand] + 8 * p.module_bytes[k], a[cand])
        with np.errstate(invalid="ignore"):
            cost = after - before
        finish = tau[cand] + d_tau + (bits[cand] + 8 * p.module_bytes[k]) * LN2 / a[cand]
        edge = p.device_edge[cand]
        latest = np.zeros(p.num_edges)  # per edge, so that an edge's choice does not depend on the others
        np.maximum.at(latest, edge, finish)
        cost = np.where(np.isfinite(cost), cost, BIG * (1 + finish / (1 + latest[edge])))
        if weights is not None:
            cost = weights[cand, k]
        ratio = cost / p.samples[cand]
        order = np.lexsort((ratio, edge))
        cand, edge, ratio = cand[order], edge[order], ratio[order]
        before_cum = segment_cumsum(p.samples[cand], edge) - p.samples[cand]
        take = before_cum < need[edge] * (1 - 1e-12)
        got = np.bincount(edge[take], weights=p.samples[cand[take]], minlength=p.num_edges)
        short = got < need * (1 - 1e-12)
        repair.update(np.flatnonzero(short).tolist())
        take &= ~short[edge]
        chosen, chosen_edge = cand[take][::-1], edge[take][::-1]  # prune: costliest first
        x[chosen, k] = True
        surplus, slack = got - need, 1e-12 * need
        # A device with more samples than its edge's surplus can never be dropped (the surplus only shrinks):
        # only the others go through the sequential loop, in the same order (plain floats: it is per device).
        maybe = np.flatnonzero(p.samples[chosen] <= surplus[chosen_edge] + slack[chosen_edge])
        left, tol = surplus.tolist(), slack.tolist()
        for j, n_i, e in zip(maybe.tolist(), p.samples[chosen[maybe]].tolist(), chosen_edge[maybe].tolist(),
                             strict=True):
            if n_i <= left[e] + tol[e]:
                left[e] -= n_i
                x[chosen[j], k] = False
        sel = np.flatnonzero(x[:, k])
        tau[sel] += p.samples[sel] * p.module_cycles[k] / p.cpu_hz[sel]
        bits[sel] += 8 * p.module_bytes[k]
        mem[sel] += p.module_memory_bytes[k]
    repairs = Repairs() if repairs is None else repairs
    todo = sorted(repair)
    for k, e in enumerate(todo):
        if e not in repairs.done:
            pending = sum(1 for f in todo[k:] if f not in repairs.done)
            repair_edge(p, x, e, demand[e], repairs.limit(pending))
            repairs.done[e] = x[p.edge_devices(e)].copy()
        x[p.edge_devices(e)] = repairs.done[e]
    return x


def segment_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Running sum of values within each run of equal (sorted) segment ids, restarting at 0 in each run, summed
    in order from the run's start: the same floats whatever other runs the array holds."""
    if values.size == 0:
        return values.astype(float)
    first = np.searchsorted(segment, segment, side="left")
    pos = np.arange(values.size) - first
    starts = np.flatnonzero(pos == 0)
    row = np.cumsum(pos == 0) - 1
    width = int(pos.max()) + 1
    if starts.size * width <= 4 * values.size + 4096:  # a padded matrix, one cumsum along the rows
        mat = np.zeros((starts.size, width))
        mat[row, pos] = values
        return np.cumsum(mat, axis=1)[row, pos]
    ends = np.append(starts[1:], values.size)
    return np.concatenate([np.cumsum(values[a:b]) for a, b in zip(starts, ends, strict=True)])


def energy_weights(problem: RoundProblem) -> np.ndarray:
    """[N, M] least energy of device i training module k alone: compute kappa n c f^2 plus its bytes at the
    infinite-band energy per bit N0 ln2 / g (the placement the energy term alone would pick)."""
    p = problem
    return (p.kappa * p.samples[:, None] * p.module_cycles[None, :] * p.cpu_hz[:, None] ** 2
            + 8.0 * p.module_bytes[None, :] * (p.tx_power_w * LN2 / p.snr_hz)[:, None])


def repair_edge(p: RoundProblem, x: np.ndarray, e: int, demand: np.ndarray, time_limit_s: float) -> None:
    """Memory blocked the greedy cover on edge e: re-place the whole edge by the MILP (within time_limit_s; if that
    found no cover, up to MILP_CAP_S for the first cover), then prune."""
    d = p.edge_devices(e)
    cnt = max(d.size, 1)
    rate = uplink_rate(p.edge_bandwidth_hz[e] / cnt, p.snr_hz[d])
    w = (p.samples[d, None] * p.module_cycles[None, :] / p.cpu_hz[d, None]
         + 8 * p.module_bytes[None, :] / rate[:, None]) / np.maximum(p.samples[d], 1e-12)[:, None]
    try:
        xe = milp_placement(p, e, w, time_limit_s)
    except MilpTimeout:  # no cover yet within this share of the clock: a plan needs one, so wait for the first
        if time_limit_s >= MILP_CAP_S:
            raise
        xe = milp_placement(p, e, w, MILP_CAP_S, first_cover=True)
    if xe is None:
        raise CoverageError(f"coverage: edge {p.edge_ids[e]!r} cannot reach gamma={p.gamma:g} of the samples for "
                            "every module within the devices' memory")
    for k in range(p.num_modules):  # prune to a minimal cover, costliest per sample first
        cover = np.flatnonzero(xe[:, k])
        total = p.samples[d[cover]].sum()
        for i in cover[np.argsort(-w[cover, k])]:
            if total - p.samples[d[i]] >= demand[k] * (1 - 1e-12):
                xe[i, k] = False
                total -= p.samples[d[i]]
    x[d] = xe


def greedy_relays(problem: RoundProblem, x: np.ndarray, t_dev: np.ndarray) -> np.ndarray:
    """One-hop relay map that greedily saves the most bandwidth price at the target latencies."""
    p = problem
    n = p.num_devices
    relay = np.arange(n)
    if p.d2d_src.size == 0:
        return relay
    tl = round_timeline(p, x, relay)
    a = p.snr_hz
    h = price(t_dev, tl.tau, tl.payload_bits, a)
    s, d, r = p.d2d_src, p.d2d_dst, p.d2d_rate_bps
    keep = tl.payload_bits[s] > 0
    s, d, r = s[keep], d[keep], r[keep]
    arrival = tl.tau[s] + tl.payload_bits[s] / r
    if p.relay_aggregates:
        merged = 8.0 * ((x[s] | x[d]).astype(float) @ p.module_bytes)
    else:
        merged = tl.payload_bits[d] + tl.payload_bits[s]
    h_merged = price(t_dev[d], np.maximum(tl.tau[d], arrival), merged, a[d])  # j's price if i is its first
    with np.errstate(invalid="ignore"):
        gain = h[s] + h[d] - h_merged
    ok = np.isfinite(gain) & (gain > 0) | (np.isinf(h[s]) & np.isfinite(price(t_dev[d], arrival, merged, a[d])))
    order = np.flatnonzero(ok)[np.argsort(-np.nan_to_num(gain[ok], nan=-1.0, posinf=BIG), kind="stable")]
    # The acceptance loop is sequential (each pair sees the earlier ones): plain Python floats, no numpy per pair.
    start, bits, cur = tl.tau.tolist(), tl.payload_bits.tolist(), h.tolist()
    pay, arr, hm, t_l, a_l = tl.payload_bits.tolist(), arrival.tolist(), h_merged.tolist(), t_dev.tolist(), a.tolist()
    s_l, d_l = s.tolist(), d.tolist()
    rel = relay.tolist()
    union = x.copy()
    served = [0] * n
    cap = n if p.relay_capacity is None else p.relay_capacity
    for c in order.tolist():
        i, j = s_l[c], d_l[c]
        if rel[i] != i or served[i] > 0 or rel[j] != j or served[j] >= cap:
            continue
        new_start = max(start[j], arr[c])
        if p.relay_aggregates:
            new_bits = 8.0 * float((union[j] | x[i]).astype(float) @ p.module_bytes)
        else:
            new_bits = bits[j] + pay[i]
        if served[j] == 0:
            new_h = hm[c]
        else:
            slack = t_l[j] - new_start
            new_h = 0.0 if new_bits <= 0 else min_bandwidth_one(new_bits / slack if slack > 0 else math.inf, a_l[j])
        g = cur[i] + cur[j] - new_h
        if not (math.isfinite(new_h) and (g > 0 or math.isinf(cur[i]))):
            continue
        rel[i] = j
        served[j] += 1
        start[j], bits[j], cur[j], cur[i] = new_start, new_bits, new_h, 0.0
        if p.relay_aggregates:
            union[j] |= x[i]
    relay = np.array(rel, dtype=int)
    return relay
