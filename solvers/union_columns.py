"""lambda = 0, one edge, relays that aggregate: relay groups as columns refute trial latencies.

A *group* is an uploader j with its own column (module subset; possibly none) and the devices relaying to it, each
with its subset (columns of solvers/latency_model.py's `EdgeColumns`). With `relay_aggregates` it uploads the union
U of its modules once, starting at S = its last ready time, so at a trial latency T its band is exactly
b_g = R_j^-1(U / (T - S)) / B_e. "Some plan finishes by T" needs disjoint groups that cover every module's demand
with sum_g b_g <= 1. The master LP over the groups priced so far:
    min sum_g b_g x_g   s.t.   sum_g cov_gm x_g >= 1 (coverage, in units of module m's demand),
    sum_(g with i in it) x_g <= 1 (each device in at most one group; the uploader counts),
    sum_c y_mc >= 1 and sum_(g where i trains m) x_g >= sum_(c with i) y_mc (each module's minimal covers c, as in
    solvers/column_milp.py: the convex hull of its knapsack), x, y >= 0.
Every plan finishing by T is disjoint groups, one per uploader, and holds a minimal cover of each module, so at any
multipliers pi, mu, rho >= 0 (coverage, devices, cover holders)
    sum_g b_g >= sum_m pi_m - sum_i mu_i + sum_m min_c sum_(i in c) rho_mi + sum_j min(0, rc_j),
rc_j the least reduced cost b_g - pi cov_g - rho_g + mu(g) over every group uploaded by j (a Lagrangian bound, valid
at any multipliers: HiGHS's are only clipped to their signs). Above 1 it proves that no plan finishes by T. Pricing is
exact: for each union Q of modules and start S (a ready time of j's columns), each member independently takes its
best column within Q ready by S, the group's band is at most R_j^-1(bits(Q) / (T - S)), with equality at the real
group's own (Q, S); so the least over (Q, S) is the least over groups, and its group is the next column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import now
from solvers.column_milp import minimal_covers
from solvers.highs import bare_highs, highs_lp, run_lp
from solvers.instance import RoundProblem
from solvers.latency_model import EdgeColumns

PENALTY = 10.0
"""Cost (units of B_e) of a unit of uncovered demand in the master: keeps it feasible at any latency."""
MAX_MODULES = 8
"""Edges of more modules are left out (pricing enumerates the 2^M unions)."""
TOL = 1e-6


@dataclass
class _Uploader:
    """One uploader's pricing tables at a trial latency."""

    j: int
    ents: list[tuple[int, np.ndarray]]  # (device, its columns to j in ready order); j's own first if any
    starts: np.ndarray  # [S] the group starts tried
    band: np.ndarray  # [Q, S] R_j^-1(bits(Q) / (T - S)) / B_e
    at: list[np.ndarray]  # per entity: [S] columns ready by each start (a count into its ready order)
    sub: list[np.ndarray]  # per entity: [Q, its columns] the column's modules lie within Q


