"""Each module's minimal covers of its demand: the convex hull of its knapsack, for the column models
(solvers/column_milp.py) and the bounds' LPs (solvers/bounds.py `EdgeLP`, solvers/route_lp.py,
solvers/tree_bound.py)."""

from __future__ import annotations

import numpy as np

COVER_HOLDERS = 16
"""Modules held by more devices than this get no minimal covers (2^holders subsets to enumerate)."""
LP_COVER_HOLDERS = 12
"""The same for the bounds' LPs (solvers/route_lp.py and solvers/bounds.py `EdgeLP`), solved many times a round:
at 13-16 holders the covers' enumeration and the larger LP made 20-device edges' rounds 2.5x slower
(tests/test_solver_parallel.py) for edges beyond the small and medium targets (<= 12 devices)."""


def cover_sets(samples: np.ndarray, demand: float, most: int = COVER_HOLDERS) -> np.ndarray:
    """[covers, holders] every minimal cover of `demand` by devices with these samples: a set that meets it and
    loses it without any one member (none when there are more than `most` holders)."""
    k = samples.size
    if k > most or k == 0:
        return np.zeros((0, k), dtype=bool)
    masks = np.arange(1, 1 << k)
    bits = ((masks[:, None] >> np.arange(k)[None, :]) & 1).astype(bool)
    tot = bits @ samples
    least = np.where(bits, samples[None, :], np.inf).min(axis=1)
    need = demand * (1 - 1e-9)
    return bits[(tot >= need) & (tot - least < need)]
