"""Certified lower bounds for aggregation-tree plans (instances with tree_aggregation), valid for every tree plan.

Per edge and per candidate root r (no enumeration, any size):
  - the root uploads at least the union of the modules the edge must cover (coverage demand > 0), U_e bits, over
    the whole band: c_r = U_e / R_r(B_e) seconds and p_r c_r joules;
  - module m must reach the root: it is computed on devices whose samples meet the demand, and each such device k
    computes it for at least n_k c_m / f_k and its bits travel the D2D path to r at least 8 s_m sp(k, r) seconds
    (sp: the shortest path on 1 / rate, since every hop carries the union, a superset of m). Sorting the devices by
    that arrival, the coverage is met only once their samples reach the demand: theta_m(r). The root is ready no
    earlier than max_m theta_m(r), so T_e >= max_m theta_m(r) + c_r; sharper, over the subsets S the root itself
    holds: its compute of S (the modules add up on one device), theta with the root's samples counted at no delay
    for m in S, theta without the root for m not in S;
  - energy: every placed module is computed (kappa n c f^2), and off the root it leaves its device over at least one
    D2D hop (p^d2d 8 s_m / rate, cheapest link); a knapsack per module (memory dropped; binary: the least-cost minimal
    cover where the holders are few), plus p_r c_r.
So every plan of the edge with root r has T_e >= T_lb(r) and E_e >= E_lb(r). The round's bound picks one (T, E)
pair per edge the way an exact choice would (`threshold_value`): valid because the optimum's roots give such pairs.
Edges enumerated exactly contribute their true (finish, energy) candidates instead.
"""

from __future__ import annotations

import math

import numpy as np

from solvers.covers import LP_COVER_HOLDERS, cover_sets
from solvers.edgebatch import EdgeView
from solvers.evaluate import uplink_rate

DENSE_MAX = 400
"""Edges above this many devices skip the shortest paths (sp = 0) and the per-root energy (weaker, still valid)."""
SUBSET_MAX = 256
"""The root's module subsets are enumerated up to this many (8 demanded modules)."""


def shortest_paths(view: EdgeView) -> np.ndarray:
    """[n, n] sp[k, r]: least sum of 1 / rate along D2D links from k to r (inf if unreachable, 0 on the diagonal)."""
    from scipy.sparse.csgraph import dijkstra  # imported here: start-up of the other modes stays light

    w = np.where(view.rate > 0, 1.0 / np.where(view.rate > 0, view.rate, 1.0), 0.0)
    return np.asarray(dijkstra(w, directed=True))


def _covered_at(arrive: np.ndarray, samples: np.ndarray, demand: float) -> np.ndarray:
    """[R] per row of arrive [R, K]: the least theta such that the devices arriving by theta have samples >= demand
    (inf if none do)."""
    order = np.argsort(arrive, axis=1, kind="stable")
    cum = np.cumsum(samples[order], axis=1)
    hit = cum >= demand * (1 - 1e-12)
    first = np.argmax(hit, axis=1)
    val = np.take_along_axis(arrive, order, axis=1)[np.arange(arrive.shape[0]), first]
    return np.where(hit.any(axis=1), val, math.inf)


def _knapsack(cost: np.ndarray, samples: np.ndarray, demand: float) -> np.ndarray:
    """[R] per row of cost [R, K] >= 0: min sum_k cost_k x_k s.t. sum_k n_k x_k >= demand, 0 <= x <= 1 (the greedy
    by cost per sample is optimal), and with x binary where the holders are few (LP_COVER_HOLDERS): the least cost
    of a minimal cover (the trainers of a module in any plan hold one; costs are nonnegative); inf if the samples
    fall short. samples [K] > 0."""
    order = np.argsort(cost / samples[None, :], axis=1, kind="stable")
    n = samples[order]
    c = np.take_along_axis(cost, order, axis=1)
    before = np.cumsum(n, axis=1) - n
    frac = np.clip((demand - before) / n, 0.0, 1.0)
    total = (frac * c).sum(axis=1)
    covers = cover_sets(samples, demand, LP_COVER_HOLDERS)
    if covers.shape[0]:
        total = np.maximum(total, np.where(covers[None, :, :], cost[:, None, :], 0.0).sum(axis=2).min(axis=1))
    return np.where(samples.sum() >= demand * (1 - 1e-12), total, math.inf)