class UnionColumns:
    """The group master of one edge (`refutes(t, deadline)`)."""

    def __init__(self, p: RoundProblem) -> None:
        self.p = p
        c = self.c = EdgeColumns.of(p)
        m = p.num_modules
        self.ok = m <= MAX_MODULES
        demand = p.coverage_demand()[0]
        self.need = np.flatnonzero(demand > 0)
        self.cov = (c.mask[:, self.need] * p.samples[c.dev][:, None]) / demand[self.need][None, :]  # [C, M']
        self.cmask = c.mask.astype(np.int64) @ (1 << np.arange(m))
        self.qs = np.arange(1 << m)
        self.qbits = ((self.qs[:, None] >> np.arange(m)[None, :]) & 1) @ (8.0 * p.module_bytes)
        self.milps = 0
        self.pool: list[list[int]] = []  # every group priced so far (columns start the next trial's master)
        self._entries: dict[tuple[int, ...], tuple[list[int], list[float]]] = {}  # a group's master column
        self.covers: list[tuple[int, np.ndarray, np.ndarray]] = []  # (m' index, holders, covers [K, holders])
        for a, mm in enumerate(self.need):
            holders, covers = minimal_covers(p, int(mm), float(demand[mm]))
            if covers.shape[0]:
                self.covers.append((a, holders, covers.astype(bool)))
        self.nrho = sum(h.size for _, h, _ in self.covers)

    def _tables(self, t: float) -> list[_Uploader]:
        p, c = self.p, self.c
        out = []
        for j in range(p.num_devices):
            ents = []
            for i in [j] + sorted({int(d) for d in c.dev[(c.up == j) & (c.dev != j)]}):
                cols = np.flatnonzero((c.up == j) & (c.dev == i) & (c.ready < t))
                if cols.size:
                    ents.append((i, cols[np.argsort(c.ready[cols], kind="stable")]))
            if not ents:
                continue
            starts = np.unique(np.concatenate([c.ready[cols] for _, cols in ents]))
            with np.errstate(divide="ignore"):
                q = self.qbits[:, None] / (t - starts)[None, :]
            band = min_bandwidth(q, np.full(q.shape, p.snr_hz[j])) / c.band
            at = [np.searchsorted(c.ready[cols], starts, side="right") for _, cols in ents]
            sub = [(self.cmask[cols][None, :] & ~self.qs[:, None]) == 0 for _, cols in ents]
            out.append(_Uploader(j, ents, starts, band, at, sub))
        return out

    def _price(self, u: _Uploader, gain: np.ndarray, mu: np.ndarray) -> tuple[float, list[int]]:
        """(least reduced cost of u's groups, that group's columns)."""
        value = np.full(u.band.shape, -mu[u.j])
        picks = []
        for (i, cols), at, sub in zip(u.ents, u.at, u.sub, strict=True):
            g = np.where(sub, gain[cols][None, :], -np.inf)  # [Q, cols]
            run = np.maximum.accumulate(g, axis=1)
            best = np.where(at[None, :] > 0, run[:, np.maximum(at - 1, 0)], -np.inf)  # [Q, S]
            worth = best - (mu[i] if i != u.j else 0.0)
            value += np.maximum(worth, 0.0)
            picks.append((i, cols, g, at))
        rc = u.band - value
        k = int(np.argmin(rc))
        qi, si = divmod(k, rc.shape[1])
        group = []
        for i, cols, g, at in picks:
            n = int(at[si])
            if n == 0:
                continue
            a = int(np.argmax(g[qi, :n]))
            if g[qi, a] - (mu[i] if i != u.j else 0.0) > 0:
                group.append(int(cols[a]))
        return float(rc[qi, si]), group

    def refutes(self, t: float, deadline: float, seed: list[list[int]] | None = None) -> bool:
        """True when the bound proves that no plan finishes by t (False: not proven before `deadline`)."""
        if not self.ok or self.need.size == 0:
            return False
        fast = bare_highs()
        if fast is None:
            return False
        highspy, bare = fast
        c, p = self.c, self.p
        ups = self._tables(t)
        if not ups:
            return True  # nothing can finish by t, but some module needs training
        groups: list[tuple[int, list[int], float]] = []
        seen: set[tuple[int, ...]] = set()

        def add(j: int, cols: list[int], cost: float | None = None) -> None:
            key = (j, *sorted(cols))
            if cols and key not in seen:
                cost = c.group_cost(np.array(cols), t) if cost is None else cost
                if math.isfinite(cost):
                    seen.add(key)
                    groups.append((j, cols, cost))

        alone = c.cost(t, dominate=False)
        for x in np.flatnonzero((c.up == c.dev) & np.isfinite(alone)):
            add(int(c.dev[x]), [int(x)], float(alone[x]))
        for g in [*self.pool, *(seed or [])]:
            add(int(c.up[g[0]]), list(g))
        nm, n = self.need.size, p.num_devices
        while now() < deadline:
            pi, mu, rho = self._master(highspy, bare, groups, t, nm, n)
            self.milps += 1
            if pi is None:
                return False
            gain = self.cov @ pi
            bound = float(pi.sum() - mu.sum())
            bound += self._cover_terms(rho, gain)
            grew = False
            for u in ups:
                rc, group = self._price(u, gain, mu)
                bound += min(0.0, rc)
                if rc < -TOL and group:
                    n0 = len(groups)
                    add(u.j, group)
                    if len(groups) > n0:
                        grew = True
                        self.pool.append(group)
            if bound > 1 + 1e-7:
                return True
            if not grew:
                return False
        return False

    def _cover_terms(self, rho: np.ndarray, gain: np.ndarray) -> float:
        """The Lagrangian's cover part at rho: each module's cheapest minimal cover (returned, summed), and each
        column's rho of the holders it trains added to `gain` (in place)."""
        c, bound, k = self.c, 0.0, 0
        for a, holders, covers in self.covers:
            r = rho[k:k + holders.size]
            k += holders.size
            bound += float((covers @ r).min())
            hit = np.flatnonzero(c.mask[:, self.need[a]] > 0)
            pos = np.searchsorted(holders, c.dev[hit])
            inside = (pos < holders.size) & (holders[np.minimum(pos, holders.size - 1)] == c.dev[hit])
            gain[hit[inside]] += r[pos[inside]]
        return bound

    def _master(self, highspy: Any, bare: Any, groups: list[tuple[int, list[int], float]], t: float, nm: int,
                n: int) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """The master LP's (pi [M'], mu [N], rho [cover holders]) clipped to their signs; pi None where HiGHS gives
        no duals. Rows: coverage, devices, then per module with covers sum_c y_c >= 1 and per holder i
        (trains m in the groups) - sum_(c with i) y_c >= 0 (the convex hull of the module's knapsack)."""
        c = self.c
        nc = len(self.covers)
        base = nm + n + nc  # the first rho row
        rho_row = cover_rows(self.covers, self.need, base)
        cost, starts, index, value = [], [0], [], []
        for j, cols, b in groups:
            cost.append(b)
            key = (j, *cols)
            if key not in self._entries:
                cv = self.cov[cols].sum(axis=0)
                rows = [int(r) for r in np.flatnonzero(cv > 0)]
                devs = sorted({j, *(int(c.dev[x]) for x in cols)})
                rr = [rho_row[(int(mm), int(c.dev[x]))] for x in cols for mm in self.need[self.cov[x] > 0]
                      if (int(mm), int(c.dev[x])) in rho_row]
                self._entries[key] = (rows + [nm + d for d in devs] + rr,
                                      [float(cv[r]) for r in rows] + [1.0] * (len(devs) + len(rr)))
            ix, vals = self._entries[key]
            index += ix
            value += vals
            starts.append(len(index))
        slack_and_cover_columns(self.covers, nm, n, base, cost, starts, index, value)
        nv = len(cost)
        inf = highspy.kHighsInf
        lp = highs_lp(highspy, np.array(cost), np.zeros(nv), np.full(nv, inf),
                      np.concatenate([np.ones(nm), np.full(n, -inf), np.ones(nc), np.zeros(self.nrho)]),
                      np.concatenate([np.full(nm, inf), np.ones(n), np.full(nc + self.nrho, inf)]),
                      np.array(starts, dtype=np.int32), np.array(index, dtype=np.int32), np.array(value, dtype=float))
        sol = run_lp(bare, lp).getSolution()
        if not sol.dual_valid:
            return None, np.zeros(n), np.zeros(self.nrho)
        dual = np.asarray(sol.row_dual, dtype=float)
        return np.maximum(dual[:nm], 0.0), np.maximum(-dual[nm:nm + n], 0.0), np.maximum(dual[base:], 0.0)


