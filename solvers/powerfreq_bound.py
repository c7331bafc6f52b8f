"""Least energies when uplink power and CPU frequency are decisions: the pieces of the latency-energy bound
(solvers/energy_bound.py) that stay valid whatever p <= p_max and f in [f_min, f_max] a plan picks.

Upload. Sending U bits in a window t over band b needs p >= (N0 b / g)(2^(U/w) - 1) with w = b t, so the energy is
at least (N0/g) w (2^(U/w) - 1) = c0 U E1(x), x = U / w, E1(x) = (2^x - 1) / x (c0 = N0 / g; increasing in x:
more bits per hertz-second cost more per bit). A plan of latency <= T has t <= T, so the band b >= U / (x T), and
at a band price nu (J per Hz, solvers/energy_bound.py) every uploaded bit costs at least
    k(T, nu) = min_{x > 0} c0 E1(x) + nu / (x T),
for any U (own bits and relayed bits alike: the bound does not depend on how many bits share the upload). The
function is convex in x (E1 is the mean of 2^(x s) ln2 over s in [0, 1]), with derivative
(c0 K(x ln2) - nu / T) / x^2, K(y) = 1 + e^y (y - 1) increasing, so the minimizer solves K(x ln2) = nu / (c0 T);
Newton's method (checked, a bisection where the check fails: `y_bracket`) brackets it in [x_lo, x_hi] and
k >= c0 E1(x_lo) + nu / (x_hi T) (each part monotone on the bracket), a certified lower bound. p <= p_max and
b <= B_e are dropped (a relaxation). With nu = 0 or T = inf it is the infinite-band energy c0 ln2 per bit.

Compute. A device that trains C cycles within T runs at f >= C / T (and f >= f_min), so it spends
kappa C f^2 >= kappa C max(f_min, C / T)^2 (= kappa C^3 / T^2 once C / T >= f_min). Per module m of cycles
c_m = n c_m on the device, C >= c_m, so that module's share kappa c_m f^2 >= kappa c_m max(f_min, c_m / T)^2; a
module with c_m / T > f_max cannot be trained by T at all (infinite cost). Both are nonincreasing in T, as
solvers/energy_bound.py's piecewise search over T needs.
"""

from __future__ import annotations

import math

import numpy as np

from solvers.evaluate import LN2

Y_LO, Y_HI = 1e-9, 700.0
"""The bisection's range of y = x ln2 (spectral efficiency in nats): below it the per-bit energy is c0 ln2 to
1e-9, above it 2^x overflows (a band price that large is never the best one)."""


def k_func(y: np.ndarray) -> np.ndarray:
    """K(y) = 1 + e^y (y - 1) = sum_{n >= 2} y^n (n - 1) / n! (its series below 0.01, where the sum cancels)."""
    y = np.asarray(y, dtype=float)
    ys = np.minimum(y, 0.01)
    series = ys * ys * (0.5 + ys * (1 / 3 + ys * (1 / 8 + ys * (1 / 30 + ys / 144))))
    yb = np.minimum(np.maximum(y, 0.01), Y_HI)  # np.clip: the same, slower through its wrapper
    return np.where(y < 0.01, series, 1.0 + np.exp(yb) * (yb - 1.0))


