"""Rows that tighten the tree MILP (solvers/tree_model.py) per solve, from the fixed root and the cutoff.

- `Chain`: the ready-time rows' big-M from T's upper bound under the cutoff (a plan below it has
  T <= (cutoff - lambda E_floor) / U0; any plan above it costs at least the cutoff, so the MILP's bound
  min(dual, cutoff) stays valid) and, with the root fixed, the shortest-path row.
- `Covers`: per demanded module a convex choice of minimal covers, each priced by the Steiner arborescence joining it
  to the root (solvers/tree_energy.py): the ladder's per-module energy inside the MILP, where the devices' subsets
  couple the modules again. On the bench's 8-device tree edges the fixed-root LP goes from 0.79-0.84 to 0.89-0.98
  of the plan (lambda 0.5-50).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.edgebatch import EdgeView
from solvers.tree_energy import EdgeParts


@dataclass
class Chain:
    """One edge's ready-time rows t_j >= t_i + hop_l u_i - big_l (1 - y_l), their big-M set per solve from T's upper
    bound `top` (units): t_i <= T always, so big_l = top + hop_l.sum() is valid; with the root r fixed t_i <= top - c_r
    and the path row t_i + sum_m 8 s_m sp(i, r) u_im <= top - c_r leave big_l = top - c_r + `extra`[l, r] with
    extra = sum_m 8 s_m max(0, 1 / r_ij - sp(i, r)) (t_j >= 0)."""

    rows: np.ndarray  # [L] the arcs' ready-time rows
    y: np.ndarray  # [L] the arcs' columns
    t: np.ndarray  # [n] the ready-time columns
    hop: np.ndarray  # [L] hop_l.sum(): the whole union over the arc, units
    extra: np.ndarray  # [L, n] per root (inf: the root cannot be one)
    up: np.ndarray  # [n] c_r, units

    def tighten(self, h: Any, root: int | None, top: float) -> None:
        import highspy

        if root is None or not np.isfinite(self.extra[:, root]).all():
            big, t_up = top + self.hop, top
        else:
            t_up = max(top - float(self.up[root]), 0.0)
            big = t_up + self.extra[:, root]
        big = np.maximum(big, 0.0)
        for row, col, b in zip(self.rows.tolist(), self.y.tolist(), big.tolist(), strict=True):
            h.changeCoeff(row, col, -b)
        h.changeRowsBounds(self.rows.size, self.rows.astype(np.int32), -big, np.full(big.size, highspy.kHighsInf))
        h.changeColsBounds(self.t.size, self.t.astype(np.int32), np.zeros(self.t.size), np.full(self.t.size, t_up))


@dataclass
class Covers:
    """One edge's cover columns v_mH in [0, 1] (H a minimal cover of module m: samples reach the demand, removing any
    device breaks it): sum_H v_mH = 1, x_km >= sum_{H ni k} v_mH, and sum_i e_i >= sum_m sum_H 8 s_m st(H, r) v_mH,
    st the least per-bit cost of arcs joining H to the root r (solvers/tree_energy.py `steiner`). A plan's holders
    of m contain a minimal cover H, and the arcs carrying m join H to r (every hop carries the union) and add up over
    the modules, so the plan meets the rows with v_mH = 1. The last row's coefficients are set per solve: the fixed
    root's, or the least over the roots where it is free."""

    row: int  # the energy row
    v: np.ndarray  # [K] the cover columns
    cost: np.ndarray  # [K, n] 8 s_m st(H, r), units (inf: H cannot reach r)

    def fix(self, h: Any, root: int | None) -> None:
        coef = self.cost.min(axis=1) if root is None else self.cost[:, root]
        coef = np.where(np.isfinite(coef), coef, 0.0)
        for col, c in zip(self.v.tolist(), coef.tolist(), strict=True):
            h.changeCoeff(self.row, col, -c)


def cover_rows(
    b: Any,
    parts: EdgeParts,
    view: EdgeView,
    e: np.ndarray,
    lcols: list[np.ndarray],
    subs: list[np.ndarray],
    need: np.ndarray,
    scale: float,
) -> Covers:
    """The cover columns and rows of one edge (`Covers`) added to b; e: its D2D energy columns."""
    n = view.n
    cols, costs, holders = [], [], []
    for jm, ok in enumerate(parts.covers):
        hs = np.flatnonzero(ok)
        keep = np.ones(hs.size, dtype=bool)
        for k in range(n):  # minimal: no member can leave
            keep &= ~(((hs >> k) & 1).astype(bool) & ok[hs ^ (1 << k)])
        hs = hs[keep]
        v = b.cols(hs.size, 0.0, 1.0)
        b.row(v, 1.0, 1.0, 1.0)
        cols.append(v)
        m = int(parts.need[jm])  # the ladder's energy less the covers' compute: 8 s_m st(H, r)
        bits = parts.energy[jm][hs] - (parts.members[hs] @ parts.comp[:, m])[:, None]
        costs.append(np.maximum(bits, 0.0) / scale)
        holders.append(parts.members[hs])
    for k in range(n):
        for jm, m in enumerate(need):
            on = holders[jm][:, k]
            if on.any():
                idx = np.concatenate([lcols[k][subs[k][:, m]], cols[jm][on]])
                b.row(idx, np.concatenate([np.ones(int(subs[k][:, m].sum())), -np.ones(int(on.sum()))]), lo=0.0)
    v_all = np.concatenate(cols)
    row = len(b.r_lo)
    b.row(e, 1.0, lo=0.0)
    return Covers(row, v_all, np.concatenate(costs))
