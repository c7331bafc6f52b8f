"""The least upload energy at a band price, as a certified table (solvers/subset_energy.py prices columns with it).

phi(P) = min_b p P / R(b) + nu b = nu a F(z), z = p P / (nu a^2), F(z) = min_s z / rho(s) + s with
rho(s) = s log2(1 + 1 / s) (b = a s; dropping b <= B_e only lowers it). F is concave and increasing: a table of
certified lower values (golden section on ln s, bounded below on its final bracket) is interpolated along chords
(below a concave function), below the table by the chord from F(0) = 0, above it by F(z) >= z ln2; the minimizer
s*(z) is tabulated from above (for the windowed cost phi_T of solvers/subset_energy.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from solvers.evaluate import LN2

GOLD = (math.sqrt(5.0) - 1.0) / 2.0
Z_LN = (-70.0, 70.0, 4001)
"""The table of F: ln z from, to, points."""


def golden_bracket(f: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray,
                   steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Golden-section search for a minimizer of a unimodal f on [lo, hi] (elementwise): the final bracket, which
    holds a minimizer whatever the number of steps (what the certified bounds built on it rely on)."""
    c, d = hi - GOLD * (hi - lo), lo + GOLD * (hi - lo)
    fc, fd = f(c), f(d)
    for _ in range(steps):
        left = fc <= fd  # a minimizer lies in [lo, d]
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
        c, d = np.where(left, hi - GOLD * (hi - lo), d), np.where(left, c, lo + GOLD * (hi - lo))
        new = f(np.where(left, c, d))
        fc, fd = np.where(left, new, fd), np.where(left, fc, new)
    return lo, hi


def _rho(s: np.ndarray) -> np.ndarray:
    return s * np.log1p(1.0 / s) / LN2


@lru_cache(maxsize=1)
def f_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z grid, certified lower bounds on F(z), upper bounds on the minimizer s*(z)), computed once."""
    z = np.exp(np.linspace(*Z_LN))
    lo, hi = np.full(z.shape, -80.0), np.full(z.shape, 80.0)

    def g(u: np.ndarray) -> np.ndarray:
        s = np.exp(u)
        return z / _rho(s) + s

    lo, hi = golden_bracket(g, lo, hi, 110)
    s_lo, s_hi = np.exp(lo), np.exp(hi)
    value = z / _rho(s_hi) + s_lo  # z / rho decreases, s increases: the least on the bracket
    value = np.maximum.accumulate(np.maximum(value, z * LN2) * (1 - 1e-12))  # F is increasing: keep it so
    s_up = np.maximum.accumulate(s_hi)  # s* increases with z: s*(z) <= s_up at the next grid point
    return z, value, s_up


@lru_cache(maxsize=1)
def slopes() -> np.ndarray:
    """[len(grid) - 1] the slope of each chord of the table (np.interp's)."""
    zg, fg, _ = f_table()
    return np.diff(fg) / np.diff(zg)


def segment(z: np.ndarray) -> np.ndarray:
    """Per z its table segment j, zg[j] <= z < zg[j + 1] (0 below the table, the last one above): from ln z on the
    log-uniform grid, then one step each way where rounding put it next to its segment (what a search would give)."""
    zg = f_table()[0]
    lo, hi, n = Z_LN
    with np.errstate(divide="ignore", invalid="ignore"):
        at = (np.log(z) - lo) * ((n - 1) / (hi - lo))
    j = np.clip(np.nan_to_num(at, nan=0.0, neginf=0.0), 0, n - 2).astype(np.int64)
    j = j - ((zg[j] > z) & (j > 0))
    return j + ((zg[j + 1] <= z) & (j < n - 2))


def concave_energy(q: np.ndarray, nua: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower bound on phi = min_s q / rho(s) + nua s, an upper bound on its minimizer s*), elementwise; q = p P / a
    (J, the infinite-band energy / ln2), nua = nu a (J). nua = 0: (q ln2, inf)."""
    zg, fg, sg = f_table()
    q, nua = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(nua, dtype=float))
    pos = nua > 0
    safe = np.where(pos, nua, 1.0)
    z = np.where(pos, q / safe, 0.0)
    j = segment(z)  # zg[j] <= z < zg[j + 1] (np.interp's segment)
    chord = np.where(z == zg[j], fg[j], slopes()[j] * (z - zg[j]) + fg[j])  # np.interp's values: below the concave F
    chord = np.where(z < zg[0], z * (fg[0] / zg[0]), np.where(z >= zg[-1], fg[-1], chord))  # F(zK) above the table
    f = np.maximum(chord, z * LN2)
    k = np.where(z <= zg[j], j, j + 1)  # np.searchsorted(zg, z): the first grid point >= z
    s_up = np.where(z <= zg[-1], sg[k], np.inf)
    return np.where(pos, safe * f, q * LN2), np.where(pos, s_up, np.inf)


def concave_upper(q: np.ndarray, nua: np.ndarray) -> np.ndarray:
    """An upper bound on phi (its value at a feasible s: the tabulated minimizer of the nearest grid point)."""
    zg, _, sg = f_table()
    q, nua = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(nua, dtype=float))
    pos = nua > 0
    safe = np.where(pos, nua, 1.0)
    z = np.where(pos, q / safe, 0.0)
    k = np.clip(np.searchsorted(zg, z), 0, zg.size - 1)
    s = sg[k]
    return np.where(pos, q / _rho(s) + safe * s, q * LN2)