FLOOR = 0.9
"""The first trial, x upper: where the master does not refute it, it is left (the column model's ladder of
solvers/latency_search.py proves 0.8-0.9 x upper where this relaxation is weaker); else (1 - TRIAL x gap) x upper,
then halvings between the largest refuted and the least not refuted."""
TRIAL = 0.9
RESOLUTION = 1e-3
"""Bisection stops once the bracket is this narrow (x upper)."""


def cover_rows(covers: list[Any], need: np.ndarray, base: int) -> dict[tuple[int, int], int]:
    """The master's row of each (module, cover holder): base on, in the order of `covers` (module index into
    `need`, holders, covers) and their holders."""
    rows: dict[tuple[int, int], int] = {}
    for mod, holders, _ in covers:
        for i in holders:
            rows[(int(need[mod]), int(i))] = base + len(rows)
    return rows


def slack_and_cover_columns(covers: list[Any], nm: int, n: int, base: int, cost: list[float], starts: list[int],
                            index: list[int], value: list[float]) -> None:
    """Append to a master's CSC columns a slack (at PENALTY) on each coverage row and each module's covers row, then
    each minimal cover c of module a: +1 on the module's row nm + n + a, -1 on its holders' rows (from base)."""
    for r in range(nm + len(covers)):
        cost.append(PENALTY)
        index.append(r if r < nm else nm + n + r - nm)
        value.append(1.0)
        starts.append(len(index))
    k = 0
    for a, (_, holders, module_covers) in enumerate(covers):
        for cover in module_covers:
            cost.append(0.0)
            index += [nm + n + a] + [base + k + int(h) for h in np.flatnonzero(cover)]
            value += [1.0] + [-1.0] * int(cover.sum())
            starts.append(len(index))
        k += holders.size


def union_refute(p: RoundProblem, upper: float, deadline: float, gap: float = 0.01,
                 model: UnionColumns | None = None, lower: float = 0.0) -> float:
    """The largest latency of the one-edge problem p (relays that aggregate, lambda = 0) that the group master
    refutes before `deadline`, trials between `lower` (already refuted) and `upper` (a latency the edge achieves),
    `lower` where it refutes none above it."""
    uc = model if model is not None else UnionColumns(p)
    lo, hi = lower, (1 - TRIAL * gap) * upper
    if hi <= lo:
        return lo
    if FLOOR * upper > lo:
        if not uc.refutes(FLOOR * upper, deadline):
            return lo
        lo = FLOOR * upper
    if uc.refutes(hi, deadline):
        return hi
    while hi - lo > RESOLUTION * upper and now() < deadline:
        t = 0.5 * (lo + hi)
        if uc.refutes(t, deadline):
            lo = t
        else:
            hi = t
    return lo
