"""lambda > 0: the least lambda E + mu D of any plan that finishes by a trial latency T, with levels as decisions.

The columns of solvers/level_model.py (device, module subset, route, level: payload phi_l P, distortion d_l) on
every modelled edge, in one HiGHS MILP (the edges share the distortion budget):

    G(T) = min  lambda sum_c F_c v_c + lambda sum_(i, j) e_ij + mu sum_c d_c v_c
           s.t. the choice rows of column_milp.py per edge; per uploader j a band share B_j in [0, 1] with
                B_j >= sum_(c -> j) band_c(T) v_c + the pair excesses of j's D2D links (latency_model.py), and
                sum_j B_j <= 1 per edge (every uploader finishes by T); sum_c d_c v_c <= D over the edges;
                energy shares g_c <= v_c, sum_(c of device i via j) g_c <= B_j, and per tangent k
                e_ij >= sum_(c of device i via j) p_j P_c (a_k v_c + s_k g_c)

F_c: the column's compute and D2D energy (exact, a number); the upload energy p_j U_j / R_j(B_j) of uploader j
is the sum over its columns of p_j P_c phi_j(B_j), phi = 1 / R convex decreasing, and each tangent
phi >= a_k + s_k B (solvers/energy_columns.py) under-estimates it. A plan that finishes by T with band b_j per
uploader is a point of these rows (B_j = b_j / B_e: its columns' bands at T and the pair excesses lower-bound the
band j needs; g_c = B_j on its chosen columns, 0 elsewhere), so HiGHS's dual bound is a valid lower bound on G(T)
at any time limit; edges not modelled count as free (no energy, no distortion). The share g_c (as in
solvers/edge_model.py) keeps a fractional column from pricing its upload at all of B_j: with tangents in B_j
alone the LP relaxation was half as tight and HiGHS took 2.2 s instead of 0.26 s on a 99-column round. The
tangents sit at fixed shares and at the incumbent's own shares (so its energy is priced exactly), and after each
answer at its shares (outer approximation: re-solved while the time lasts and the answer's energy is
under-estimated).

G never increases with T (a plan finishing by T finishes by any later T), so on [T_k, T_(k+1)] every plan pays
at least T_k + G(T_(k+1)): solvers/level_model.py's search takes the least such piece as the round's bound.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from solvers.clock import now
from solvers.column_milp import INF, Extra, Sparse, choice_rows, run_milp
from solvers.energy_columns import tangent

if TYPE_CHECKING:
    from solvers.instance import RoundProblem
    from solvers.level_model import LevelColumns

SHARES = (1.0, 0.5, 0.25, 0.12, 0.06, 0.03, 0.015)
"""Band shares (of B_e) where every uploader's upload time per bit is tangent-cut from the start."""
HIGHS = {"presolve": "off"}
"""HiGHS's presolve off: on an 8-device round (729 columns, 1,331 rows) the MILP took 6.5 s with it, 2.7 s without
(as solvers/level_model.py's lambda-0 MILPs). Its feasibility jump is off, as in every MILP of solvers/highs.py."""
OA_ROUNDS = 3
"""Re-solves with tangents at the answer's shares (outer approximation), while the time lasts."""
OA_TOL = 1e-4
"""An answer whose upload energy the tangents under-estimate by less than this share is not re-solved."""
MILP_GAP = 3e-3
"""HiGHS's relative gap: its dual bound enters the round's bound, so a gap costs tightness (well under the round's
1 %), never validity."""


