"""One device's least energy for a module subset when power and frequency are decisions, with compute and upload
sharing one window: the column price of the subset-column LP (solvers/subset_energy.py) in that mode.

A device trains C cycles in tau, then its P bits go up within the rest of its window W (the latency T, less a D2D
hop's time for a relayed subset): tau + t <= W. At band price nu (J per Hz) it spends at least
    F(tau) = kappa C max(f_min, C / tau)^2 + P k(W - tau, nu),   tau in [C / f_max, min(W, C / f_min)],
with k(t, nu) = min_x c0 E1(x) + nu / (x t) the per-bit upload price of solvers/powerfreq_bound.py (power free,
c0 = N0 / g of the uploader). Pricing compute and upload each with the whole window (as the per-module knapsack
does) lets both take it; this price makes them share it.

Closed form along the optimal spectral efficiency. k's minimizer y = x ln2 solves K(y) = nu / (c0 t),
K(y) = 1 + e^y (y - 1) increasing, and there k = c0 ln2 e^y (c0 E1 + c0 K ln2 / y = c0 ln2 (e^y - 1 + K) / y).
So with t(y) = nu / (c0 K(y)) decreasing and tau(y) = W - t(y) increasing in y,
    f(y) = kappa C max(f_min, C / tau(y))^2 + P c0 ln2 e^y = F(tau(y)),
needs no inner search. F is convex on (0, W) (kappa C^3 / tau^2 and the constant are convex; k(t) is a partial
minimum of c0 E1(x) + nu / (x t), jointly convex in (x, t)), so f is unimodal in y, and the sign of f' (`_bracket`:
false position on ln y) keeps a minimizer in a bracket [y_a, y_b]; on it tau <= tau(y_b) and e^y >= e^(y_a), so
    min F >= kappa C max(f_min, C / tau(y_b))^2 + P c0 ln2 e^(y_a)
whatever the number of steps. The search range comes from y at the two ends of the tau range (solvers/
powerfreq_bound.py `y_bracket`), taken on their outer sides (a slightly larger range: still a minimum over a
superset). The golden section on f it replaces took 34 steps (and 40 bisections per end) for what 6 Newton and
10-20 false-position steps give: the bound's column prices in 0.4-0.5x the CPU time, the same to 1e-5. nu = 0:
the band is free, k = c0 ln2 and compute takes the whole window. p <= p_max and b <= B_e are dropped (the LP
prices the band).
"""

from __future__ import annotations

import math

import numpy as np

from solvers.evaluate import LN2
from solvers.powerfreq_bound import Y_HI, Y_LO, k_func, y_bracket


