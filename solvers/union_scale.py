"""relay_aggregates at scale (lambda = 0): the relay-group master of solvers/union_columns.py on the slowest large
edge, its multipliers read as a bound at every trial latency.

On a 100-device edge the master (relay groups as columns: an uploader and the in-neighbours that relay to it, each
with a module subset, priced at the exact band of their union at the trial latency) is generated at one trial
latency t0. Its Lagrangian bound
    L(t) = sum_m pi_m - sum_i mu_i + sum_m min_c sum_(i in c) rho_mi + sum_j min(0, j's least reduced cost at t)
holds at any multipliers >= 0 and any t (union_columns.py's docstring: every plan finishing by t is disjoint groups
and minimal covers feasible for the master at t, whose summed band is at most 1), so L(t) > 1 proves that no plan
finishes by t. So after one column generation, a bisection over L with the multipliers fixed (one pricing pass a
step) finds the largest latency they refute, also below t0; the next trial starts from it, the pool of groups kept
(as solvers/union_dual.py does with the union LP's dual).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import now
from solvers.evaluate import LN2
from solvers.highs import bare_highs, highs, highs_lp, run
from solvers.instance import RoundProblem
from solvers.parallel import restrict
from solvers.union_columns import TOL, UnionColumns, cover_rows, slack_and_cover_columns

Duals = tuple[np.ndarray, np.ndarray, np.ndarray]

TRIAL = 0.72
"""The first trial latency, x the edge's latency (on the slowest edges of 1,000-device rounds refuted within 0.6-1 CPU
s; 0.66 first left less time for the trials above it: A/B median 19.0 against 22.8 %)."""
MIN_S = 1.0
"""Edges of M modules get the master only with at least MIN_S x 2^M / 256 seconds left (at least 0.3 s): pricing
scales with the 2^M unions, and with 8 modules 0.78 s did not refute a first trial (the union LP's dual takes it)."""
UP = 0.04
"""While time is left, the next trial: 1 + UP x the largest refuted so far (halfway to the least trial not refuted,
if nearer)."""
STEPS = 4
"""Bisection steps over L below a trial not refuted (each a pricing pass)."""
SEED_ALONE = True
"""The first master holds every single device sending one subset direct that fits the band."""
BIG = 1e6
"""A group's cost in the master where it cannot finish by the trial latency."""
MAX_DEVICES = 400
"""Edges of more devices are left out."""


RATIO = 0.99
"""Starts of one uploader whose slacks lie in one bin of this ratio are priced as one (`slack_bins`) ..."""
SMALL, SMALL_RATIO = 16, 0.999
"""... on edges of more than SMALL devices; at most SMALL: SMALL_RATIO (near a full band the 1 % of slack costs
5-8 % of the refuted latency on 4-5-device edges, and pricing them is cheap)."""
STEP = 2.5e-4
"""`lower_band`'s table: log k in steps of STEP."""
_LOG_K0 = math.log(1e-12)
_K = np.exp(_LOG_K0 + STEP * np.arange(int(-_LOG_K0 / STEP)))
_Z = min_bandwidth(_K / LN2, np.ones_like(_K))  # z(k) = b / a at the table's k (a = 1)


def slack_bins(slack: np.ndarray, ratio: float) -> np.ndarray:
    """Each slack's bin's largest slack: bins [ratio^-b, ratio^-(b+1)) in log scale; its band is at most any slack's
    in the bin."""
    w = -math.log(ratio)
    return np.exp((np.floor(np.log(slack) / w) + 1) * w)


def lower_band(log_q: np.ndarray, a: np.ndarray | float) -> np.ndarray:
    """A lower bound on min_bandwidth(exp(log_q), a) within a factor of about e^(2 STEP) in q, by one table look-up:
    b = a z(k), k = q ln 2 / a, z increasing in k, so z at the table's k a step below k's is below (inf: k >= 1)."""
    log_k = log_q + np.log(LN2 / np.asarray(a, dtype=float))
    idx = np.minimum(np.floor((log_k - _LOG_K0) / STEP) - 1, _Z.size - 1)
    out = np.where(log_k < 1e-12, a * _Z[np.maximum(idx, 0).astype(np.int64)], np.inf)
    return np.where(idx < 0, 0.0, out)


@dataclass
class _Uploader:
    """One uploader's pricing tables at a trial latency (as union_columns.py's)."""

    j: int
    ents: list[tuple[int, np.ndarray]]  # (device, its columns to j in ready order); j's own first if any
    starts: np.ndarray  # [S] the group starts tried (each a slack bin's latest)
    band: np.ndarray  # [Q, S] a lower bound on R_j^-1(bits(Q) / slack) / B_e
    at: list[np.ndarray]  # per entity: [S] columns ready by each start
    sub: list[np.ndarray]  # per entity: [Q, its columns] the column's modules lie within Q


class ScaleColumns(UnionColumns):
    """UnionColumns with its multipliers kept: `generate(t, deadline)`, then `lagrange(t, duals)` at any t."""

    def __init__(self, p: RoundProblem, ratio: float = RATIO) -> None:
        super().__init__(p)
        self.ratio = ratio
        self._keys: set[tuple[int, ...]] = set()  # the pool's groups (uploader, columns)
        self._at: tuple[float, list[_Uploader]] | None = None  # the last trial's pricing tables (reused)
        self._master_lp: _Master | None = None
        self.step = 0.0  # the longest column generation iteration so far (s)
        c = self.c
        self._ents: list[tuple[int, list[tuple[int, np.ndarray, np.ndarray]]]] = []  # per uploader: (i, cols, sub)
        order = np.lexsort((c.ready, c.dev, c.up))  # columns by uploader, device, ready time
        cut = np.flatnonzero(np.diff(c.up[order]) != 0) + 1
        for block in np.split(order, cut) if order.size else []:
            j = int(c.up[block[0]])
            devs = c.dev[block]
            ents = []
            for i in [j] + sorted({int(d) for d in devs if d != j}):
                cols = block[devs == i]
                if cols.size:
                    ents.append((i, cols, (self.cmask[cols][None, :] & ~self.qs[:, None]) == 0))
            self._ents.append((j, ents))
        self._logq = np.log(np.maximum(self.qbits, 1e-300))

    def _scale_tables(self, t: float) -> list[_Uploader]:
        """The pricing tables at t (union_columns.py) with a lower band: the starts of one slack bin (`slack_bins`)
        priced as one, members ready by its latest start, the band at the bin's largest slack through `lower_band`:
        no group starting in the bin is cheaper, so the least reduced cost is at most the exact one."""
        p, c = self.p, self.c
        out = []
        for j, all_ents in self._ents:
            ents, subs = [], []
            for i, cols, sub in all_ents:
                k = int(np.searchsorted(c.ready[cols], t, side="left"))  # ready < t
                if k:
                    ents.append((i, cols[:k]))
                    subs.append(sub[:, :k])
            if not ents:
                continue
            ready = np.unique(np.concatenate([c.ready[cols] for _, cols in ents]))
            top = slack_bins(t - ready, self.ratio)  # each start's bin's largest slack
            last = np.flatnonzero(np.append(top[1:] != top[:-1], True))
            starts, slack = ready[last], top[last]
            band = lower_band(self._logq[:, None] - np.log(slack)[None, :], float(p.snr_hz[j])) / c.band
            band[0] = 0.0  # the empty union
            at = [np.searchsorted(c.ready[cols], starts, side="right") for _, cols in ents]
            out.append(_Uploader(j, ents, starts, band, at, subs))
        return out

    def _scale_price(self, u: _Uploader, gain: np.ndarray, mu: np.ndarray) -> tuple[float, list[int]]:
        """union_columns.py's pricing over each member's columns of positive worth only (the others add nothing:
        a member joins only for a positive worth), members of none left out: the same least reduced cost."""
        value = np.full(u.band.shape, -mu[u.j])
        picks = []
        for (i, cols), at, sub in zip(u.ents, u.at, u.sub, strict=True):
            worth = gain[cols] - (mu[i] if i != u.j else 0.0)
            pos = worth > 0
            if not pos.any():
                continue
            g = np.where(sub[:, pos], worth[pos][None, :], -np.inf)  # [Q, positive columns]
            run = np.maximum.accumulate(g, axis=1)
            at_pos = np.concatenate([[0], np.cumsum(pos)])[at]  # positive columns ready by each start
            value += np.where(at_pos[None, :] > 0, np.maximum(run[:, np.maximum(at_pos - 1, 0)], 0.0), 0.0)
            picks.append((cols[pos], g, at_pos))
        rc = u.band - value
        k = int(np.argmin(rc))
        qi, si = divmod(k, rc.shape[1])
        group = []
        for cols, g, at_pos in picks:
            n = int(at_pos[si])
            if n:
                a = int(np.argmax(g[qi, :n]))
                if g[qi, a] > 0:
                    group.append(int(cols[a]))
        return float(rc[qi, si]), group

    def lagrange(self, t: float, duals: Duals, grow: bool = False) -> tuple[float, bool]:
        """(L(t) at these multipliers, whether pricing added a group to the pool; only with `grow`)."""
        pi, mu, rho = duals
        if self._at is None or self._at[0] != t:
            self._at = (t, self._scale_tables(t))
        ups = self._at[1]
        if not ups:
            return math.inf, False  # nothing finishes by t, and some module needs training
        gain = self.cov @ pi
        bound = float(pi.sum() - mu.sum())
        bound += self._cover_terms(rho, gain)  # each module's cheapest minimal cover at rho
        grew = False
        for u in ups:
            rc, group = self._scale_price(u, gain, mu)
            bound += min(0.0, rc)
            if grow and rc < -TOL and group:
                key = (u.j, *sorted(group))
                if key not in self._keys:
                    self._keys.add(key)
                    self.pool.append(group)
                    grew = True
        return bound, grew

    def generate(self, t: float, deadline: float) -> tuple[bool, Duals | None]:
        """Column generation at t until it refutes t, converges, or `deadline`: (refuted, the last multipliers)."""
        fast = bare_highs()
        if not self.ok or self.need.size == 0 or fast is None:
            return False, None
        if self._master_lp is None:
            self._master_lp = _Master(self, *fast)
        master = self._master_lp
        master.at(t)
        if SEED_ALONE and not master.groups:  # single devices sending their own subsets: a start for the duals
            c = self.c
            alone = np.flatnonzero((c.up == c.dev) & (c.cost(t, dominate=False) < 1))
            for x in alone.tolist():
                self._keys.add((int(c.up[x]), x))
                self.pool.append([x])
            master.add(self.pool[-alone.size :] if alone.size else [])
        duals: Duals | None = None
        while now() + self.step < deadline:  # an iteration that would end past the deadline does not start
            began = now()
            duals = master.solve()
            self.milps += 1
            if duals is None:
                return False, None
            n0 = len(self.pool)
            bound, grew = self.lagrange(t, duals, grow=True)
            master.add(self.pool[n0:])
            if math.isinf(bound):
                return True, None
            if bound > 1 + 1e-7:
                return True, duals
            self.step = max(self.step, now() - began)
            if not grew:
                return False, duals
        return False, duals


class _Master:
    """The group master LP of solvers/union_columns.py kept in one HiGHS instance: groups are added as they are
    priced and their costs reset at each trial latency, so each solve starts from the last basis. Its columns are
    the pool's groups only (no single columns up front: pricing finds those too), with a penalty slack on each
    coverage row; any columns serve, as only the multipliers are read."""

    def __init__(self, uc: ScaleColumns, highspy: Any, bare: Any) -> None:
        self.uc, self.t = uc, 0.0
        nm, n, nc = uc.need.size, uc.p.num_devices, len(uc.covers)
        self.nm, self.n, self.base = nm, n, nm + n + nc
        self.rho_row = cover_rows(uc.covers, uc.need, self.base)
        cost: list[float] = []
        value: list[float] = []
        starts: list[int] = [0]
        index: list[int] = []
        slack_and_cover_columns(uc.covers, nm, n, self.base, cost, starts, index, value)
        nv, inf = len(cost), highspy.kHighsInf
        lp = highs_lp(
            highspy,
            np.array(cost),
            np.zeros(nv),
            np.full(nv, inf),
            np.concatenate([np.ones(nm), np.full(n, -inf), np.ones(nc), np.zeros(uc.nrho)]),
            np.concatenate([np.full(nm, inf), np.ones(n), np.full(nc + uc.nrho, inf)]),
            np.array(starts, dtype=np.int32),
            np.array(index, dtype=np.int32),
            np.array(value, dtype=float),
        )
        self.h = highs(bare, lp)
        self.first = nv  # the groups' columns follow
        self.groups: list[list[int]] = []
        self.add(list(uc.pool))

    def _costs(self, groups: list[list[int]]) -> np.ndarray:
        """Each group's band at the trial latency as the pricing sees it (its start's bin's largest slack, the
        table's band: at most its exact band; BIG: it cannot finish by then)."""
        c, uc = self.uc.c, self.uc
        up = np.array([c.up[g[0]] for g in groups], dtype=int)
        start = np.array([c.ready[g].max() for g in groups])
        bits = np.array([c.group_bits(np.array(g)) for g in groups])
        with np.errstate(divide="ignore", invalid="ignore"):
            slack = slack_bins(np.maximum(self.t - start, 1e-300), uc.ratio)
            band = lower_band(np.log(np.maximum(bits, 1e-300)) - np.log(slack), self.uc.p.snr_hz[up]) / c.band
        band = np.where(start < self.t, band, np.inf)
        return np.where(np.isfinite(band), np.minimum(band, BIG), BIG)

    def at(self, t: float) -> None:
        """Every group's cost at trial latency t."""
        self.t = t
        if self.groups:
            idx = np.arange(self.first, self.first + len(self.groups), dtype=np.int32)
            self.h.changeColsCost(idx.size, idx, self._costs(self.groups))

    def add(self, groups: list[list[int]]) -> None:
        uc, c = self.uc, self.uc.c
        if not groups:
            return
        starts: list[int] = []
        index: list[int] = []
        value: list[float] = []
        for g in groups:
            starts.append(len(index))
            cv = uc.cov[g].sum(axis=0)
            rows = np.flatnonzero(cv > 0)
            devs = sorted({int(c.up[g[0]]), *(int(c.dev[x]) for x in g)})
            rr = [
                self.rho_row[(int(mm), int(c.dev[x]))]
                for x in g
                for mm in uc.need[uc.cov[x] > 0]
                if (int(mm), int(c.dev[x])) in self.rho_row
            ]
            index += rows.tolist() + [self.nm + d for d in devs] + rr
            value += cv[rows].tolist() + [1.0] * (len(devs) + len(rr))
        k = len(groups)
        upper = np.full(k, np.inf)  # no upper bound (x <= 1 follows from the device rows): its dual is not read
        self.h.addCols(
            k,
            self._costs(groups),
            np.zeros(k),
            upper,
            len(index),
            np.array(starts, dtype=np.int32),
            np.array(index, dtype=np.int32),
            np.array(value, dtype=float),
        )
        self.groups += groups

    def solve(self) -> Duals | None:
        """(pi, mu, rho) clipped to their signs; None where HiGHS gives no duals."""
        sol = run(self.h).getSolution()
        if not sol.dual_valid:
            return None
        dual = np.asarray(sol.row_dual, dtype=float)
        nm, n = self.nm, self.n
        return np.maximum(dual[:nm], 0.0), np.maximum(-dual[nm : nm + n], 0.0), np.maximum(dual[self.base :], 0.0)


def union_scale_bound(p: RoundProblem, e: int, upper: float, lower: float, by: float, trial: float = TRIAL) -> float:
    """Largest latency of edge e (upper: a latency it achieves) the group master's multipliers refute before `by`,
    `lower` (already proven) where they refute none above it."""
    members = np.flatnonzero(p.device_edge == e)
    if members.size > MAX_DEVICES or upper <= lower or by - now() < max(0.3, MIN_S * 2.0**p.num_modules / 256):
        return lower
    sub, _ = restrict(p, np.array([e]))
    uc = ScaleColumns(sub, RATIO if sub.num_devices > SMALL else SMALL_RATIO)
    best, fail, t = lower, upper, max(trial * upper, lower)
    while now() < by:
        refuted, duals = uc.generate(t, by)
        if refuted:
            best = max(best, t)
        else:
            fail = t
            if duals is None:
                break
            best = _bisect(uc, duals, best, fail, by)  # what the last multipliers refute below t
        t = min(best * (1 + UP), 0.5 * (best + fail))
        if t <= best * (1 + 1e-3):
            break
    return best


def _bisect(uc: ScaleColumns, duals: Duals, lo: float, hi: float, by: float) -> float:
    """The largest latency in [lo, hi] these multipliers refute (lo: refuted already), STEPS halvings."""
    for _ in range(STEPS):
        if now() + uc.step >= by:
            break
        began = now()
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if uc.lagrange(mid, duals)[0] > 1 + 1e-7 else (lo, mid)
        uc.step = max(uc.step, now() - began)
    return lo