def e1(x: np.ndarray) -> np.ndarray:
    """E1(x) = (2^x - 1) / x, ln2 at x = 0."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, np.expm1(x * LN2) / np.where(x > 0, x, 1.0), LN2)


def y_bracket(r: np.ndarray, newton: int = 7, steps: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(y_lo, y_hi) with K(y_lo) <= r <= K(y_hi), elementwise: the spectral efficiency (nats) where K(y) = r, from
    below and above (y_lo = 0 where r < K(Y_LO); y_hi = Y_HI where r > K(Y_HI)). Newton's method on the convex
    increasing K from an upper start (min of the series' y^2 / 2, y^3 / 3, y^4 / 8 terms, each <= K, and an
    asymptotic start for large r) lands within 1e-11 of K^-1 in 6 steps on r in [e^-41, e^690] (0.6 ms for 2,780
    elements, where `steps` bisections took 5 ms); the bracket y (1 -+ eps), eps 1e-14 to 1e-9, is checked, and
    where no eps passes the bisection (on ln y, `steps` steps) decides, so the bracket always holds."""
    r = np.asarray(r, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        small = np.minimum.reduce([np.sqrt(2 * r), np.cbrt(3 * r), (8 * r) ** 0.25])
        l1 = np.log(np.maximum(r - 1, 1e-300)) - 1.0  # e^y (y - 1) = r - 1: y = 1 + W((r - 1) / e)
        l2 = np.log(np.maximum(l1, 1e-300))
        big = 1 + l1 - l2 + l2 / np.maximum(l1, 1e-300)
        y = np.clip(np.where(r > 20.0, np.minimum(big, small), small), Y_LO, Y_HI)
        y = np.where(np.isfinite(y), y, Y_HI)
        for _ in range(newton):
            y = np.clip(y - (k_func(y) - r) / (y * np.exp(np.minimum(y, Y_HI))), Y_LO, Y_HI)
    y_lo, y_hi = np.full(r.shape, np.nan), np.full(r.shape, np.nan)
    for eps in (1e-9, 1e-12, 1e-14):  # the narrowest bracket that checks
        lo_, hi_ = y * (1 - eps), np.minimum(y * (1 + eps), Y_HI)
        y_lo = np.where(k_func(lo_) <= r, lo_, y_lo)
        y_hi = np.where((k_func(hi_) >= r) | (hi_ >= Y_HI), hi_, y_hi)
    y_lo = np.where(np.isnan(y_lo) & (r < k_func(np.full(r.shape, Y_LO))), 0.0, y_lo)
    bad = np.isnan(y_lo) | np.isnan(y_hi)
    if np.any(bad):  # the bisection for the rest
        lo = np.full(int(bad.sum()), math.log(Y_LO))
        hi = np.full(lo.shape, math.log(Y_HI))
        rb = r[bad]
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            below = k_func(np.exp(mid)) < rb
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        y_lo[bad] = np.where(k_func(np.exp(lo)) <= rb, np.exp(lo), 0.0)
        y_hi[bad] = np.exp(hi)
    return y_lo, y_hi


def upload_per_bit(c0: np.ndarray, t: float | np.ndarray, nu: float | np.ndarray) -> np.ndarray:
    """Certified lower bound on k(t, nu) = min_x c0 E1(x) + nu / (x t) in J per bit, elementwise (module doc); t
    a latency or an array of windows (<= 0: inf, inf: the infinite-band c0 ln2)."""
    c0, t, nu = np.broadcast_arrays(np.asarray(c0, dtype=float), np.asarray(t, dtype=float),
                                    np.asarray(nu, dtype=float))
    fin = np.isfinite(t) & (t > 0)
    ts = np.where(fin, t, 1.0)
    r = nu / (c0 * ts)  # K(y*) = r
    y_lo, y_hi = y_bracket(r)
    y_hi = np.where(k_func(y_hi) >= r, y_hi, np.inf)  # r above K(Y_HI): the minimizer may lie beyond
    with np.errstate(divide="ignore"):
        price = np.where(np.isfinite(y_hi), nu * LN2 / (y_hi * ts), 0.0)
    out = c0 * e1(y_lo / LN2) + price
    return np.where(fin, out, np.where(t > 0, c0 * LN2, np.inf))


def compute_floor(kappa: float, cycles: np.ndarray, f_min: np.ndarray, f_max: np.ndarray, t: float) -> np.ndarray:
    """Least compute energy (J) of a module of `cycles` trained by latency t: kappa c max(f_min, c / t)^2, inf where
    c / t > f_max (module doc); t = inf: kappa c f_min^2."""
    if not math.isfinite(t):
        return kappa * cycles * f_min ** 2
    f = np.maximum(f_min, cycles / t)
    return np.where(f <= f_max * (1 + 1e-12), kappa * cycles * f * f, np.inf)
