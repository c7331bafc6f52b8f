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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from solvers.clock import now, set_limits
from solvers.edgebatch import EdgeView
from solvers.evaluate import uplink_rate
from solvers.highs import bare_highs, run
from solvers.tree_bound import shortest_paths
from solvers.tree_energy import EdgeParts
from solvers.tree_model import device_subsets

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
                  lam: float, upper: float, floor: float = -math.inf) -> float:
    """A bound on T + lam E over the plans rooted at r that is at least min(the ladder's, upper) (module doc);
    pairs: r's ladder pairs (t ascending), upper: the incumbent's objective, floor: a bound on T of these plans
    above t_lb (the grid still starts at t_lb, each point counts at least floor)."""
    ts, es = pairs
    if ts.size == 0:
        return math.inf
    top = upper - lam * float(es[-1])
    if not t_lb < top:
        return min(float(np.min(np.maximum(ts, floor) + lam * es)), upper)
    grid = np.linspace(t_lb, top, GRID + 1)
    best = upper
    for k in range(GRID):
        lo, hi = float(grid[k]), float(grid[k + 1])
        if max(lo, floor) >= best:
            break
        inside = ts[(ts > lo) & (ts < hi)]
        points = np.concatenate([[lo], inside])
        at = np.searchsorted(ts, points, side="right") - 1
        points = np.maximum(points, floor)
        ladder_e = np.where(at >= 0, es[np.maximum(at, 0)], math.inf)
        start = float(es[max(int(np.searchsorted(ts, hi, side="right")) - 1, 0)])
        coupled = coupled_energy(view, parts, r, hi, start)
        best = min(best, float(np.min(points + lam * np.maximum(ladder_e, coupled))))
    return best


@dataclass(frozen=True)
class LatencyColumns:
    """Per device and memory-feasible subset S of its demanded modules (solvers/tree_model.py's columns): its
    compute time, bits and samples per module, for the coupled latency bound."""

    device: np.ndarray  # [C]
    compute: np.ndarray  # [C] seconds
    bits: np.ndarray  # [C]
    cover: np.ndarray  # [m, C] samples the column gives each demanded module
    demand: np.ndarray  # [m]
    sp: np.ndarray  # [k, r] shortest D2D path (sum of 1 / rate)
    up: np.ndarray  # [r] the root's upload time c_r
    modules: np.ndarray  # [C, M] bool: the column's subset


def latency_columns(view: EdgeView) -> LatencyColumns | None:
    """The edge's columns; None where a device has too many subsets."""
    p, d = view.problem, view.dev
    subs = device_subsets(view)
    if subs is None:
        return None
    need = np.flatnonzero(view.demand > 0)
    device = np.concatenate([np.full(len(s), k) for k, s in enumerate(subs)])
    rows = np.concatenate(subs).astype(float)
    n_k = p.samples[d][device].astype(float)
    bits_e = 8.0 * float(p.module_bytes[need].sum())
    up = bits_e / uplink_rate(np.full(view.n, p.edge_bandwidth_hz[view.edge]), p.snr_hz[d]) if need.size else \
        np.zeros(view.n)
    return LatencyColumns(device, n_k * (rows @ p.module_cycles) / p.cpu_hz[d][device], 8.0 * (rows @ p.module_bytes),
                          (rows[:, need] * n_k[:, None]).T, view.demand[need], shortest_paths(view), up, rows > 0)


