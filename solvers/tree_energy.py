"""A latency-energy bound for tree plans: per root r, T + lambda E_lb(T), with E_lb from Steiner arborescences.

Each demanded module m must reach the root: its holders H (samples >= the demand) compute it, and the arcs
carrying m form an in-arborescence from H to r (every hop carries the union, which holds m). Its D2D energy is
at least 8 s_m times the least per-bit cost (p^d2d_i / r_ij per arc) of such an arborescence, `steiner`[H, r]
(Dreyfus-Wagner over every subset of the edge's devices, all roots at once). Dropping memory (a device's modules
add up) and the sharing of one tree by the modules only lowers it, so per root

  E_lb = p_r U_e / R_r(B_e) + sum_m min over covers H of m [ sum_{k in H} kappa n_k c_m f_k^2 + 8 s_m steiner[H, r] ].

With a trial latency T only holders that can deliver m by T count: k's compute of m plus m's bits along the
shortest D2D path to r plus the root's upload c_r (solvers/tree_bound.py). E_lb(T) is a step function that falls
as T grows; every plan rooted at r has T >= T_lb(r) (tree_bound) and E >= E_lb(T), so it dominates one of the
pairs (t, E_lb(t)), t over T_lb(r) and the steps above it. The pairs go to `threshold_value` like tree_bound's.
Exponential in the devices: edges of at most STEINER_MAX_DEVICES (2^12 x 12 values, about 0.05 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from solvers.edgebatch import EdgeView
from solvers.evaluate import uplink_rate
from solvers.tree_bound import pareto, shortest_paths

STEINER_MAX_DEVICES = 12
"""Largest edge given Steiner energies (2^n subsets x n roots)."""


def steiner(cost: np.ndarray) -> np.ndarray:
    """[2^n, n]: per subset H of devices (bit k = device k) and root v, the least cost of arcs (cost[i, j], inf: no
    arc) in which every device of H has a path to v (Dreyfus-Wagner: merge two parts at u, then the shortest path
    u -> v); inf where some device of H cannot reach v; 0 for the empty set."""
    from scipy.sparse.csgraph import dijkstra

    n = cost.shape[0]
    dist = np.asarray(dijkstra(np.where(np.isfinite(cost), cost, 0.0), directed=True))  # dist[u, v]
    full = 1 << n
    dp = np.full((full, n), math.inf)
    dp[0] = 0.0
    masks = np.arange(full)
    for k in range(n):
        dp[1 << k] = dist[k]
    for s in range(3, full):
        if s & (s - 1) == 0:
            continue
        sub = masks[1:s][(masks[1:s] & s) == masks[1:s]]
        sub = sub[sub < (s ^ sub)]  # each split once
        merged = (dp[sub] + dp[s ^ sub]).min(axis=0)
        dp[s] = (merged[:, None] + dist).min(axis=0)
    return dp


@dataclass(frozen=True)
class EdgeParts:
    """What the ladder and its Lagrangian refinement (solvers/tree_lagrange.py) share for one edge."""

    members: np.ndarray  # [H, n] bool: the devices of subset H
    need: np.ndarray  # demanded modules
    covers: list[np.ndarray]  # per demanded module: [H] bool, H a cover of it (eligible, memory, samples)
    energy: list[np.ndarray]  # per demanded module: [H, r] compute of H + its bits' Steiner energy to r
    comp: np.ndarray  # [n, M] compute energy of one module
    deliver: np.ndarray  # [k, M, r] k's compute of m plus m's bits along the shortest path to r
    up: np.ndarray  # [r] the root's upload time c_r
    up_energy: np.ndarray  # [r] p_r c_r


def edge_parts(view: EdgeView) -> EdgeParts | None:
    """The edge's Steiner energies and delivery times; None above STEINER_MAX_DEVICES."""
    p, d, n = view.problem, view.dev, view.n
    if n > STEINER_MAX_DEVICES:
        return None
    with np.errstate(divide="ignore"):
        cost = np.where(view.rate > 0, p.d2d_power_w[d][:, None] / np.where(view.rate > 0, view.rate, 1.0), np.inf)
    tree = steiner(cost)  # [H, r]
    sp = shortest_paths(view)  # [k, r]
    need = np.flatnonzero(view.demand > 0)
    members = ((np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)  # [H, n]
    n_k = p.samples[d].astype(float)
    can = (p.eligible[d] & (n_k > 0)[:, None] & (p.module_memory_bytes[None, :] <= p.memory_bytes[d][:, None]))
    comp = p.kappa * n_k[:, None] * p.module_cycles[None, :] * p.cpu_hz[d][:, None] ** 2  # [n, M]
    tau = n_k[:, None] * p.module_cycles[None, :] / p.cpu_hz[d][:, None]
    samples = members @ n_k
    bits_e = 8.0 * float(p.module_bytes[need].sum())
    up = bits_e / uplink_rate(np.full(n, p.edge_bandwidth_hz[view.edge]), p.snr_hz[d]) if need.size else np.zeros(n)
    covers, energy = [], []
    for m in need:
        covers.append((~members | can[:, m][None, :]).all(axis=1) & (samples >= view.demand[m] * (1 - 1e-12)))
        energy.append(members.astype(float) @ comp[:, m][:, None] + 8.0 * float(p.module_bytes[m]) * tree)
    deliver = tau[:, :, None] + 8.0 * p.module_bytes[None, :, None] * sp[:, None, :]
    return EdgeParts(members, need, covers, energy, comp, deliver, up, p.tx_power_w[d] * up)


def ladder_pairs(view: EdgeView, t_lb: np.ndarray, e_lb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Per root r: the (T, E) pairs one of which every plan rooted at r dominates (see the module doc; E at least
    e_lb[r] too); empty arrays where r cannot be the root. None for an edge above STEINER_MAX_DEVICES."""
    parts = edge_parts(view)
    if parts is None:
        return None
    members, up = parts.members, parts.up
    steps = [(m, ok, en[ok]) for m, ok, en in zip(parts.need, parts.covers, parts.energy, strict=True)]
    out = []
    for r in range(view.n):
        if not np.isfinite(t_lb[r]):
            out.append((np.zeros(0), np.zeros(0)))
            continue
        fronts = []
        for m, ok, energy in steps:
            arrive = parts.deliver[:, m, r]  # [k]
            when = np.where(members[ok], arrive[None, :], -math.inf).max(axis=1) + up[r]  # [H]: m at r, uploaded
            fronts.append(pareto(when, energy[:, r]))
        if any(f.size == 0 for f, _ in fronts):
            out.append((np.zeros(0), np.zeros(0)))
            continue
        ts = np.unique(np.concatenate([[t_lb[r]], *[f for f, _ in fronts]]))
        ts = ts[ts >= t_lb[r]]
        total = np.full(ts.size, parts.up_energy[r])
        for f, e in fronts:
            at = np.searchsorted(f, ts, side="right") - 1
            total += np.where(at >= 0, e[np.maximum(at, 0)], math.inf)
        out.append(pareto(ts, np.maximum(total, e_lb[r])))
    return out


def root_values(pairs: list[tuple[np.ndarray, np.ndarray]], lam: float) -> np.ndarray:
    """[n] per root: the least T + lam E over its pairs (inf where it has none)."""
    return np.array([float(np.min(t + lam * e)) if t.size else math.inf for t, e in pairs])


def flat_pairs(bounds: list[tuple[np.ndarray, np.ndarray]],
               ladders: list[list[tuple[np.ndarray, np.ndarray]] | None]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(finish, energy) lists for `threshold_value`: per edge its ladder pairs over all roots where it has them
    (every plan dominates one pair of its root), else its bounds as given."""
    fs, es = [], []
    for (f, e), lad in zip(bounds, ladders, strict=True):
        if lad is not None:
            f = np.concatenate([t for t, _ in lad] + [np.zeros(0)])
            e = np.concatenate([en for _, en in lad] + [np.zeros(0)])
        fs.append(f)
        es.append(e)
    return fs, es

