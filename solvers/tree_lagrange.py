"""The tree ladder's energy with each device's modules coupled again, by Lagrangian multipliers, per root.

The ladder (solvers/tree_energy.py) picks each module's cover apart, so one fast, cheap device may hold every
module in it although computing them all (compute adds up on a device) or storing them would not fit. A plan
rooted at r that finishes by t has, on every device k with modules S_k,
    sum_{m in S_k} deliver[k, m, r] <= t - c_r    (k computes S_k, then its union, a superset of S_k, travels at
                                                   least the shortest D2D path to r; c_r the root's upload)
    sum_{m in S_k} mem_m <= M_k,
so for any mu, nu >= 0 (weak duality)
    E >= p_r c_r + sum_m min over covers H of m [energy_m(H, r) + sum_{k in H} (mu_k deliver[k, m, r] + nu_k mem_m)]
         - sum_k mu_k (t - c_r) - sum_k nu_k M_k =: L(t),
with the multipliers from a few subgradient steps. On a grid t_0 = T_lb(r) < ... < t_K = U - lambda E_min(r) (a
plan with T above t_K costs at least U, the incumbent), a plan with T in [t_k, t_k+1) has E >= L(t_k+1) and
dominates a ladder pair at or below T, so T + lambda E >= min over the ladder points s of the interval (and t_k)
of s + lambda max(E_ladder(s), L(t_k+1)).
"""

from __future__ import annotations

import math

import numpy as np

from solvers.edgebatch import EdgeView
from solvers.tree_energy import EdgeParts

GRID = 6
"""Intervals of the latency grid per root."""
STEPS = 12
"""Subgradient steps per grid point."""


def coupled_energy(view: EdgeView, parts: EdgeParts, r: int, t: float, start: float) -> float:
    """max over the subgradient steps of L(t) for root r (see the module doc; inf: no cover delivers by t).
    start: the energy scale of the first steps (the ladder's energy by t)."""
    p, d = view.problem, view.dev
    room = t - float(parts.up[r])
    if room <= 0:
        return math.inf
    mem_k, mem_m = p.memory_bytes[d], p.module_memory_bytes
    members = parts.members.astype(float)
    allowed = []
    for m, ok in zip(parts.need, parts.covers, strict=True):
        fast = parts.deliver[:, m, r] <= room * (1 + 1e-12)
        use = ok & (parts.members <= fast[None, :]).all(axis=1)
        if not use.any():
            return math.inf
        allowed.append(np.flatnonzero(use))
    mu, nu = np.zeros(view.n), np.zeros(view.n)
    scale = max(start, 1e-300)
    best = -math.inf
    for step in range(STEPS):
        total = float(parts.up_energy[r]) - float(mu @ np.full(view.n, room)) - float(nu @ mem_k)
        load_t, load_m = np.zeros(view.n), np.zeros(view.n)
        for m, rows, energy in zip(parts.need, allowed, parts.energy, strict=True):
            price = mu * parts.deliver[:, m, r] + nu * mem_m[m]
            val = energy[rows, r] + members[rows] @ price
            j = int(np.argmin(val))
            total += float(val[j])
            held = parts.members[rows[j]]
            load_t += held * parts.deliver[:, m, r]
            load_m += held * mem_m[m]
        best = max(best, total)
        rate = 0.2 / (1.0 + step / 3.0)
        mu = np.maximum(0.0, mu + rate * scale / room * (load_t / room - 1.0))
        nu = np.maximum(0.0, nu + rate * scale / mem_k * (load_m / mem_k - 1.0))
    return best


def coupled_value(view: EdgeView, parts: EdgeParts, r: int, pairs: tuple[np.ndarray, np.ndarray], t_lb: float,
                  lam: float, upper: float) -> float:
    """A bound on T + lam E over the plans rooted at r that is at least min(the ladder's, upper) (module doc);
    pairs: r's ladder pairs (t ascending), upper: the incumbent's objective."""
    ts, es = pairs
    if ts.size == 0:
        return math.inf
    top = upper - lam * float(es[-1])
    if not t_lb < top:
        return min(float(np.min(ts + lam * es)), upper)
    grid = np.linspace(t_lb, top, GRID + 1)
    best = upper
    for k in range(GRID):
        lo, hi = float(grid[k]), float(grid[k + 1])
        if lo >= best:
            break
        inside = ts[(ts > lo) & (ts < hi)]
        points = np.concatenate([[lo], inside])
        at = np.searchsorted(ts, points, side="right") - 1
        ladder_e = np.where(at >= 0, es[np.maximum(at, 0)], math.inf)
        start = float(es[max(int(np.searchsorted(ts, hi, side="right")) - 1, 0)])
        coupled = coupled_energy(view, parts, r, hi, start)
        best = min(best, float(np.min(points + lam * np.maximum(ladder_e, coupled))))
    return best