def least_cost(p: RoundProblem, cols: list[LevelColumns], t: float, time_limit: float, scale: float,
               budget: float, cutoff: float, shares: list[dict[int, list[float]]] | None = None
               ) -> tuple[str, list[np.ndarray | None], float]:
    """G(t) over the modelled edges `cols` (module doc): (status, each edge's chosen columns or None, a valid lower
    bound on G(t)); status "infeasible" (bound inf) when no plan finishes by t with G <= cutoff. scale: the
    objective's unit (the incumbent's objective; the MILP works in it). shares: per edge, per local uploader,
    more band shares to cut at (the incumbent's)."""
    deadline = now() + time_limit
    model = _Model(p, cols, t, scale, budget, shares)
    lower, best = 0.0, None  # type: tuple[float, np.ndarray | None]
    for _ in range(1 + OA_ROUNDS):
        left = deadline - now()
        if left <= 0.02:
            break
        status, val, bound = model.solve(left, cutoff / scale)
        if status == "infeasible":
            return "infeasible", [None] * len(cols), math.inf
        lower = max(lower, bound * scale)
        if val is None:
            break
        best = val
        if not model.refine(val):
            break
    if best is None:
        return "unknown", [None] * len(cols), lower
    chosen: list[np.ndarray | None] = []
    for off, lc in zip(model.offsets[:-1], cols, strict=True):
        k = lc.c.dev.size
        chosen.append(np.flatnonzero(best[off:off + k] > 0.5))
    return "solved", chosen, lower


