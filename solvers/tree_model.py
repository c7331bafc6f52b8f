"""The aggregation-tree round as one MILP (HiGHS through highspy): placement columns, arcs, root, ready times.

One uploader per edge owns the band, so the root's upload time c_r = U_e / R_r(B_e) is a constant per root: the
model is linear without any outer approximation. Over the edges given (devices i, links l = (i -> j), demanded
modules m; times in units of the incumbent's objective U0):

  lambda_iS in {0,1}   device i trains subset S (every memory-feasible subset of its demanded modules, incl. none);
                       sum_S lambda_iS = 1, x_im = sum_{S ni m} lambda_iS, coverage sum_i n_i x_im >= demand_m
  z_i, y_l in {0,1}    i is the root / i's parent is j: sum_{l out of i} y_l + z_i = 1, one root per edge,
                       sum_{l into j} y_l <= relay_capacity; depths dep_i >= dep_j + 1 - n (1 - y_l), dep_root = 0
  u_im in [0,1]        subtree union: u_im >= x_im, u_jm >= u_im + y_l - 1 (exact at integer points: costs grow in u)
  t_i >= tau_i(x)      ready time: t_j >= t_i + sum_m (8 s_m / r_l) u_im - M_l (1 - y_l)
  T >= t_i + sum_r c_r z_r             (every node is ready before its root)
  T >= t_k + c_r + sum_m 8 s_m sp(k, r) u_km - M (1 - z_r)   (k's union travels at least the shortest D2D path)
  E = sum compute(lambda) + sum_i e_i + sum_r p_r c_r z_r,  e_i >= p_i sum_m (8 s_m / r_l) u_im - Q_l (1 - y_l),
  e_i >= p_i sum_m (8 s_m / max_j r_ij) u_im - Q_i z_i   (the widest link: no arc variable, tight once z is fixed)
  minimize T + lambda E.

At integer points T and E are exactly tree_cost's (the last two inequalities are valid, not binding at the
optimum), so HiGHS's optimum -- and its dual bound when the time limit stops it -- bounds every tree plan of these
edges from below (restricted to demanded modules, which loses nothing: dropping a module never costs more). The
caller fixes the root (z bounds) to split an edge into n smaller MILPs and passes a cutoff (objective_bound):
"infeasible" then proves no plan with that root beats the cutoff. Each solve also sets T <= (cutoff - lambda E's
floor) / U0 and the ready-time rows' big-M from it, and at lambda > 0 prices each module's minimal covers by their
Steiner arborescence to the root (solvers/tree_rows.py): plans above the cutoff are cut off, which keeps
min(dual bound, cutoff) valid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solvers.clock import current_meter, limit_statuses, set_limits
from solvers.edgebatch import EdgeView
from solvers.evaluate import uplink_rate
from solvers.highs import bare_highs, cutoff_bound, highs, highs_lp, run
from solvers.tree_bound import shortest_paths
from solvers.tree_energy import EdgeParts, edge_parts
from solvers.tree_rows import Chain, Covers, cover_rows

COVER_ENERGY = True
"""Whether the model at lambda > 0 carries the cover rows (solvers/tree_rows.py `Covers`; edges of <= 12 devices)."""
RESTART = False
"""HiGHS's restarts of the MILP in its root node (mip_allow_restart). Off: a 12-device root proved its cutoff in
0.85-1.9 CPU s where the restarts (4-5 in the root node) took 3.9-6.3; A/B on 8-device tree edges, seeds 0-3: 11 -> 12
of 16 certified at lambda > 0 (experiments/results/solver_model/s27tr/NOTES.md)."""
MAX_SUBSETS = 256
"""Columns per device at most (2^8: edges of more demanded modules are not modelled)."""


@dataclass
class _Rows:
    """A sparse MILP under construction: columns with bounds, cost and integrality; rows lo <= a x <= hi."""

    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    r_lo: list[float] = field(default_factory=list)
    r_hi: list[float] = field(default_factory=list)
    start: list[int] = field(default_factory=lambda: [0])
    index: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)

    def cols(self, k: int, lo: float, hi: float, integer: bool = False) -> np.ndarray:
        first = len(self.lo)
        self.lo += [lo] * k
        self.hi += [hi] * k
        self.cost += [0.0] * k
        self.integer += [integer] * k
        return np.arange(first, first + k)

    def row(self, idx: Any, coef: Any, lo: float = -np.inf, hi: float = np.inf) -> None:
        idx, coef = (
            np.atleast_1d(np.asarray(idx, dtype=int)),
            np.broadcast_to(np.asarray(coef, dtype=float), np.shape(np.atleast_1d(idx))),
        )
        keep = coef != 0
        self.index += idx[keep].tolist()
        self.value += coef[keep].tolist()
        self.start.append(len(self.index))
        self.r_lo.append(lo)
        self.r_hi.append(hi)


@dataclass
class TreeMilp:
    """The built model of some edges and how to read a solution back (see the module doc)."""

    views: list[EdgeView]
    scale: float  # U0: seconds per time unit
    highs: Any
    root: list[np.ndarray]  # per edge: the z columns [n]
    arcs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per edge: (src, dst, y columns)
    subsets: list[list[np.ndarray]]  # per edge, per device: [S, M] bool subsets
    lam_cols: list[list[np.ndarray]]  # per edge, per device: its lambda columns [S]
    fixed: list[np.ndarray] = field(default_factory=list)  # per edge: roots that cannot be the root (unreachable)
    t_col: int = 0  # the column of T
    energy_row: int = -1  # the row lam E >= its floor (lambda > 0), or -1
    chain: list[Chain] = field(default_factory=list)  # per edge: the ready-time rows' big-M, set per solve
    covers: list[Covers] = field(default_factory=list)  # per edge (lambda > 0): the cover rows, set per solve

    def solve(
        self,
        roots: list[int | None],
        cutoff: float,
        time_limit_s: float,
        gap: float,
        floor: float = 0.0,
        energy_floor: float = 0.0,
    ) -> tuple[str, float, list[tuple[np.ndarray, np.ndarray]] | None]:
        """(status, lower bound in seconds of T + lambda E, the best solution per edge as (x local, parent local) or
        None) with each edge's root fixed where `roots` names one; cutoff in seconds; floor: a known lower bound on
        T in seconds for these roots (solvers/tree_bound.py), given to HiGHS as T's lower bound, energy_floor one on
        lambda E (in seconds, as the objective counts it) as that row's lower side. Status: optimal,
        infeasible (no plan below the cutoff: the bound is the cutoff), time_limit, or other (no bound: 0)."""
        import highspy

        if not self._set(roots, cutoff, floor, energy_floor):
            return "infeasible", float(cutoff), None
        h = self.highs
        h.setOptionValue("objective_bound", float(cutoff / self.scale))
        set_limits(h, max(time_limit_s, 1e-3))
        h.setOptionValue("mip_rel_gap", float(gap))
        status = run(h).getModelStatus()
        info = h.getInfo()
        limit = "time_limit" if status in limit_statuses(highspy) else "other"
        kind = {highspy.HighsModelStatus.kOptimal: "optimal", highspy.HighsModelStatus.kInfeasible: "infeasible"}.get(
            status, limit
        )
        bound = cutoff_bound(h, float(cutoff), self.scale)  # inf: nothing below the cutoff
        if bound == np.inf:
            return "infeasible", float(cutoff), None
        lower = bound if kind in ("optimal", "time_limit") else 0.0
        sol = None
        if info.primal_solution_status == 2:  # kSolutionStatusFeasible
            col = np.asarray(h.getSolution().col_value)
            sol = [self._read(col, e) for e in range(len(self.views))]
        return kind, lower, sol

    def relax(
        self, roots: list[int | None], cutoff: float, time_limit_s: float, floor: float = 0.0, energy_floor: float = 0.0
    ) -> float:
        """A lower bound in seconds of T + lambda E over the plans of these roots from the LP relaxation of the model
        as `solve` sets it up (the same floors and rows from the cutoff): min(LP value, cutoff), the cutoff where the
        LP is infeasible, 0 where it does not finish. Valid: the rows set from the cutoff cut off only plans above it,
        and the LP relaxes every plan below it (tests/test_solver_tree_covers.py)."""
        import highspy

        if not self._set(roots, cutoff, floor, energy_floor):
            return float(cutoff)
        h = self.highs
        h.setOptionValue("objective_bound", highspy.kHighsInf)
        h.setOptionValue("solve_relaxation", True)
        set_limits(h, max(time_limit_s, 1e-3))
        if current_meter() is None:  # an LP's time limit counts every run of the object (set_limits: the meter's)
            h.setOptionValue("time_limit", max(time_limit_s, 1e-3) + h.getRunTime())
        try:
            status = run(h).getModelStatus()
        finally:
            h.setOptionValue("solve_relaxation", False)
        if status == highspy.HighsModelStatus.kInfeasible:
            return float(cutoff)
        if status != highspy.HighsModelStatus.kOptimal:
            return 0.0
        return min(float(h.getInfo().objective_function_value) * self.scale, float(cutoff))

    def _set(self, roots: list[int | None], cutoff: float, floor: float, energy_floor: float) -> bool:
        """The model's bounds and rows for these roots, cutoff and floors (see `solve`); False where the floors
        alone pass the cutoff's T (no plan of these roots lies below the cutoff)."""
        import highspy

        h = self.highs
        if self.energy_row >= 0:
            h.changeRowBounds(self.energy_row, float(energy_floor / self.scale), highspy.kHighsInf)
        top = min((cutoff - energy_floor) / self.scale, 1.0)  # T of a plan below the cutoff (module doc)
        if floor / self.scale > top:  # every plan of these roots costs at least floor + energy_floor > cutoff
            return False
        h.changeColsBounds(
            1,
            np.array([self.t_col], dtype=np.int32),
            np.array([min(floor / self.scale, 1.0)]),
            np.array([max(top, 0.0)]),
        )
        for ch, r in zip(self.chain, roots, strict=True):
            ch.tighten(h, r, top)
        for cv, r in zip(self.covers, roots, strict=False):
            cv.fix(h, r)
        for z, r, bad in zip(self.root, roots, self.fixed, strict=True):
            if r is None:
                lo, up = np.zeros(z.size), np.ones(z.size)
                up[bad] = 0.0
            else:
                lo = up = (np.arange(z.size) == r).astype(float)
            h.changeColsBounds(z.size, z.astype(np.int32), lo, up)
        return True

    def _read(self, col: np.ndarray, e: int) -> tuple[np.ndarray, np.ndarray]:
        v = self.views[e]
        n, m = v.n, v.problem.num_modules
        x = np.zeros((n, m), dtype=bool)
        for i in range(n):
            x[i] = self.subsets[e][i][int(np.argmax(col[self.lam_cols[e][i]]))]
        parent = np.arange(n)
        src, dst, y = self.arcs[e]
        on = col[y] > 0.5
        parent[src[on]] = dst[on]
        return x, parent