def column_energy(kappa: float, cycles: np.ndarray, f_min: np.ndarray, f_max: np.ndarray, c0: np.ndarray,
                  bits: np.ndarray, window: np.ndarray, nu: float, steps: int = 20,
                  span: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(certified lower bound on min_tau F(tau) in J, band charge nu b included; the band b in Hz near the
    minimizer; a lower bound on the slope -d/dW of the least F, J per s), elementwise (module doc): `cycles` C
    trained at f in [f_min, f_max], then `bits` P uploaded at c0 = N0 / g, all within `window` W; inf where
    C / f_max >= W (nothing left for the upload). `steps`: steps of the bracketing search (`_bracket`). `span`:
(lo, hi), the compute time tau restricted to [lo, hi] besides its own range (F is convex in tau, so the least F on
the meet is the same search on a smaller range: solvers/powerfreq_buckets.py's upload-start buckets); inf where
the meet is empty.

    The slope: the least F is convex and decreasing in W, so F*(W') >= F*(W) + slope (W - W') for W' < W, a tangent
    the latency search uses (solvers/subset_energy.py `tangent_energy`). By the envelope theorem dF*/dW = P k_t at
    the optimum, and k_t = -nu ln2 / (y t^2) = -ln2 c0^2 K(y)^2 / (nu y) there, increasing in magnitude with y
    (d ln(K^2 / y) / dy = 2 y e^y / K - 1 / y > 0), so its value at the least y the optimum can have is a lower
    bound; without bits it is that of kappa C^3 / W^2 while W < C / f_min, else 0."""
    c, pay, w_all = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(cycles, bits, window))
    f_min, f_max, c0 = (np.broadcast_to(np.asarray(v, dtype=float), c.shape) for v in (f_min, f_max, c0))
    tau_min = c / f_max
    ok = (w_all > 0) & (tau_min < w_all)
    if span is not None:  # the meet with [lo, hi]: past C / f_min F rises, so the top is then tau_min at the latest
        lo_, hi_ = (np.broadcast_to(np.asarray(v, dtype=float), c.shape) for v in span)
        tau_min = np.maximum(tau_min, lo_)
        ok &= (tau_min < w_all) & (tau_min <= hi_)
        cap = np.maximum(tau_min, np.minimum(c / f_min, hi_))
    w = np.where(ok, w_all, 1.0)
    tau_top = np.minimum(w, c / f_min)  # computing longer than at f_min saves nothing
    if span is not None:
        tau_top = np.minimum(w, cap)

    def comp(tau: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.maximum(f_min, np.where(tau > 0, c / np.where(tau > 0, tau, 1.0), np.inf))
            return np.where(c > 0, kappa * c * f * f, 0.0)

    with np.errstate(divide="ignore", invalid="ignore"):
        flat = np.where(w < c / f_min, 2.0 * kappa * c ** 3 / w ** 3, 0.0)  # compute alone in the whole window
    if span is not None:
        flat = np.where(tau_top < w, 0.0, flat)  # within the span, not the window: 0 (the cost never rises in W)
    if nu <= 0 or not np.any(ok & (pay > 0)):  # free band (or nothing to send): compute takes the whole window
        out = comp(tau_top) + pay * c0 * LN2
        band = np.where(pay > 0, np.inf if nu <= 0 else 0.0, 0.0)
        return np.where(ok, out, np.inf), band, np.where(ok, flat, 0.0)
    # y at the two ends of the tau range, outer sides: y_a <= y(t = W - tau_min), y_b >= y(t = W - tau_top)
    with np.errstate(divide="ignore", over="ignore"):
        r_a = nu / (c0 * (w - tau_min))
        r_b = np.where(w - tau_top > 0, nu / (c0 * np.maximum(w - tau_top, 1e-300)), np.inf)
    y_lo, y_hi = y_bracket(np.concatenate([r_a, r_b]))
    y_a = np.maximum(y_lo[:c.size], Y_LO)
    y_b = np.maximum(y_hi[c.size:], y_a)
    lo, hi = _bracket(kappa * c ** 3 * nu / c0, c / f_min, pay * c0 * LN2, w, nu / c0, np.log(y_a), np.log(y_b),
                      steps)
    ya, yb = np.exp(lo), np.exp(hi)
    floor = np.where(lo <= math.log(Y_LO), 0.0, ya)  # at the range's clipped end: y in (0, Y_LO) too, e^y >= 1
    bound = comp(w - nu / (c0 * k_func(yb))) + pay * c0 * LN2 * y_exp(floor)
    ym = np.sqrt(ya * yb)
    t_m = nu / (c0 * k_func(ym))
    band = np.where(pay > 0, pay * LN2 / (ym * t_m), 0.0)
    # the least y the optimum may have: the bracket's low end, or y at tau_top (from below) if that is lower
    y_s = np.minimum(np.where(lo <= math.log(Y_LO), 0.0, ya), y_lo[c.size:])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ks = k_func(y_s)
        slope = np.where(y_s > 0, pay * LN2 * c0 * c0 * ks * ks / (nu * np.where(y_s > 0, y_s, 1.0)), 0.0)
    # no bits: compute alone, the whole window
    out = np.where(pay > 0, bound, comp(tau_top))
    slope = np.where(pay > 0, np.where(np.isfinite(slope), slope, 0.0), flat)
    return np.where(ok, out, np.inf), np.where(ok, band, 0.0), np.where(ok, slope, 0.0)


def _bracket(q: np.ndarray, tau_f: np.ndarray, a: np.ndarray, w: np.ndarray, v: np.ndarray, lo: np.ndarray,
             hi: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """A bracket [lo, hi] of ln y holding a minimizer of f(y) = kappa C max(f_min, C / tau(y))^2 + A e^y on the
    range [lo, hi] (elementwise; q = kappa C^3 nu / c0, tau_f = C / f_min, a = A = P c0 ln2, v = nu / c0,
    tau(y) = W - v / K(y)). f'(y) = e^y s(y) with s(y) = A - 2 q y / (tau^3 K^2) while C / tau > f_min and s = A
    past it; s increases with y (tau rises and y / K^2 falls: K - 2 y K' = 1 + e^y (y - 1 - 2 y^2) < 0 for y > 0),
    so f falls while s < 0 and rises after: the minimizer is the range's end where s keeps one sign, else the root
    of s, which false position with the Illinois rule brackets (both sides shrink: 20 steps put the bracket within
    1e-12 of the root where the golden section took 34 for 1e-7 of the range). Any bracket whose ends' signs hold
    it is valid (the caller bounds f on it from below), whatever the number of steps."""
    with np.errstate(divide="ignore"):
        base = np.log(a) - np.log(2.0 * np.maximum(q, 1e-300))
    s_lo, s_hi = _sign(lo, base, w, v, tau_f), _sign(hi, base, w, v, tau_f)
    at_lo = s_lo >= 0  # f rises on the whole range: its minimum is at lo
    lo_out = lo.copy()
    hi_out = np.where(at_lo, lo, hi)
    down = ~at_lo & (s_hi <= 0)  # f falls on the whole range: at hi
    lo_out[down] = hi[down]
    act = np.flatnonzero(~at_lo & (s_hi > 0))  # the elements still searched
    base, w, v, tau_f = base[act], w[act], v[act], tau_f[act]
    lo, hi, s_lo, s_hi = lo[act], hi[act], s_lo[act], s_hi[act]
    last = np.zeros(act.size, dtype=bool)  # the previous step moved lo
    for k in range(steps):
        if act.size == 0:
            break
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            m = hi - s_hi * (hi - lo) / (s_hi - s_lo)
        if k % 4 == 3:  # a bisection every 4th step: the bracket shrinks whatever the shape
            m = 0.5 * (lo + hi)
        else:
            m = np.where((m > lo) & (m < hi), m, 0.5 * (lo + hi))
        sm = _sign(m, base, w, v, tau_f)
        left = sm < 0  # the root is to the right of m
        # Illinois: the end kept twice running has its value halved (the next guess moves toward it)
        s_hi = np.where(left & last, 0.5 * s_hi, s_hi)
        if k:
            s_lo = np.where(~left & ~last, 0.5 * s_lo, s_lo)
        lo, s_lo = np.where(left, m, lo), np.where(left, sm, s_lo)
        hi, s_hi = np.where(left, hi, m), np.where(left, s_hi, sm)
        last = left
        if k % 3 == 2:  # the converged leave the search
            done = hi - lo <= 1e-11 * np.maximum(1.0, np.abs(lo))
            if np.any(done):
                lo_out[act[done]], hi_out[act[done]] = lo[done], hi[done]
                keep = ~done
                act, base, w, v, tau_f = act[keep], base[keep], w[keep], v[keep], tau_f[keep]
                lo, hi, s_lo, s_hi, last = lo[keep], hi[keep], s_lo[keep], s_hi[keep], last[keep]
    lo_out[act], hi_out[act] = lo, hi
    return lo_out, hi_out


def _sign(u: np.ndarray, base: np.ndarray, w: np.ndarray, v: np.ndarray, tau_f: np.ndarray) -> np.ndarray:
    """ln(A tau^3 K^2 / (2 q y)) at y = e^u, base = ln(A / (2 q)): the sign of s(y) (`_bracket`), near linear in u
    (false position converges on it where s itself spans hundreds of orders of magnitude); past C / f_min, s = A."""
    kk = k_func(np.exp(u))
    tau = w - v / np.maximum(kk, 1e-300)
    val = base + 3.0 * np.log(np.maximum(tau, 1e-300)) + 2.0 * np.log(np.maximum(kk, 1e-300)) - u
    return np.where(tau >= tau_f, np.maximum(val, 1e-3), val)


def y_exp(y: np.ndarray) -> np.ndarray:
    """e^y, capped at e^Y_HI (beyond it the price is never the least)."""
    return np.exp(np.minimum(y, Y_HI))