class _Model:
    """The MILP's rows (a `Sparse`), with the edges' binaries first (edge by edge) and their helpers after them."""

    def __init__(self, p: RoundProblem, cols: list[LevelColumns], t: float, scale: float, budget: float,
                 shares: list[dict[int, list[float]]] | None) -> None:
        self.offsets = np.concatenate([[0], np.cumsum([lc.c.dev.size for lc in cols])]).astype(int)
        k_all = int(self.offsets[-1])
        self.cost = np.zeros(k_all)
        self.usable = np.zeros(k_all, dtype=bool)
        self.extra = Extra(k_all)
        self.rows = Sparse()
        # per (device, uploader) group g: e_g >= sum_(c in g) w_c (a v_c + s g_c) at each tangent (global indices)
        parts: list[tuple[np.ndarray, ...]] = []
        budget_col, budget_val = [], []
        n_groups = 0
        for n_e, lc in enumerate(cols):
            c, sub, off, kk = lc.c, lc.sub, int(self.offsets[n_e]), lc.c.dev.size
            band = c.cost(t, dominate=False)  # a relay may spend less energy than its direct twin
            use = band <= 1.0 + 1e-9
            self.usable[off:off + kk] = use
            self.cost[off:off + kk] = (p.lam * c.fixed_energy(sub) + p.distortion_penalty * lc.distortion) / scale
            local = Extra(kk)
            rows = choice_rows(sub, c, local)
            pair_rows, excess = lc.pairs(t, use, local)
            rows += pair_rows
            x = np.flatnonzero(use)
            ups = np.unique(c.up[x])
            b_var = {int(j): local.add(0.0, 1.0) for j in ups}  # uploader j's band share B_j
            for j in ups.tolist():  # B_j >= its columns' bands at t + the pair excesses of its links
                mine = x[c.up[x] == j]
                need = {int(q): -float(band[q]) for q in mine}
                need.update({var: -1.0 for r, var in excess if r == j})
                rows.append(({b_var[j]: 1.0, **need}, 0.0, INF))
            if b_var:
                rows.append(({v: 1.0 for v in b_var.values()}, -INF, 1.0))
            up = c.up[x]
            uniq, grp = np.unique(c.dev[x] * sub.num_devices + up, return_inverse=True)  # (device, uploader)
            e_var = np.array([local.add(1.0) for _ in uniq], dtype=int)
            g_var = np.array([local.add(0.0, 1.0) for _ in x], dtype=int)  # column x's energy share g_x
            for xq, gq in zip(x.tolist(), g_var.tolist(), strict=True):
                rows.append(({gq: 1.0, xq: -1.0}, -INF, 0.0))  # g_x <= v_x
            g_up = up[np.unique(grp, return_index=True)[1]]  # each group's uploader
            for q, j in enumerate(g_up.tolist()):  # the shares of one device's columns via j: at most B_j
                rows.append(({**{int(v): 1.0 for v in g_var[grp == q]}, b_var[j]: -1.0}, -INF, 0.0))
            base = k_all + len(self.extra.cost)  # local helper v >= kk goes to base + v - kk
            s_loc = Sparse()
            s_loc.rows(rows)
            starts, index, value, lo, hi = s_loc.csr()
            self.rows.add(np.repeat(np.arange(lo.size), np.diff(starts)), np.where(index < kk, off + index,
                          base + index - kk), value, lo, hi)
            self.extra.cost += local.cost
            self.extra.upper += local.upper
            w = p.lam / scale * sub.tx_power_w[up] * c.pay[x]
            b_of = base + np.array([b_var[int(j)] for j in g_up], dtype=int) - kk
            parts.append((off + x, base + g_var - kk, w, grp + n_groups, base + e_var - kk, b_of, sub.snr_hz[g_up],
                          np.full(uniq.size, float(sub.edge_bandwidth_hz[0])), _more(shares, n_e, g_up)))
            n_groups += uniq.size
            on = x[lc.distortion[x] > 0]
            budget_col.append(off + on)
            budget_val.append(lc.distortion[on])
        arrays = [np.concatenate(a) for a in zip(*parts)]
        self.x, self.g, self.w, self.grp, self.e, self.b, self.snr, self.bw, more = arrays
        for share in SHARES:
            self._cuts(np.arange(self.e.size), np.full(self.e.size, share))
        has = np.isfinite(more)
        self._cuts(np.flatnonzero(has), more[has])
        cols_b = np.concatenate(budget_col)
        if math.isfinite(budget) and cols_b.size:
            self.rows.add(np.zeros(cols_b.size), cols_b, np.concatenate(budget_val), np.array([-INF]),
                          np.array([budget]))

    def _cuts(self, groups: np.ndarray, share: np.ndarray) -> None:
        """Tangent rows e_g >= sum_(c in g) w_c (a v_c + s g_c) at `share` (one per group in `groups`)."""
        if groups.size == 0:
            return
        a, s = tangent(self.snr[groups], self.bw[groups], share)
        row_of = np.full(self.e.size, -1)
        row_of[groups] = np.arange(groups.size)
        on = np.flatnonzero(row_of[self.grp] >= 0)  # the member columns
        r = row_of[self.grp[on]]
        w = self.w[on]
        rows = np.concatenate([np.arange(groups.size), r, r])
        cols = np.concatenate([self.e[groups], self.x[on], self.g[on]])
        vals = np.concatenate([np.ones(groups.size), -w * a[r], -w * s[r]])
        self.rows.add(rows, cols, vals, np.zeros(groups.size), np.full(groups.size, INF))

    def solve(self, time_limit: float, cutoff: float) -> tuple[str, np.ndarray | None, float]:
        return run_milp(self.rows, self.cost, self.usable, self.extra, time_limit, MILP_GAP, cutoff, HIGHS)

    def refine(self, val: np.ndarray) -> bool:
        """Tangents at the answer's shares where its upload energy is under-estimated: whether any was added."""
        on = np.flatnonzero(val[self.x] > 0.5)  # chosen columns
        grp = self.grp[on]
        share = val[self.b[grp]]
        ok = share > 1e-9
        on, grp, share = on[ok], grp[ok], share[ok]
        if on.size == 0:
            return False
        a, s = tangent(self.snr[grp], self.bw[grp], share)
        true = self.w[on] * (a + s * share)
        low = val[self.e[grp]] < true * (1 - OA_TOL)
        if not low.any():
            return False
        self._cuts(grp[low], share[low])
        return True


def _more(shares: list[dict[int, list[float]]] | None, n_e: int, up: np.ndarray) -> np.ndarray:
    """[X] the extra tangent share of each energy entry's uploader (the incumbent's; nan: none)."""
    if not shares:
        return np.full(up.size, np.nan)
    mine = shares[n_e]
    return np.array([mine[int(j)][0] if mine.get(int(j)) else np.nan for j in up])
