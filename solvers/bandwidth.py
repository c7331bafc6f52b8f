"""The convex bandwidth step for fixed placement and relays, solved two independent ways.

1. `bisection_bandwidth` (lambda = 0, exact, fast): bisection on each edge's latency T; for a trial T every
   uploader needs the least b with start + U / R(b) <= T, i.e. R(b) >= q = U / (T - start). R is increasing
   and concave, so that b is R's inverse: with k = q ln2 / a, a / b = y solves ln(1 + y) = k y, i.e.
   y = -W_{-1}(-k e^-k) / k - 1 (a monotone Newton iteration, 3x faster than scipy's complex lambertw).
   T is feasible iff sum b <= B_e.
   Vectorized over all edges at once (each edge bisects its own T).
2. `ConvexBandwidth` (cvxpy, any lambda >= 0): the DPP-parametrized conic program, one compiled problem per
   shape, in scaled units (bandwidth as a fraction of B_e, time in units of the equal-share latency) so
   Clarabel stays accurate. lambda = 0 decomposes by edge; lambda > 0 couples the edges through max T.
"""

from __future__ import annotations

import math

import numpy as np

from solvers.evaluate import LN2, uplink_rate
from solvers.instance import RoundProblem


def min_bandwidth(q: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Least b >= 0 with R(b) = b log2(1 + a / b) >= q; inf when q >= sup R = a / ln 2."""
    q = np.asarray(q, dtype=float)
    a = np.broadcast_to(np.asarray(a, dtype=float), q.shape)
    k = q * LN2 / a
    out = np.full(q.shape, np.inf)
    out[q <= 0] = 0.0
    ok = (k > 0) & (k < 1.0)
    if ok.any():
        out[ok] = a[ok] / _snr_root(np.maximum(k[ok], 1e-300))
    return out


def _snr_root(k: np.ndarray) -> np.ndarray:
    """The root y > 0 of ln(1 + y) = k y, 0 < k < 1 (y = -W_-1(-k e^-k) / k - 1, without complex Lambert W).

    f(y) = ln(1 + y) - k y is concave, so Newton from a y0 right of the root (f(y0) < 0: L = -ln k,
    y0 = 2L / k for every k in (0, 1), (L + ln L + 1) / k once L >= 1) decreases monotonically onto it.
    SNR_NEWTON steps for every entry, so an entry's value does not depend on the others in the batch (the same edge
    gives the same numbers alone or with the whole round, serial or in a pool)."""
    big = -np.log(k)
    y = np.minimum(2.0 * big, big + np.log(np.maximum(big, 1.0)) + 1.0) / k  # both lie right of the root
    for _ in range(SNR_NEWTON):
        y = y - (np.log1p(y) - k * y) / (1.0 / (1.0 + y) - k)
    return np.maximum(y, 1e-300)


SNR_NEWTON = 4
"""Newton steps of `_snr_root`, the same for every entry. From its y0 (within 55 % of the root, 16 % for k <= 0.9)
four steps are within 2.2e-15 of the root Newton converges to, on 10^6 k's spread over (1e-300, 1) and on the 2.4
million of an 8-device edge's energy search; the stop per entry at a step below 1e-13 y it replaced took 4-5 steps
and was within 1e-13, and its compaction of the entries left cost more than the steps (2.6x the CPU); on 1.2 million
k's with 10^5 in (1 - 1e-16, 1) four steps are within 7.7e-14 of it. Newton stays right of the root, so a / y is
never above the least band (up to rounding): a bound that prices bands with it stays valid."""


def min_bandwidth_one(q: float, a: float) -> float:
    """min_bandwidth of one value in plain floats (the same Newton iteration; no numpy overhead per call)."""
    if q <= 0:
        return 0.0
    k = q * LN2 / a
    if not 0 < k < 1.0:
        return math.inf
    k = max(k, 1e-300)
    big = -math.log(k)
    y = min(2.0 * big, big + math.log(max(big, 1.0)) + 1.0) / k
    for _ in range(SNR_NEWTON):
        y -= (math.log1p(y) - k * y) / (1.0 / (1.0 + y) - k)
    return a / max(y, 1e-300)


def _group_max(values: np.ndarray, group: np.ndarray, num_groups: int) -> np.ndarray:
    out = np.zeros(num_groups)
    np.maximum.at(out, group, values)
    return out


def minmax_bandwidth(group: np.ndarray, start: np.ndarray, bits: np.ndarray, a: np.ndarray, budget: np.ndarray,
                     rtol: float = 1e-10, max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Min over b of max_j (start_j + bits_j / R_j(b_j)) per group, sum of b over a group <= budget[g].

    Arrays are per uploader (bits > 0); returns (T per group, b per uploader). Every group's b sums to its
    budget exactly (the search's slack is shared out proportionally, which only shortens uploads).

    Root of F(T) = sum_j h_j(T) - budget per group, with h the least band (min_bandwidth). Each h_j is convex
    decreasing in T (R^-1 convex increasing, q = U / (T - S) convex decreasing), so F is: Newton steps from the
    infeasible side stay infeasible, chords between the two sides land on the feasible side, so both shrink the
    bracket [lo, hi] from their own side (a midpoint is used where either is undefined or progress is slow).
    Stops when hi - lo <= rtol hi, hi feasible, as the bisection it replaces (3-5x fewer evaluations). Each group
    stops on its own: its T does not depend on the other groups.
    """
    g = len(budget)
    count = np.bincount(group, minlength=g)
    if len(group) == 0:
        return np.zeros(g), np.zeros(0)
    share = budget[group] / count[group]
    hi = _group_max(start + bits / uplink_rate(share, a), group, g)
    lo = _group_max(start + bits * LN2 / a, group, g)  # infinite bandwidth: rate -> a / ln 2
    f_lo, s_lo, f_hi = np.full(g, np.inf), np.full(g, np.nan), np.full(g, np.nan)
    width = hi - lo
    active = count > 0
    elem = np.arange(len(group))
    for _ in range(max_iter):
        elem = elem[active[group[elem]]]
        if elem.size == 0:
            break
        act = np.flatnonzero(active)
        lo_a, hi_a, w = lo[act], hi[act], hi[act] - lo[act]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = lo_a - f_lo[act] / s_lo[act]
            chord = hi_a - f_hi[act] * w / (f_hi[act] - f_lo[act])
        mid = lo_a + 0.5 * w
        inside = lo_a + 1e-3 * w, hi_a - 1e-3 * w
        x1 = np.where(np.isfinite(newton) & (newton > inside[0]) & (newton < inside[1]), newton, lo_a + 0.25 * w)
        slow = w > 0.5 * width[act]  # the last step did not halve the bracket: bisect
        x2 = np.where(np.isfinite(chord) & (chord > inside[0]) & (chord < inside[1]) & ~slow, chord, mid)
        width[act] = w
        pos = np.full(g, -1)
        pos[act] = np.arange(act.size)
        gr = pos[group[elem]]
        h, dh = _need_slope(np.concatenate([x1[gr], x2[gr]]), np.tile(start[elem], 2), np.tile(bits[elem], 2),
                            np.tile(a[elem], 2))
        both = np.concatenate([gr, gr + act.size])
        need = np.bincount(both, weights=h, minlength=2 * act.size)
        with np.errstate(invalid="ignore"):
            slope = np.bincount(both, weights=dh, minlength=2 * act.size)
        for x, f, sl in ((x1, need[:act.size], slope[:act.size]), (x2, need[act.size:], slope[act.size:])):
            feasible = f <= budget[act]
            up = feasible & (x < hi[act])
            hi[act] = np.where(up, x, hi[act])
            f_hi[act] = np.where(up, f - budget[act], f_hi[act])
            down = ~feasible & (x > lo[act])
            lo[act] = np.where(down, x, lo[act])
            f_lo[act] = np.where(down, f - budget[act], f_lo[act])
            s_lo[act] = np.where(down, sl, s_lo[act])
        active[act] = (hi[act] - lo[act]) > rtol * np.maximum(hi[act], 1e-300)
    b = _need(hi[group], start, bits, a)
    total = np.bincount(group, weights=b, minlength=g)
    b = b * (budget / np.where(total > 0, total, 1.0))[group]
    t = _group_max(start + bits / uplink_rate(b, a), group, g)
    return np.where(count > 0, t, 0.0), b


