"""lambda = 0, one edge: the latency model at a trial latency T, a column MILP with no bits x 1/R products.

At a fixed T every uploader j that starts at S_j needs the band h_j(T) = R_j^-1(U_j / (T - S_j)), so "latency <= T"
is "sum_j h_j(T) <= B_e". A column is one device's module subset and its route (direct, or via a D2D neighbour);
its ready time (compute, plus the D2D hop) and payload are known, so its band at T is a number:
  direct: R_i^-1(P / (T - tau_i(S)))  (exact when nobody relays through i);
  via j:  R_j^-1(P / (T - tau_i(S) - P / r_ij))  (a lower bound on its share of j's upload: R^-1 is convex with
          R^-1(0) = 0, so superadditive, and j starts no earlier than any part arrives).
The MILP picks at most one column per device: coverage per module, one hop (a relay does not relay), relay
capacity, and minimizes the summed band (in units of B_e). Its optimum (or HiGHS's dual bound) above 1 proves that
no plan finishes by T: T is a lower bound. Below 1, its columns are a plan; where relays make the sum an
under-estimate, the group's exact band is added back lazily (a cut on that combination of columns), so a plan the
MILP accepts is one that really finishes by T.

solvers/latency_search.py searches T with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import now
from solvers.column_milp import INF, Extra, Row, choice_rows, run_milp
from solvers.instance import RoundProblem
from solvers.subsets import trainable_subsets

PAIRS_UPFRONT = True
"""Pair cuts on every D2D link from the first MILP (else only on the links of groups found under-estimated)."""
PAIR_MIN = 1e-4
"""Pair-cut terms below this band share are left out (smaller rows; the cut stays valid, a hair weaker)."""


@dataclass
class EdgeColumns:
    """Every (device, module subset, route) of a one-edge problem (devices 0..n-1 all on edge 0)."""

    dev: np.ndarray  # [C] the device
    mask: np.ndarray  # [C, M] modules of the subset (0/1)
    up: np.ndarray  # [C] the uploader: dev (direct) or the relay
    ready: np.ndarray  # [C] when the payload is at the uploader (compute, + the D2D hop)
    pay: np.ndarray  # [C] payload bits
    band: float  # B_e
    snr: np.ndarray  # [N] a = p g / N0
    twin: np.ndarray  # [C] the direct column of the same device and subset
    union_bits: np.ndarray | None  # [M] module bits with relay_aggregates (a group sends the union), else None
    cuts: list[tuple[np.ndarray, int]] = field(default_factory=list)  # lazy groups: (columns, uploader)
    pairs: set[tuple[int, int]] = field(default_factory=set)  # lazy (relayed device, relay) pair cuts

    @classmethod
    def of(cls, p: RoundProblem) -> EdgeColumns:
        if p.num_edges != 1:
            raise ValueError(f"num_edges = {p.num_edges}: the latency model takes one edge (solvers.parallel.restrict)")
        dev, _, mask = trainable_subsets(p, np.arange(p.num_devices))
        pay = 8.0 * (mask @ p.module_bytes)
        tau = p.samples[dev] * (mask @ p.module_cycles) / p.cpu_hz[dev]
        devs, masks_, ups, ready, pays, twins = [dev], [mask], [dev], [tau], [pay], [np.arange(dev.size)]
        for s_, d_, r_ in zip(p.d2d_src, p.d2d_dst, p.d2d_rate_bps, strict=True):
            on = np.flatnonzero(dev == s_)
            devs.append(dev[on])
            masks_.append(mask[on])
            ups.append(np.full(on.size, d_))
            ready.append(tau[on] + pay[on] / r_)
            pays.append(pay[on])
            twins.append(on)
        return cls(dev=np.concatenate(devs), mask=np.concatenate(masks_), up=np.concatenate(ups),
                   ready=np.concatenate(ready), pay=np.concatenate(pays), band=float(p.edge_bandwidth_hz[0]),
                   snr=p.snr_hz, twin=np.concatenate(twins),
                   union_bits=8.0 * p.module_bytes if p.relay_aggregates else None)

    def cost(self, t: float, dominate: bool = True) -> np.ndarray:
        """[C] each column's band at latency t in units of B_e (inf: it cannot finish by t, or, with `dominate`, it
        is dominated: a relay that needs no less band than sending the same subset direct, which is never worse
        when relays forward every payload; not so when they aggregate)."""
        slack = t - self.ready
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(slack > 0, self.pay / np.where(slack > 0, slack, 1.0), np.inf)
        out = min_bandwidth(q, self.snr[self.up]) / self.band
        if dominate:
            out[self.relayed & (out >= out[self.twin])] = np.inf
        return out

    @property
    def relayed(self) -> np.ndarray:
        return self.up != self.dev

    def fixed_energy(self, p: RoundProblem) -> np.ndarray:
        """[C] each column's energy that no band choice changes (J): compute at cpu_hz, plus the D2D hop's."""
        cyc = self.mask @ p.module_cycles
        tau = p.samples[self.dev] * cyc / p.cpu_hz[self.dev]
        compute = p.kappa * p.samples[self.dev] * cyc * p.cpu_hz[self.dev] ** 2
        return compute + np.where(self.relayed, p.d2d_power_w[self.dev] * (self.ready - tau), 0.0)

    def pair_extra(self, i: int, j: int, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For relayed device i -> relay j: own columns o of j, relay columns r of i via j, and [O, R] the band
        that sending them together adds beyond their columns (inf: together they cannot finish by t).

        Valid for any group of j that holds o: with f = R_j^-1 convex, f(0) = 0, increasing differences give
        f(q_o + sum_r q_r) >= f(q_o) + sum_r [f(q'_o + q'_r) - f(q'_o)] (q' at the pair's own start, no later
        than the group's), so the group's excess over its columns is at least the sum of its pairs' excesses."""
        own = np.flatnonzero((self.dev == j) & ~self.relayed)
        rel = np.flatnonzero((self.dev == i) & (self.up == j))
        start = np.maximum(self.ready[own][:, None], self.ready[rel][None, :])
        win = t - start
        ok = win > 0
        w = np.where(ok, win, 1.0)
        a = np.full(start.shape, self.snr[j])
        qo, qr = self.pay[own][:, None] / w, self.pay[rel][None, :] / w
        with np.errstate(invalid="ignore"):
            both = min_bandwidth(qo + qr, a) - min_bandwidth(qo, a)
            slack = t - self.ready[rel]
            q = np.where(slack > 0, self.pay[rel] / np.where(slack > 0, slack, 1.0), np.inf)
            alone = min_bandwidth(q, np.full(rel.size, self.snr[j]))
            extra = np.where(ok, (both - alone[None, :]) / self.band, np.inf)
        return own, rel, np.where(np.isnan(extra), np.inf, np.maximum(extra, 0.0))

    def plan(self, num_devices: int, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(placement [N, M], relay [N]) of the chosen columns ``cols`` (one per device that trains)."""
        x = np.zeros((num_devices, self.mask.shape[1]), dtype=bool)
        relay = np.arange(num_devices)
        x[self.dev[cols]] = self.mask[cols] > 0
        relay[self.dev[cols]] = self.up[cols]
        return x, relay

    def group_bits(self, cols: np.ndarray) -> float:
        """What one uploader's columns send together: the payloads' sum, or with relay_aggregates their union."""
        if self.union_bits is None:
            return float(self.pay[cols].sum())
        return float(np.max(self.mask[cols], axis=0) @ self.union_bits)

    def group_cost(self, cols: np.ndarray, t: float) -> float:
        """The exact band (units of B_e) of one uploader's columns sent together at latency t."""
        start = float(self.ready[cols].max())
        if start >= t:
            return math.inf
        u = int(self.up[cols[0]])
        q = self.group_bits(cols) / (t - start)
        return float(min_bandwidth(np.array([q]), self.snr[u : u + 1])[0]) / self.band


@dataclass(frozen=True)
class AtT:
    """The MILP at one trial latency: `feasible` False proves no plan finishes by t; else `cols` is a plan
    (its columns) whose exact band fits, or None when time ran out before either was settled."""

    t: float
    feasible: bool | None
    cols: np.ndarray | None
    bound: float  # the dual bound on the summed band (units of B_e)


class LatencyModel:
    """One edge's column MILP; `at(t, deadline)` answers whether latency t is achievable."""

    def __init__(self, p: RoundProblem, pairs_upfront: bool = PAIRS_UPFRONT) -> None:
        self.p = p
        self.pairs_upfront = pairs_upfront
        self.c = EdgeColumns.of(p)
        self.milps = 0
        self._modeled: dict[tuple[int, int], float] = {}  # the last MILP's pair-cut charges

    def at(self, t: float, deadline: float, gap: float = 0.05,
           accept: Callable[[np.ndarray], bool] = lambda cols: False) -> AtT:
        """Settle latency t within the time left before `deadline` (lazy group cuts re-solve as needed).
        accept(cols): a MILP plan whose groups the columns under-estimate is still returned when this says it is
        worth having (e.g. it beats the incumbent), instead of cutting it off and re-solving."""
        c = self.c
        while True:
            left = deadline - now()
            if left <= 0.02:
                return AtT(t, None, None, 0.0)
            cost = c.cost(t)
            status, sol, bound = self._solve(cost, t, left, gap)
            self.milps += 1
            if status == "infeasible" or bound > 1 + 1e-9:
                return AtT(t, False, None, bound)
            if sol is None:
                return AtT(t, None, None, bound)
            over = self._groups_over(sol, cost, t)
            if not over or accept(sol):
                return AtT(t, True, sol, bound)
            c.cuts.extend(over)
            for cols, u in over:
                c.pairs.update((int(c.dev[j]), u) for j in cols if c.relayed[j])

    def _groups_over(self, sol: np.ndarray, cost: np.ndarray, t: float) -> list[tuple[np.ndarray, int]]:
        """The uploaders of a MILP plan whose exact band exceeds what the MILP charged them (their columns and
        pair cuts; a group already cut is charged exactly)."""
        c = self.c
        cut = {tuple(g.tolist()) for g, _ in c.cuts}
        out = []
        for u in np.unique(c.up[sol]):
            group = np.sort(sol[c.up[sol] == u])
            if group.size < 2 or tuple(group.tolist()) in cut:
                continue
            own = group[~c.relayed[group]]
            paired = sum(self._modeled.get((int(own[0]), int(r)), 0.0) for r in group[c.relayed[group]]) \
                if own.size else 0.0
            if c.group_cost(group, t) > (cost[group].sum() + paired) * (1 + 1e-9) + 1e-12:
                out.append((group, int(u)))
        return out

    def _solve(self, cost: np.ndarray, t: float, time_limit: float, gap: float) -> tuple[str, np.ndarray | None,
                                                                                          float]:
        """One HiGHS MILP: (status, chosen columns or None, dual bound)."""
        rows, extra, usable = self.rows(cost, t)
        k = self.c.dev.size
        status, val, bound = run_milp(rows, cost, usable, extra, time_limit, gap, 1.0 + 1e-9)
        if status == "infeasible":
            return "infeasible", None, math.inf
        if val is None:
            return "unknown", None, bound
        sol = np.flatnonzero(val[:k] > 0.5)
        if float(np.where(usable, cost, 0.0)[sol].sum()) > 1 + 1e-7:
            return "unknown", None, bound
        return "optimal", sol, bound

    def rows(self, cost: np.ndarray, t: float) -> tuple[list[Row], Extra, np.ndarray]:
        """The MILP at latency t with column costs `cost`: (rows, continuous variables, usable columns)."""
        p, c = self.p, self.c
        usable = np.isfinite(cost)
        k = c.dev.size
        extra = Extra(k)
        rows = choice_rows(p, c, extra)
        inf = INF
        links = {(int(a), int(b)) for a, b in zip(p.d2d_src, p.d2d_dst, strict=True)} if self.pairs_upfront else set()
        modeled: dict[tuple[int, int], float] = {}  # (own column, relay column) -> the extra its pair cut charges
        for i, j in sorted(c.pairs | links):  # e >= extra[o, r] v_r + max_r extra[o, r] (v_o - 1), per own column o
            own, rel, excess = c.pair_extra(i, j, t)
            if own.size == 0 or rel.size == 0:
                continue
            e = extra.add(1.0)
            for a, o in enumerate(own):
                if not usable[o]:
                    continue
                ok_r = usable[rel]
                row = excess[a]
                for q in np.flatnonzero(ok_r & ~np.isfinite(row)):  # never together
                    rows.append(({int(o): 1.0, int(rel[q]): 1.0}, -inf, 1.0))
                fin = ok_r & np.isfinite(row) & (row > PAIR_MIN)  # dropping a term keeps the cut valid
                if fin.any():
                    big = float(row[fin].max())
                    coefs = {e: 1.0, int(o): -big}
                    coefs.update({int(r): -float(v) for r, v in zip(rel[fin], row[fin], strict=True)})
                    rows.append((coefs, -big, inf))
                    modeled.update({(int(o), int(r)): float(v) for r, v in zip(rel[fin], row[fin], strict=True)})
        self._modeled = modeled
        for cols, u in c.cuts:  # e >= delta (sum v - others - |cols| + 1): the band beyond its columns and pairs
            own_col = cols[~c.relayed[cols]]
            paired = sum(modeled.get((int(own_col[0]), int(r)), 0.0) for r in cols[c.relayed[cols]]) \
                if own_col.size else 0.0
            delta = c.group_cost(cols, t) - float(cost[cols].sum()) - paired
            if not np.isfinite(delta):  # the group cannot finish by t at all: never all of them
                rows.append(({int(j): 1.0 for j in cols}, -inf, cols.size - 1.0))
                continue
            if delta <= 1e-12:
                continue
            # fires only when u's group is exactly these columns (any other member or own subset switches it off),
            # so every group is charged by at most one such cut
            others = np.flatnonzero((c.up == u) & ~np.isin(c.dev, c.dev[cols]) & usable)
            e = extra.add(1.0)
            rows.append(({e: 1.0, **{int(j): -delta for j in cols}, **{int(j): delta for j in others}},
                         -delta * (cols.size - 1), inf))
        return rows, extra, usable

    def plan(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(placement [N, M], relay [N]) of chosen columns."""
        return self.c.plan(self.p.num_devices, cols)
