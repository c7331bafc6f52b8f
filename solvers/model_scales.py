"""The units of the round's cvxpy model (solvers/model.py) and its grid of tangent cuts on 1 / R.

Kept apart from the program's build and its refinement loop: these are plain numpy functions of the problem's
arrays, used to scale the program's parameters (time in units of the incumbent, bits in units of the largest module)
and to place the tangents that make the convex 1 / R term a valid piecewise-linear under-estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers import model_levels as ml
from solvers.bandwidth import min_bandwidth
from solvers.evaluate import LN2
from solvers.instance import RoundProblem

GRID_RATIO = 1.12
"""Tangents of 1 / R at shares beta_min * GRID_RATIO^k: the piecewise under-estimator is within ~0.3 % of 1 / R."""


@dataclass
class Scales:
    """The units of one load: time t0 (s), bits sigma, per-device g(beta) = sigma / (t0 R(beta B))."""

    t0: float
    sigma: float
    band: np.ndarray  # [N] B_e(i)
    a: np.ndarray  # [N] SNR p g / N0

    def g(self, beta: np.ndarray, dev: np.ndarray) -> np.ndarray:
        b = beta * self.band[dev]
        return self.sigma * LN2 / (self.t0 * b * np.log1p(self.a[dev] / b))

    def dg(self, beta: np.ndarray, dev: np.ndarray) -> np.ndarray:
        b, a = beta * self.band[dev], self.a[dev]
        rate = b * np.log1p(a / b) / LN2
        slope = (np.log1p(a / b) - (a / b) / (1 + a / b)) / LN2
        return -self.sigma * slope * self.band[dev] / (self.t0 * rate ** 2)

    def g_inv(self, eps: np.ndarray, dev: np.ndarray) -> np.ndarray:
        """The share whose 1 / R is eps (scaled)."""
        q = self.sigma / (self.t0 * eps)
        return min_bandwidth(q, self.a[dev]) / self.band[dev]


def least_share(p: RoundProblem, sc: Scales) -> np.ndarray:
    """[N] the least band share an uploader can have in a plan no worse than the incumbent (time unit sc.t0): it
    sends at least the smallest module within T <= the incumbent's objective."""
    bits = 8.0 * p.module_bytes * ml.least_factor(p)  # the least payload: the smallest module at the smallest factor
    small = float(bits[bits > 0].min()) if np.any(bits > 0) else sc.sigma
    return np.clip(sc.g_inv(np.full(p.num_devices, sc.sigma / small), np.arange(p.num_devices)), 1e-12, 1.0)


def grid_cuts(sc: Scales, beta_min: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Tangents of g at beta_min * GRID_RATIO^k up to 1 per device (intercepts, slopes [N, slots]), and how many
    slots are used (the rest repeat the last tangent, to be overwritten by refinement)."""
    n = beta_min.size
    k = np.arange(slots)
    pts = np.minimum(beta_min[:, None] * GRID_RATIO ** k[None, :], 1.0)
    dev = np.repeat(np.arange(n)[:, None], slots, axis=1)
    gv, dv = sc.g(pts, dev), sc.dg(pts, dev)
    used = int(np.ceil(np.log(1.0 / beta_min.min()) / np.log(GRID_RATIO))) + 1
    return gv - dv * pts, dv, min(used, slots)


def grid_size(beta_min: np.ndarray) -> int:
    return int(np.ceil(np.log(1.0 / max(float(beta_min.min()), 1e-12)) / np.log(GRID_RATIO))) + 1