def coupled_latency(view: EdgeView, cols: LatencyColumns, r: int, t_lb: float, top: float = math.inf,
                    until: float | None = None, on_pick: Callable[[np.ndarray], None] | None = None) -> float:
    """A bound on T over the plans rooted at r, at least t_lb: the least t at which each device can pick one column
    (fractionally: an LP) whose compute plus its bits along the shortest D2D path to r plus c_r is at most t and the
    columns cover the demand (every plan rooted at r finishing by t gives such a pick). Bisection over the columns'
    own times up to `top` (no pick by top: top, every plan has T above it). With `until` (a time on the solve's
    clock), the same test with integer columns (one whole column per device, as a plan picks; a MILP) goes on up
    from the LP's answer until then: feasibility changes only at the columns' times, so the step after the last
    one proven infeasible bounds T whenever time runs out. on_pick(x [n, M]) gets each integer pick found (a
    placement that covers the demand within memory: the caller may try it as a plan)."""
    import highspy

    if not math.isfinite(t_lb):
        return t_lb
    when = cols.compute + cols.bits * cols.sp[cols.device, r] + float(cols.up[r])
    points = np.concatenate([[t_lb], np.unique(when[(when > t_lb) & (when <= top)])])
    fast = bare_highs()
    h = (fast[1] if fast is not None else highspy.Highs)()  # the bare class prints no banner
    h.setOptionValue("output_flag", False)
    size = when.size
    h.addCols(size, np.zeros(size), np.zeros(size), np.ones(size), 0, np.zeros(size, dtype=np.int32),
              np.zeros(0, dtype=np.int32), np.zeros(0))
    a = np.concatenate([(cols.device[None, :] == np.arange(view.n)[:, None]).astype(float), cols.cover])
    nz = a != 0
    inf = highspy.kHighsInf
    h.addRows(a.shape[0], np.concatenate([np.full(view.n, -inf), cols.demand * (1 - 1e-9)]),
              np.concatenate([np.ones(view.n), np.full(cols.demand.size, inf)]), int(nz.sum()),
              np.concatenate([[0], np.cumsum(nz.sum(axis=1))[:-1]]).astype(np.int32),
              np.nonzero(nz)[1].astype(np.int32), a[nz])
    idx = np.arange(size, dtype=np.int32)
    stop = math.inf if until is None else until

    def feasible(k: int) -> bool | None:
        """Is there a pick by points[k]? None: unsure (the MILP's limit)."""
        h.changeColsBounds(size, idx, np.zeros(size), (when <= points[k] * (1 + 1e-12)).astype(float))
        if integer and math.isfinite(stop):
            set_limits(h, stop - now())
        run(h)
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return False
        if integer and on_pick is not None and status == highspy.HighsModelStatus.kOptimal:
            on_pick(_placement(cols, np.asarray(h.getSolution().col_value)[:size], view.n))
        return True if status == highspy.HighsModelStatus.kOptimal or not integer else None

    def bisect(lo: int, hi: int) -> tuple[int, int]:
        """(last infeasible, first feasible) index between lo (infeasible) and hi (feasible); stops where unsure."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok = feasible(mid)
            if ok is None:
                break
            lo, hi = (lo, mid) if ok else (mid, hi)
        return lo, hi

    integer = False
    last = points.size - 1
    if not feasible(last):  # not even at top (the LP: no integer pick either)
        return max(t_lb, top if math.isfinite(top) else float(points[-1]))
    lo, hi = -1, last
    if feasible(0):
        hi = 0
    else:
        lo, hi = bisect(0, last)
    if until is None or now() >= until:
        return float(points[hi])
    integer = True  # the same test with whole columns, from the LP's answer up: galloping, then bisection
    h.changeColsIntegrality(size, idx, np.full(size, highspy.HighsVarType.kInteger))
    step, k = 1, hi
    while True:
        if now() >= stop:
            return float(points[lo + 1])
        ok = feasible(k)
        if ok is None:
            return float(points[lo + 1])
        if ok:
            break
        lo = k
        if k == last:  # no integer pick by top
            return max(t_lb, top if math.isfinite(top) else float(points[-1]))
        k, step = min(k + step, last), 2 * step
    lo, _ = bisect(lo, k)
    return float(points[lo + 1])


def _placement(cols: LatencyColumns, value: np.ndarray, n: int) -> np.ndarray:
    """[n, M] the subsets of an integer pick (per device its column of largest value)."""
    x = np.zeros((n, cols.modules.shape[1]), dtype=bool)
    for k in range(n):
        mine = np.flatnonzero(cols.device == k)
        x[k] = cols.modules[mine[int(np.argmax(value[mine]))]]
    return x


def ladder_value(pairs: tuple[np.ndarray, np.ndarray], t: float, e_lb: float, lam: float) -> float:
    """A bound on T + lam E over the plans rooted at r with T >= t: each dominates one of r's ladder pairs."""
    ts, es = pairs
    return max(t + lam * e_lb, float(np.min(np.maximum(ts, t) + lam * es)) if ts.size else math.inf)


def coupled_root(view: EdgeView, parts: EdgeParts, cols: LatencyColumns, r: int, pairs: tuple[np.ndarray, np.ndarray],
                 t_lb: float, e_lb: float, lam: float, upper: float) -> tuple[float, float]:
    """(T bound, T + lam E bound) of the plans rooted at r: the coupled latency, the ladder from it (every plan
    has T at least that and dominates one of r's pairs) and the coupled ladder; upper: the incumbent's objective."""
    t = max(t_lb, coupled_latency(view, cols, r, t_lb, upper - lam * e_lb))
    value = ladder_value(pairs, t, e_lb, lam)
    return t, max(value, coupled_value(view, parts, r, pairs, t_lb, lam, upper, floor=t))
