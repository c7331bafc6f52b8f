"""The module subsets each device may train: the columns the subset bounds, models and group columns start from."""

from __future__ import annotations

import numpy as np

from solvers.instance import RoundProblem


def trainable_subsets(p: RoundProblem, members: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, mask, bits) of every non-empty module subset a device of `members` may train (eligible modules, data
    held, within its memory): the device's position in `members`, the subset's bitmask and its [M] 0/1 module
    vector; rows ascending, masks ascending within a row. (subset_dual.py builds the same table in slices of
    devices, with int8 bits, for 10,000-device rounds.)"""
    m = p.num_modules
    masks = np.arange(1, 1 << m)
    table = (masks[:, None] >> np.arange(m)[None, :]) & 1
    mem = table @ p.module_memory_bytes
    elig = (p.eligible[members] & (p.samples[members, None] > 0)).astype(np.int64) @ (1 << np.arange(m))
    ok = ((masks[None, :] & ~elig[:, None]) == 0) & (mem[None, :] <= p.memory_bytes[members, None] * (1 + 1e-12))
    row, col = np.nonzero(ok)
    return row, masks[col], table[col]