def edge_root_bounds(view: EdgeView) -> tuple[np.ndarray, np.ndarray]:
    """(T_lb [n], E_lb [n]): per candidate root r of the edge, lower bounds on its finish and energy over every tree
    plan rooted at r (inf where r cannot be the root: some device has no D2D path to it)."""
    p, d, n = view.problem, view.dev, view.n
    need = np.flatnonzero(view.demand > 0)
    bits_e = 8.0 * float(p.module_bytes[need].sum())
    band = np.full(n, p.edge_bandwidth_hz[view.edge])
    up = bits_e / uplink_rate(band, p.snr_hz[d]) if bits_e > 0 else np.zeros(n)
    dense = n <= DENSE_MAX
    sp = shortest_paths(view) if dense else np.zeros((n, n))  # sp[k, r]
    reach = np.isfinite(sp).all(axis=0)  # r is a possible root: every device reaches it
    can = (p.eligible[d] & (p.samples[d] > 0)[:, None]
           & (p.module_memory_bytes[None, :] <= p.memory_bytes[d][:, None]))  # [n, M]
    n_k = p.samples[d].astype(float)
    tau = n_k[:, None] * p.module_cycles[None, :] / p.cpu_hz[d][:, None]  # [n, M]
    # energy: compute at the nominal frequency (fixed on trees), one D2D hop off the root at the cheapest link
    comp = p.kappa * n_k[:, None] * p.module_cycles[None, :] * p.cpu_hz[d][:, None] ** 2
    with np.errstate(divide="ignore"):
        per_bit = np.where(view.rate > 0, p.d2d_power_w[d][:, None] / np.where(view.rate > 0, view.rate, 1.0), np.inf)
    hop_j = per_bit.min(axis=1, initial=np.inf)
    hop_j = np.where(np.isfinite(hop_j), hop_j, 0.0) if dense else np.zeros(n)  # isolated: only the root (n = 1)
    off_root = ~np.eye(n, dtype=bool)  # [r, k]
    energy = np.zeros(n)
    th_in, th_out = np.zeros((n, need.size)), np.zeros((n, need.size))  # [r, m]: the root holds m / does not
    for j, m in enumerate(need):
        ok = can[:, m]
        bits = 8.0 * float(p.module_bytes[m])
        arrive = tau[ok, m][None, :] + bits * sp[ok].T  # [r, k]
        # with m on the root, its own compute is counted apart (below): it arrives at 0 here
        th_in[:, j] = _covered_at(np.where(off_root[:, ok], arrive, 0.0), n_k[ok], float(view.demand[m]))
        th_out[:, j] = _covered_at(np.where(off_root[:, ok], arrive, math.inf), n_k[ok], float(view.demand[m]))
        cost = comp[ok, m][None, :] + bits * hop_j[ok][None, :] * off_root[:, ok]
        energy += _knapsack(cost, n_k[ok], float(view.demand[m]))
    t_lb = np.where(reach, _root_ready(view, need, can, tau, th_in, th_out) + up, math.inf)
    e_lb = np.where(reach, energy + p.tx_power_w[d] * up, math.inf)
    return t_lb, e_lb


def _root_ready(view: EdgeView, need: np.ndarray, can: np.ndarray, tau: np.ndarray, th_in: np.ndarray,
                th_out: np.ndarray) -> np.ndarray:
    """[r] the root's ready time at least: over the subsets S the root may hold (memory), the least of
    max(its compute of S, max_{m in S} th_in, max_{m not in S} th_out); the root's modules add up, which a bound per
    module alone misses. Over SUBSET_MAX subsets: min(th_in with the root at its own time, th_out) per module."""
    p, d, n = view.problem, view.dev, view.n
    if need.size == 0:
        return np.zeros(n)
    if 2 ** need.size > SUBSET_MAX:
        own = np.maximum(th_in, tau[:, need])
        return np.where(can[:, need], np.minimum(own, th_out), th_out).max(axis=1)
    sub = ((np.arange(2 ** need.size)[:, None] >> np.arange(need.size)[None, :]) & 1).astype(bool)  # [S, m]
    fits = (~sub[None, :, :] | can[:, need][:, None, :]).all(axis=2)  # [r, S]
    fits &= sub.astype(float) @ p.module_memory_bytes[need] <= p.memory_bytes[d][:, None] * (1 + 1e-12)
    compute = tau[:, need] @ sub.T.astype(float)  # [r, S]
    wait = np.where(sub[None, :, :], th_in[:, None, :], th_out[:, None, :]).max(axis=2)
    return np.where(fits, np.maximum(compute, wait), math.inf).min(axis=1)


def pareto(finish: np.ndarray, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (finish, energy) pairs no other pair beats in both, finish ascending (energy then descending)."""
    f, e = np.asarray(finish, dtype=float), np.asarray(energy, dtype=float)
    keep = np.isfinite(f) & np.isfinite(e)
    f, e = f[keep], e[keep]
    order = np.lexsort((e, f))
    f, e = f[order], e[order]
    front = np.concatenate([[True], np.minimum.accumulate(e)[:-1] > e[1:]]) if f.size else np.zeros(0, dtype=bool)
    return f[front], e[front]


def threshold_value(finish: list[np.ndarray], energy: list[np.ndarray], lam: float) -> float:
    """min over one pair per edge of max finish + lam sum energy (exact over the pairs given; inf if an edge has
    none finite): the optimal max is one of the finishes, and at threshold t each edge takes its least energy
    among the pairs finishing by t (the last point of its Pareto front at or before t)."""
    fronts = [pareto(f, e) for f, e in zip(finish, energy, strict=True)]
    if not fronts:
        return 0.0
    if any(f.size == 0 for f, _ in fronts):
        return math.inf
    floor = max(float(f[0]) for f, _ in fronts)
    if lam == 0:
        return floor
    ts = np.unique(np.concatenate([f for f, _ in fronts]))
    ts = ts[ts >= floor]
    total = np.zeros(ts.size)
    for f, e in fronts:
        total += e[np.searchsorted(f, ts, side="right") - 1]
    return float(np.min(ts + lam * total))
