"""lambda = 0, one edge, relays that aggregate: the latency model at a trial T with each uploader's group explicit.

With `relay_aggregates` a relay sends the union of its group's modules, so a relayed module the relay holds costs
nothing more, and no per-column price is both valid and tight. Here each uploader j has its own variables:
  u_jm >= [some member of j's group trains m]   (the union; members: j itself and the devices relaying to j)
  U_j >= sum_m bits_m u_jm                       (bits sent)
  q_j >= U_j / (T - ready_c) for every chosen column c routed to j, as the big-M row
        q_j >= kappa_c U_j - kappa_c U_max (1 - v_c), kappa_c = 1 / (T - ready_c): exact at integer points, where
        q_j = U_j / (T - S_j), S_j the group's start (its last arrival);
  h_j >= f_j(q_j) through tangents of f_j = R_j^-1 (convex; under-estimators; one more tangent at the answer's q_j
        whenever the answer's exact band does not fit, so a plan the MILP accepts really finishes by T);
  h_j >= the band of any one member's payload alone (a valid, tighter bound for the LP relaxation).
Minimize sum_j h_j (units of B_e) with the choice rows of solvers/column_milp.py: above 1, no plan finishes by T.
q is scaled by R_j(B_e) (q <= 1: a group needs at most the whole band).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import now
from solvers.column_milp import INF, Extra, Row, choice_rows, run_milp
from solvers.evaluate import LN2, uplink_rate
from solvers.instance import RoundProblem
from solvers.latency_model import AtT, EdgeColumns

GRID = 0.8
"""Initial tangents of f_j at band shares 1, 0.8, 0.64, ... down to MIN_SHARE."""
MIN_SHARE = 1e-3


class UnionModel:
    """One edge's group MILP (the same interface as LatencyModel: at, plan, milps)."""

    tight_share = 0.15
    """Its tight test rarely finishes on 8+ devices (a weak relaxation): most of the time goes to the ladder."""

    def __init__(self, p: RoundProblem) -> None:
        self.p = p
        self.c = EdgeColumns.of(p)
        self.milps = 0
        n = p.num_devices
        self.band = float(p.edge_bandwidth_hz[0])
        self.rb = uplink_rate(np.full(n, self.band), p.snr_hz)  # [N] rate at the whole band
        shares = GRID ** np.arange(int(math.log(MIN_SHARE) / math.log(GRID)) + 1)
        self.points: list[list[float]] = [list(uplink_rate(shares * self.band, np.full(shares.size, a)) / r)
                                          for a, r in zip(p.snr_hz, self.rb, strict=True)]
        self.sigma = float(8.0 * p.module_bytes.max())

    def f(self, q: float, j: int) -> float:
        """The band share uploader j needs for rate q x R_j(B_e)."""
        return float(min_bandwidth(np.array([q * self.rb[j]]), self.p.snr_hz[j : j + 1])[0]) / self.band

    def tangent(self, q: float, j: int) -> tuple[float, float]:
        """(intercept, slope) of f_j's tangent at q (scaled units)."""
        h = self.f(q, j)
        b, a = h * self.band, float(self.p.snr_hz[j])
        d_rate = (math.log1p(a / b) - (a / b) / (1 + a / b)) / LN2  # R'(b)
        slope = self.rb[j] / (self.band * d_rate)
        return h - slope * q, slope

    def at(self, t: float, deadline: float, gap: float = 0.05,
           accept: Callable[[np.ndarray], bool] = lambda cols: False) -> AtT:
        """Settle latency t before `deadline` (see LatencyModel.at)."""
        c = self.c
        while True:
            left = deadline - now()
            if left <= 0.02:
                return AtT(t, None, None, 0.0)
            status, sol, bound = self._solve(t, left, gap)
            self.milps += 1
            if status == "infeasible" or bound > 1 + 1e-9:
                return AtT(t, False, None, bound)
            if sol is None:
                return AtT(t, None, None, bound)
            ups = np.unique(c.up[sol])
            exact = [c.group_cost(sol[c.up[sol] == u], t) for u in ups]
            if sum(exact) <= 1 + 1e-9 or accept(sol):
                return AtT(t, True, sol, bound)
            grew = False
            for u in ups:  # a tangent at each group's real rate: this answer is charged exactly next time
                g = sol[c.up[sol] == u]
                start = float(c.ready[g].max())
                q = c.group_bits(g) / (t - start) / self.rb[u] if start < t else 1.0
                if q < 1 and all(abs(q - x) > 1e-9 * max(q, 1e-12) for x in self.points[u]):
                    self.points[u].append(q)
                    grew = True
            if not grew:
                return AtT(t, None, None, bound)

    def _solve(self, t: float, time_limit: float, gap: float) -> tuple[str, np.ndarray | None, float]:
        p, c = self.p, self.c
        cost = c.cost(t, dominate=not p.relay_aggregates)
        usable = np.isfinite(cost) & (cost <= 1 + 1e-9)
        k = c.dev.size
        extra = Extra(k)
        rows: list[Row] = choice_rows(p, c, extra)
        bits = 8.0 * p.module_bytes / self.sigma
        for j in range(p.num_devices):
            mine = np.flatnonzero(usable & (c.up == j))
            if mine.size == 0:
                continue
            h = extra.add(1.0, 1.0)
            q = extra.add(0.0, 1.0)
            u_bits = extra.add(0.0)
            if c.union_bits is not None:
                mods = np.flatnonzero(c.mask[mine].any(axis=0))
                u = {int(m): extra.add(0.0, 1.0) for m in mods}
                rows.append(({u_bits: 1.0, **{u[m]: -float(bits[m]) for m in u}}, 0.0, INF))
                for i in np.unique(c.dev[mine]):
                    of_i = mine[c.dev[mine] == i]
                    for m in mods:
                        has = of_i[c.mask[of_i, m] > 0]
                        if has.size:
                            rows.append(({u[int(m)]: 1.0, **{int(x): -1.0 for x in has}}, 0.0, INF))
                    rows.append(({h: 1.0, **{int(x): -float(cost[x]) for x in of_i}}, 0.0, INF))  # one member alone
            else:
                rows.append(({u_bits: 1.0, **{int(x): -float(c.pay[x] / self.sigma) for x in mine}}, 0.0, INF))
                rows.append(({h: 1.0, **{int(x): -float(cost[x]) for x in mine}}, 0.0, INF))  # superadditive
            u_max = min(float(c.mask[mine].any(axis=0) @ bits) if c.union_bits is not None
                        else float(c.pay[mine].sum() / self.sigma), t * self.rb[j] / self.sigma)
            for x in mine:  # q >= kappa U - kappa U_max (1 - v): the group's rate once column x is in it
                kap = self.sigma / ((t - c.ready[x]) * self.rb[j])
                rows.append(({q: 1.0, u_bits: -kap, int(x): -kap * u_max}, -kap * u_max, INF))
            for pt in self.points[j]:
                a0, s0 = self.tangent(pt, j)
                rows.append(({h: 1.0, q: -s0}, a0, INF))
        status, val, bound = run_milp(rows, np.zeros(k), usable, extra, time_limit, gap, 1.0 + 1e-9)  # band: in h
        if status == "infeasible":
            return "infeasible", None, math.inf
        if val is None:
            return "unknown", None, bound
        return "solved", np.flatnonzero(val[:k] > 0.5), bound

    def plan(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(placement [N, M], relay [N]) of chosen columns."""
        return self.c.plan(self.p.num_devices, cols)
