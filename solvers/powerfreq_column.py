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
minimum of c0 E1(x) + nu / (x t), jointly convex in (x, t)), so f is unimodal in y and a golden-section search on
ln y keeps a minimizer in its bracket [y_a, y_b]; on it tau <= tau(y_b) and e^y >= e^(y_a), so
    min F >= kappa C max(f_min, C / tau(y_b))^2 + P c0 ln2 e^(y_a)
whatever the number of steps. The search range comes from bisections for y at the two ends of the tau range,
taken on their outer sides (a slightly larger range: still a minimum over a superset). nu = 0: the band is free,
k = c0 ln2 and compute takes the whole window. p <= p_max and b <= B_e are dropped (the LP prices the band).
"""

from __future__ import annotations

import math

import numpy as np

from solvers.evaluate import LN2
from solvers.powerfreq_bound import Y_HI, Y_LO, k_func
from solvers.upload_table import golden_bracket

ENDS = 40
"""Bisection steps for the ends of the search range (outer sides; a wider range lets an optimum at an end, f_max,
see a cheaper upload beyond it: 20 steps lost up to 6e-4 of the price, 40 steps 2e-9)."""


def _y_of(r: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(y_lo, y_hi) with K(y_lo) <= r <= K(y_hi), elementwise (bisection on ln y in [Y_LO, Y_HI]; 0 and Y_HI where r
    lies outside K's range there)."""
    lo = np.full(r.shape, math.log(Y_LO))
    hi = np.full(r.shape, math.log(Y_HI))
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        below = k_func(np.exp(mid)) < r
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    y_lo = np.where(k_func(np.exp(lo)) <= r, np.exp(lo), 0.0)
    return y_lo, np.exp(hi)


def column_energy(kappa: float, cycles: np.ndarray, f_min: np.ndarray, f_max: np.ndarray, c0: np.ndarray,
                  bits: np.ndarray, window: np.ndarray, nu: float, steps: int = 34) -> tuple[np.ndarray, np.ndarray]:
    """(certified lower bound on min_tau F(tau) in J, band charge nu b included; the band b in Hz near the
    minimizer), elementwise
    (module doc): `cycles` C trained at f in [f_min, f_max], then `bits` P uploaded at c0 = N0 / g, all within
    `window` W; inf where C / f_max >= W (nothing left for the upload)."""
    c, pay, w_all = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(cycles, bits, window))
    f_min, f_max, c0 = (np.broadcast_to(np.asarray(v, dtype=float), c.shape) for v in (f_min, f_max, c0))
    tau_min = c / f_max
    ok = (w_all > 0) & (tau_min < w_all)
    w = np.where(ok, w_all, 1.0)
    tau_top = np.minimum(w, c / f_min)  # computing longer than at f_min saves nothing

    def comp(tau: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.maximum(f_min, np.where(tau > 0, c / np.where(tau > 0, tau, 1.0), np.inf))
            return np.where(c > 0, kappa * c * f * f, 0.0)

    if nu <= 0 or not np.any(ok & (pay > 0)):  # free band (or nothing to send): compute takes the whole window
        out = comp(tau_top) + pay * c0 * LN2
        band = np.where(pay > 0, np.inf if nu <= 0 else 0.0, 0.0)
        return np.where(ok, out, np.inf), band
    # y at the two ends of the tau range, outer sides: y_a <= y(t = W - tau_min), y_b >= y(t = W - tau_top)
    with np.errstate(divide="ignore", over="ignore"):
        r_a = nu / (c0 * (w - tau_min))
        r_b = np.where(w - tau_top > 0, nu / (c0 * np.maximum(w - tau_top, 1e-300)), np.inf)
    y_lo, y_hi = _y_of(np.concatenate([r_a, r_b]), ENDS)
    y_a = np.maximum(y_lo[:c.size], Y_LO)
    y_b = np.maximum(y_hi[c.size:], y_a)

    def f(u: np.ndarray) -> np.ndarray:
        y = np.exp(u)
        return comp(w - nu / (c0 * k_func(y))) + pay * c0 * LN2 * y_exp(y)

    lo, hi = golden_bracket(f, np.log(y_a), np.log(y_b), steps)
    ya, yb = np.exp(lo), np.exp(hi)
    floor = np.where(lo <= math.log(Y_LO), 0.0, ya)  # at the range's clipped end: y in (0, Y_LO) too, e^y >= 1
    bound = comp(w - nu / (c0 * k_func(yb))) + pay * c0 * LN2 * y_exp(floor)
    ym = np.sqrt(ya * yb)
    t_m = nu / (c0 * k_func(ym))
    band = np.where(pay > 0, pay * LN2 / (ym * t_m), 0.0)
    # no bits: compute alone, the whole window
    out = np.where(pay > 0, bound, comp(tau_top))
    return np.where(ok, out, np.inf), np.where(ok, band, 0.0)


def y_exp(y: np.ndarray) -> np.ndarray:
    """e^y, capped at e^Y_HI (beyond it the price is never the least)."""
    return np.exp(np.minimum(y, Y_HI))