def _need_slope(t: np.ndarray, start: np.ndarray, bits: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """h = the least band to finish by t (min_bandwidth, the same floats) and dh/dt (< 0; -inf where h is inf).

    With k = q ln2 / a and y = a / h the root of ln(1 + y) = k y: dy/dk = y / (1/(1+y) - k), dk/dt = -k / (t - S)."""
    slack = t - start
    with np.errstate(divide="ignore"):
        q = np.where(slack > 0, bits / np.where(slack > 0, slack, 1.0), np.inf)
    k = q * LN2 / a
    h, dh = np.full(q.shape, np.inf), np.full(q.shape, -np.inf)
    h[q <= 0], dh[q <= 0] = 0.0, 0.0
    ok = (k > 0) & (k < 1.0)
    if ok.any():
        kk = np.maximum(k[ok], 1e-300)
        y = _snr_root(kk)
        h[ok] = a[ok] / y
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            dh[ok] = a[ok] * kk / (y * (1.0 / (1.0 + y) - kk) * slack[ok])
    return h, dh


def _need(t: np.ndarray, start: np.ndarray, bits: np.ndarray, a: np.ndarray) -> np.ndarray:
    slack = t - start
    with np.errstate(divide="ignore"):
        q = np.where(slack > 0, bits / np.where(slack > 0, slack, 1.0), np.inf)
    return min_bandwidth(q, a)


def bisection_bandwidth(problem: RoundProblem, start: np.ndarray, bits: np.ndarray,
                        uploader: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact min-max-latency bandwidth of a whole round (lambda = 0): (b [N], latency per edge [E])."""
    idx = np.flatnonzero(uploader)
    t, b_up = minmax_bandwidth(problem.device_edge[idx], start[idx], bits[idx], problem.snr_hz[idx],
                               problem.edge_bandwidth_hz)
    b = np.zeros(problem.num_devices)
    b[idx] = b_up
    return b, t


class ConvexBandwidth:
    """cvxpy programs for the bandwidth step, compiled once per shape and re-solved with new parameters."""

    def __init__(self, solver: str = "CLARABEL", options: dict | None = None) -> None:
        self.solver = solver
        self._cache: dict[tuple, tuple] = {}
        self.options = dict(options or {})

    def _program(self, counts: tuple[int, ...], coupled: bool) -> tuple:
        import cvxpy as cp
        import scipy.sparse as sp

        key = (counts, coupled)
        if key in self._cache:
            return self._cache[key]
        k = int(sum(counts))
        v, t = cp.Variable(k, nonneg=True), cp.Variable()
        s, u, c = cp.Parameter(k), cp.Parameter(k, nonneg=True), cp.Parameter(k, nonneg=True)
        sigma = cp.Parameter(k, nonneg=True)
        inv_rate = cp.Variable(k)  # epigraph of 1 / (v ln(1 + c / v)), so that u * inv_rate stays DPP
        cons = [inv_rate >= cp.inv_pos(-cp.rel_entr(v, v + c)), s + cp.multiply(u, inv_rate) <= t]
        rows = np.repeat(np.arange(len(counts)), counts)
        member = sp.csr_matrix((np.ones(k), (rows, np.arange(k))), shape=(len(counts), k))
        cons.append(member @ cp.multiply(sigma, v) <= 1)
        if coupled:
            lp = cp.Parameter(k, nonneg=True)
            prob = cp.Problem(cp.Minimize(t + lp @ inv_rate), cons)
        else:
            lp = None
            prob = cp.Problem(cp.Minimize(t), cons)
        assert prob.is_dpp()
        self._cache[key] = (prob, v, t, s, u, c, sigma, lp)
        return self._cache[key]

    def solve(self, problem: RoundProblem, start: np.ndarray, bits: np.ndarray,
              uploader: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """(b [N], latency per edge [E], worst cvxpy status). lambda = 0: one program per edge."""
        b = np.zeros(problem.num_devices)
        edge_t = np.zeros(problem.num_edges)
        worst = "optimal"
        idx = np.flatnonzero(uploader)
        edge = problem.device_edge[idx]
        order = idx[np.argsort(edge, kind="stable")]
        edges_used, counts = np.unique(problem.device_edge[order], return_counts=True)
        if problem.lam > 0 and order.size:
            groups = [(edges_used, order, tuple(int(v) for v in counts), True)]
        else:
            splits = np.split(order, np.cumsum(counts)[:-1]) if order.size else []
            groups = [(np.array([e]), sel, (len(sel),), False) for e, sel in zip(edges_used, splits, strict=True)]
        for edges_g, sel, cnt, coupled in groups:
            budget = problem.edge_bandwidth_hz[problem.device_edge[sel]]
            a = problem.snr_hz[sel]
            ts = float(np.max(start[sel] + bits[sel] / uplink_rate(budget / np.repeat(cnt, cnt), a)))
            prob, v, t, s, u, c, sigma, lp = self._program(cnt, coupled)
            # Units: time / ts, bandwidth b = B_e * sigma_j * v_j with sigma_j a rough guess of b_j / B_e
            # (fixed-point of the high-SNR rate at the equal-share latency), so v = O(1) and c = O(1..1e3).
            q = bits[sel] * LN2 / (budget * np.maximum(ts - start[sel], 1e-9 * ts))
            ratio = a / budget
            guess = q.copy()
            for _ in range(8):
                guess = q / np.log1p(ratio / guess)
            sig = np.clip(guess, 1e-12, 1.0)
            s.value = start[sel] / ts
            u.value = bits[sel] * LN2 / (budget * ts * sig)
            c.value = ratio / sig
            sigma.value = sig
            if lp is not None:
                lp.value = problem.lam * problem.tx_power_w[sel] * u.value
            prob.solve(solver=self.solver, **self.options)
            if prob.status not in ("optimal", "optimal_inaccurate") or v.value is None:
                raise RuntimeError(f"bandwidth program for edges {edges_g.tolist()}: cvxpy status {prob.status}")
            if prob.status != "optimal":
                worst = prob.status
            frac = np.maximum(np.asarray(v.value), 0.0) * sig
            rows = np.repeat(np.arange(len(cnt)), cnt)
            tot = np.bincount(rows, weights=frac)
            frac = frac / np.where(tot > 0, tot, 1.0)[rows]  # use all of B_e (only helps), never more
            b[sel] = frac * budget
            fin = start[sel] + bits[sel] / uplink_rate(b[sel], a)
            np.maximum.at(edge_t, problem.device_edge[sel], fin)
        return b, edge_t, worst