def device_subsets(view: EdgeView) -> list[np.ndarray] | None:
    """Per device [S, M]: every subset of its demanded, eligible modules within its memory (none for a device without
    samples: dropping its modules never costs more); None if some device has over MAX_SUBSETS."""
    p, d = view.problem, view.dev
    out = []
    for i in range(view.n):
        mods = np.flatnonzero(p.eligible[d[i]] & (view.demand > 0) & (p.module_memory_bytes <= p.memory_bytes[d[i]]))
        if p.samples[d[i]] <= 0:
            mods = mods[:0]
        if 2**mods.size > MAX_SUBSETS:
            return None
        rows = []
        for k in range(mods.size + 1):
            for sub in itertools.combinations(mods.tolist(), k):
                if p.module_memory_bytes[list(sub)].sum() <= p.memory_bytes[d[i]] * (1 + 1e-12):
                    rows.append(np.isin(np.arange(p.num_modules), sub))
        out.append(np.array(rows, dtype=bool).reshape(-1, p.num_modules))
    return out


def build(views: list[EdgeView], scale: float, parts: list[EdgeParts | None] | None = None) -> TreeMilp | None:
    """The MILP of these edges (one shared T; lambda from the problem); times in units of `scale` seconds (the
    incumbent's objective: every plan worth finding has T <= scale, so ready times are bounded by 1). None if an edge
    has a device with too many subsets. parts: each edge's solvers/tree_energy.py `edge_parts` where the caller has
    them (None: computed here)."""
    import highspy

    fast = bare_highs()
    solver = fast[1] if fast is not None else highspy.Highs  # the public class where the bare one is missing
    p = views[0].problem
    lam = p.lam
    b = _Rows()
    t_col = b.cols(1, 0.0, 1.0)[0]
    b.cost[t_col] = 1.0
    roots, arcs, subsets, lam_cols, fixed, chain, covers = [], [], [], [], [], [], []
    for ev, v in enumerate(views):
        d, n = v.dev, v.n
        subs = device_subsets(v)
        if subs is None:
            return None
        need = np.flatnonzero(v.demand > 0)
        sbytes = 8.0 * p.module_bytes[need]
        cyc = [p.samples[d[i]] * (s[:, need].astype(float) @ p.module_cycles[need]) for i, s in enumerate(subs)]
        lcols = [b.cols(len(s), 0.0, 1.0, integer=True) for s in subs]
        for i in range(n):
            b.row(lcols[i], 1.0, 1.0, 1.0)
            for c, cy in zip(lcols[i], cyc[i], strict=True):
                b.cost[c] += lam * p.kappa * cy * p.cpu_hz[d[i]] ** 2 / scale
        for m in need:  # coverage, in units of the demand
            idx = np.concatenate([lcols[i][subs[i][:, m]] for i in range(n)])
            coef = np.concatenate([np.full(int(subs[i][:, m].sum()), p.samples[d[i]]) for i in range(n)])
            b.row(idx, coef / v.demand[m], lo=1.0 - 1e-9)
        z = b.cols(n, 0.0, 1.0, integer=True)
        b.row(z, 1.0, 1.0, 1.0)
        src, dst = np.nonzero(v.rate > 0)
        y = b.cols(src.size, 0.0, 1.0, integer=True)
        for i in range(n):
            b.row(np.concatenate([y[src == i], [z[i]]]), 1.0, 1.0, 1.0)
        if p.relay_capacity is not None:
            for j in range(n):
                if np.any(dst == j):
                    b.row(y[dst == j], 1.0, hi=float(p.relay_capacity))
        u = b.cols(n * need.size, 0.0, 1.0).reshape(n, need.size)
        for i in range(n):
            for jm, m in enumerate(need):
                b.row(
                    np.concatenate([[u[i, jm]], lcols[i][subs[i][:, m]]]),
                    np.concatenate([[1.0], -np.ones(int(subs[i][:, m].sum()))]),
                    lo=0.0,
                )
        t = b.cols(n, 0.0, 1.0)
        for i in range(n):
            b.row(np.concatenate([[t[i]], lcols[i]]), np.concatenate([[1.0], -cyc[i] / p.cpu_hz[d[i]] / scale]), lo=0)
        dep = b.cols(n, 0.0, float(n - 1))
        for i in range(n):
            b.row([dep[i], z[i]], [1.0, float(n - 1)], hi=float(n - 1))
        sp = shortest_paths(v) / scale
        rows, hops, extra = [], [], []
        for k, (i, j) in enumerate(zip(src.tolist(), dst.tolist(), strict=True)):
            hop = sbytes / v.rate[i, j] / scale  # units per module
            big = 1.0 + hop.sum()
            for jm in range(need.size):
                b.row([u[j, jm], u[i, jm], y[k]], [1.0, -1.0, -1.0], lo=-1.0)
            rows.append(len(b.r_lo))
            hops.append(float(hop.sum()))
            extra.append(
                np.where(
                    np.isfinite(sp[i]),
                    float(sbytes.sum())
                    * np.maximum(0.0, 1.0 / v.rate[i, j] / scale - np.where(np.isfinite(sp[i]), sp[i], 0.0)),
                    np.inf,
                )
            )
            b.row(np.concatenate([[t[j], t[i], y[k]], u[i]]), np.concatenate([[1.0, -1.0, -big], -hop]), lo=-big)
            b.row([dep[i], dep[j], y[k]], [1.0, -1.0, -float(n)], lo=1.0 - n)
        band = np.full(n, p.edge_bandwidth_hz[v.edge])
        up = float(sbytes.sum()) / uplink_rate(band, p.snr_hz[d]) / scale if need.size else np.zeros(n)
        chain.append(
            Chain(
                np.array(rows, dtype=int),
                y.copy(),
                t.copy(),
                np.array(hops),
                np.array(extra).reshape(len(rows), n),
                np.broadcast_to(up, (n,)).astype(float),
            )
        )
        for i in range(n):
            b.row(np.concatenate([[t_col, t[i]], z]), np.concatenate([[1.0, -1.0], -up]), lo=0.0)
        bad = ~np.isfinite(sp).all(axis=0)
        for r in np.flatnonzero(~bad):
            for k in range(n):
                if k == r:
                    continue
                coef = sbytes * sp[k, r]
                big = up[r] + 1.0 + coef.sum()
                b.row(
                    np.concatenate([[t_col, t[k], z[r]], u[k]]),
                    np.concatenate([[1.0, -1.0, -big], -coef]),
                    lo=up[r] - big,
                )
        if lam > 0:
            for i in range(n):
                b.cost[z[i]] += lam * p.tx_power_w[d[i]] * up[i]  # up is in units: energy / scale already
            e = b.cols(n, 0.0, np.inf)
            for i in range(n):
                b.cost[e[i]] = lam
            for k, (i, j) in enumerate(zip(src.tolist(), dst.tolist(), strict=True)):
                q = p.d2d_power_w[d[i]] * sbytes / v.rate[i, j] / scale
                b.row(np.concatenate([[e[i], y[k]], u[i]]), np.concatenate([[1.0, -q.sum()], -q]), lo=-q.sum())
            for i in range(n):  # off the root, i sends its union over one link, at best its widest
                if np.any(src == i):
                    q = p.d2d_power_w[d[i]] * sbytes / v.rate[i].max() / scale
                    b.row(np.concatenate([[e[i], z[i]], u[i]]), np.concatenate([[1.0, q.sum()], -q]), lo=0.0)
            got = (edge_parts(v) if parts is None else parts[ev]) if COVER_ENERGY else None
            if got is not None:
                covers.append(cover_rows(b, got, v, e, lcols, subs, need, scale))
        roots.append(z)
        arcs.append((src, dst, y))
        subsets.append(subs)
        lam_cols.append(lcols)
        fixed.append(np.flatnonzero(bad))
    energy_row = -1
    if lam > 0:  # lam E >= a known bound (set per solve): the energy part of the objective as one row
        energy_row = len(b.r_lo)
        cols = np.flatnonzero(np.array(b.cost) != 0)
        cols = cols[cols != t_col]
        b.row(cols, np.array(b.cost)[cols], lo=0.0)
    inf = highspy.kHighsInf
    h = highs(
        solver,
        highs_lp(
            highspy,
            np.array(b.cost),
            np.array(b.lo),
            np.array(b.hi),
            np.where(np.isfinite(b.r_lo), b.r_lo, -inf),
            np.where(np.isfinite(b.r_hi), b.r_hi, inf),
            np.array(b.start, dtype=np.int32),
            np.array(b.index, dtype=np.int32),
            np.array(b.value),
            rowwise=True,
            integer=b.integer,
        ),
        mip_allow_restart=bool(RESTART),
    )
    return TreeMilp(
        views,
        scale,
        h,
        roots,
        arcs,
        subsets,
        lam_cols,
        fixed,
        int(t_col),
        energy_row,
        chain,
        covers if len(covers) == len(views) else [],
    )
