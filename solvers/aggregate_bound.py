"""The latency bound's LP when relays aggregate (`relay_aggregates`): relay groups with their later start.

An aggregating relay j uploads the union U_j of its group's modules, starting at S_j >= its own compute time and
>= every member's arrival (compute + D2D hop of the member's whole payload: linear in its modules). The route LP
of solvers/bounds.py prices relayed subsets at 0, so it misses both that j uploads what its members add and that it
starts late (on 100-device edges it proves half the plan's latency). Here the start is split into levels
0 = s_0 < s_1 < ... < s_K < T (s_k = LEVELS[k - 1] T): an uploader is at level k when S_j lies in [s_k, s_(k+1))
(s_(K+1) = T). With h_j = R_j^-1 (convex, increasing, h(0) = 0, so superadditive; units of B_e):

- Level 0: j uploads its own subset S (column c = (j, S), band h_j(P_S / (T - tau_S)), as in the route LP) or,
  training nothing, only relays (z_j); members relay to it only if they arrive before s_1, and each module m it
  uploads beyond S costs h_j(bits_m / (T - e_jm)) (u_jm), e_jm the earliest arrival of m alone from an
  in-neighbour (the group's upload splits into S and the extra modules, each no cheaper in its own window).
- Level k >= 1: j is direct (g_jk) with per-module own choices o_jmk (its compute sum_m tau_jm o_jmk <= s_(k+1),
  its memory) and extra modules u_jmk; members relay (r_lk, link l = i -> j) with modules y_lmk (memory; arrival
  sum_m (n_i c_m / f_i + bits_m / r_l) y_lmk <= s_(k+1)). Its band w_jk >= h_j(Q) at the union's rate
  Q = sum_m bits_m (o + u) / (T - s_k) through tangents of the convex h at a few rates Q_0
  (w >= (h(Q_0) - h'(Q_0) Q_0) g_jk + h'(Q_0) Q: at g = 0 every term is 0, at g = 1 a tangent under h), and
  w_jk >= sum_m h_j(bits_m / (T - max(s_k, ready))) (o + u) (superadditivity, each module in its own window).
- A relayed module is uploaded by its relay: y_lmk <= [m in j's level-0 subset] or o_jmk, + u_jmk; u + own <= direct.
- One choice per device (a column, z, a level, or a link at a level); one hop (r_lk <= the relay's level k);
  relay capacity; coverage per module over every own and relayed module.

Every plan of latency <= T is an integer point whose cost is at most its band sum, so an LP value > 1 (B_e) proves
T impossible (tests/test_solver_aggregate_bound.py checks it against exact_solve).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.bounds import EdgeRoutes
from solvers.evaluate import LN2
from solvers.highs import highs, highs_lp, require_bare_highs, run
from solvers.instance import RoundProblem

LEVELS = (0.2, 0.35, 0.5, 0.65, 0.8)
"""Start levels s_k / T (k >= 1)."""
TANGENTS = (0.1, 0.25, 0.5, 1.0)
"""Tangent rates of a level's union upload, x j's largest union over its window."""
IPM_COLUMNS = 5000
"""LPs of more columns go to HiGHS's interior point method (with crossover): on 100-device edges (21,808-33,558
columns) 4.4-10.4 CPU s (experiments/solver_scale_side.py); the dual simplex was about 4x slower on one of them."""


class _Rows:
    """A sparse matrix built a block of rows at a time; an entry is fixed or `base x scale[ref]` at solve time."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.ref: list[np.ndarray] = []  # -1: fixed
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.n = 0

    def block(self, count: int, lo: Any, hi: Any) -> int:
        start = self.n
        self.n += count
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (count,)).copy())
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (count,)).copy())
        return start

    def add(self, r: Any, c: Any, v: Any, ref: Any = -1) -> None:
        r, c = np.asarray(r, dtype=np.int64).ravel(), np.asarray(c, dtype=np.int64).ravel()
        self.r.append(r)
        self.c.append(c)
        self.v.append(np.broadcast_to(np.asarray(v, dtype=float), r.shape).ravel().copy())
        self.ref.append(np.broadcast_to(np.asarray(ref, dtype=np.int64), r.shape).ravel().copy())

    def csc(self, ncol: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """(the CSC matrix, each entry's scale index or -1)."""
        r, c, v, f = (np.concatenate(a) for a in (self.r, self.c, self.v, self.ref))
        order = np.lexsort((r, c))
        return ((np.concatenate([[0], np.cumsum(np.bincount(c, minlength=ncol))]).astype(np.int32),
                 r[order].astype(np.int32), v[order]), f[order])


class AggregateLP:
    """The LP of the module doc for one edge (columns (device, subset) as solvers.bounds.EdgeRoutes builds them)."""

    def __init__(self, p: RoundProblem, e: int, dev: np.ndarray, mbits: np.ndarray, pay: np.ndarray,
                 tau: np.ndarray, levels: tuple[float, ...] = LEVELS,
                 tangents: tuple[float, ...] = TANGENTS) -> None:
        self.highspy, self._bare = require_bare_highs("the aggregate bound LP")
        self.p, self.e, self.levels, self.tangents = p, e, levels, tangents
        m, kk, nt = p.num_modules, len(levels), len(tangents)
        members = p.edge_devices(e)
        nd = members.size
        loc = np.full(p.num_devices, -1)
        loc[members] = np.arange(nd)
        self.dev, self.pay, self.tau = dev, pay, tau
        on = np.flatnonzero(p.device_edge[p.d2d_src] == e)
        src, dst, rate = p.d2d_src[on], p.d2d_dst[on], p.d2d_rate_bps[on]
        nl, k = on.size, dev.size
        bits = 8.0 * p.module_bytes
        ok = p.eligible & (p.samples[:, None] > 0)
        tau_m = p.samples[:, None] * p.module_cycles[None, :] / p.cpu_hz[:, None]  # [N, M] a module alone
        yl, ym = np.nonzero(ok[src])  # (link, module eligible at its source)
        ny = yl.size
        y_arr = tau_m[src[yl], ym] + bits[ym] / rate[yl]  # its part of the member's arrival (linear)
        ukey, y_u = np.unique(loc[dst[yl]] * m + ym, return_inverse=True)  # (relay, module) a link may bring
        nu = ukey.size
        u_dev, u_mod = ukey // m, ukey % m  # local relay
        u_early = np.full(nu, np.inf)
        np.minimum.at(u_early, y_u, y_arr)
        od, om = np.nonzero(ok[members])  # own (local device, module) at levels >= 1
        no = od.size
        o_key = np.full((nd, m), -1)
        o_key[od, om] = np.arange(no)
        u_key = np.full((nd, m), -1)
        u_key[u_dev, u_mod] = np.arange(nu)
        qmax = np.zeros(nd)  # the largest union of each device as an uploader (bits)
        np.add.at(qmax, od, bits[om])
        extra = np.zeros((nd, m), dtype=bool)
        extra[u_dev, u_mod] = True
        extra &= o_key < 0
        qmax += extra.astype(float) @ bits
        # columns: x (k), z (nd), level 0: r (nl), y (ny), u (nu); per level >= 1: g, o, r, y, u, w
        per = nd + no + nl + ny + nu + nd
        ox, oz = 0, k
        lev0 = (k + nd, k + nd + nl, k + nd + nl + ny)
        first = k + nd + nl + ny + nu
        self.ncol = first + kk * per

        def lvl(q: int) -> tuple[int, int, int, int, int, int]:  # g, o, r, y, u, w offsets of level q >= 1
            b = first + (q - 1) * per
            return b, b + nd, b + nd + no, b + nd + no + nl, b + nd + no + nl + ny, b + nd + no + nl + ny + nu

        # scale vector layout: [1 / t] + per (level, uploader): superadditive own (no), u (nu), tangents (nt x 2 nd)
        self.n_scale = 1 + kk * (no + nu + 2 * nt * nd)

        def sref(q: int) -> tuple[int, int, int]:  # scale offsets of level q >= 1: own, u, tangents
            b = 1 + (q - 1) * (no + nu + 2 * nt * nd)
            return b, b + no, b + no + nu

        rows = _Rows()
        xd = loc[dev]
        by_dev = [np.flatnonzero(xd == d) for d in range(nd)]
        inf = self.highspy.kHighsInf
        cap = p.relay_capacity
        # one choice per device
        r0 = rows.block(nd, -inf, 1.0)
        rows.add(r0 + xd, ox + np.arange(k), 1.0)
        rows.add(r0 + np.arange(nd), oz + np.arange(nd), 1.0)
        rows.add(r0 + loc[src], lev0[0] + np.arange(nl), 1.0)
        for q in range(1, kk + 1):
            g, _, rr, _, _, _ = lvl(q)
            rows.add(r0 + np.arange(nd), g + np.arange(nd), 1.0)
            rows.add(r0 + loc[src], rr + np.arange(nl), 1.0)
        # level 0: one hop r_l <= sum x(j) + z_j; y <= [m in j's subset] + u; u + [m in S] <= sum x(j) + z_j
        r1 = rows.block(nl, -inf, 0.0)
        rows.add(r1 + np.arange(nl), lev0[0] + np.arange(nl), 1.0)
        for l_, j in enumerate(loc[dst]):
            rows.add(np.full(by_dev[j].size + 1, r1 + l_), np.concatenate([ox + by_dev[j], [oz + j]]), -1.0)
        if cap is not None:
            rc = rows.block(nd, -inf, 0.0)
            rows.add(rc + loc[dst], lev0[0] + np.arange(nl), 1.0)
            rows.add(rc + xd, ox + np.arange(k), -float(cap))
            rows.add(rc + np.arange(nd), oz + np.arange(nd), -float(cap))
        mb = np.asarray(mbits, dtype=bool)
        r5 = rows.block(ny, -inf, 0.0)
        rows.add(r5 + np.arange(ny), lev0[1] + np.arange(ny), 1.0)
        rows.add(r5 + np.arange(ny), lev0[2] + y_u, -1.0)
        for t_, (link, mm) in enumerate(zip(yl.tolist(), ym.tolist(), strict=True)):
            cs = by_dev[loc[dst[link]]]
            cs = cs[mb[cs, mm]]
            rows.add(np.full(cs.size, r5 + t_), ox + cs, -1.0)
        r6 = rows.block(nu, -inf, 0.0)
        rows.add(r6 + np.arange(nu), lev0[2] + np.arange(nu), 1.0)
        for t_, (j, mm) in enumerate(zip(u_dev, u_mod, strict=True)):
            cs = by_dev[j]
            rows.add(np.full(cs.size + 1, r6 + t_), np.concatenate([ox + cs, [oz + j]]),
                     np.concatenate([np.where(mb[cs, mm], 0.0, -1.0), [-1.0]]))
        mem_y = p.module_memory_bytes[ym] / p.memory_bytes[src[yl]]
        mem_o = p.module_memory_bytes[om] / p.memory_bytes[members[od]]
        for q in range(kk + 1):
            if q == 0:
                rr, yy, uu = lev0
            else:
                g, oo, rr, yy, uu, ww = lvl(q)
            end = 1.0 if q == kk else levels[q]  # s_(q+1) / T
            # members: y <= r; memory; arrival of the member's modules <= s_(q+1) (seconds / t)
            ra = rows.block(ny, -inf, 0.0)
            rows.add(ra + np.arange(ny), yy + np.arange(ny), 1.0)
            rows.add(ra + np.arange(ny), rr + yl, -1.0)
            rb = rows.block(nl, -inf, 0.0)
            rows.add(rb + yl, yy + np.arange(ny), mem_y)
            rows.add(rb + np.arange(nl), rr + np.arange(nl), -1.0)
            rt = rows.block(nl, -inf, 0.0)
            rows.add(rt + yl, yy + np.arange(ny), y_arr, ref=0)
            rows.add(rt + np.arange(nl), rr + np.arange(nl), -end)
            if q == 0:
                continue
            # one hop and capacity at level q; own modules: o <= g, memory, compute <= s_(q+1)
            rh = rows.block(nl, -inf, 0.0)
            rows.add(rh + np.arange(nl), rr + np.arange(nl), 1.0)
            rows.add(rh + np.arange(nl), g + loc[dst], -1.0)
            if cap is not None:
                rc = rows.block(nd, -inf, 0.0)
                rows.add(rc + loc[dst], rr + np.arange(nl), 1.0)
                rows.add(rc + np.arange(nd), g + np.arange(nd), -float(cap))
            ro = rows.block(no, -inf, 0.0)
            rows.add(ro + np.arange(no), oo + np.arange(no), 1.0)
            rows.add(ro + np.arange(no), g + od, -1.0)
            rm = rows.block(nd, -inf, 0.0)
            rows.add(rm + od, oo + np.arange(no), mem_o)
            rows.add(rm + np.arange(nd), g + np.arange(nd), -1.0)
            rcpu = rows.block(nd, -inf, 0.0)
            rows.add(rcpu + od, oo + np.arange(no), tau_m[members[od], om], ref=0)
            rows.add(rcpu + np.arange(nd), g + np.arange(nd), -end)
            # y <= o + u; u + o <= g
            ry = rows.block(ny, -inf, 0.0)
            rows.add(ry + np.arange(ny), yy + np.arange(ny), 1.0)
            rows.add(ry + np.arange(ny), uu + y_u, -1.0)
            has = o_key[loc[dst[yl]], ym]
            rows.add((ry + np.arange(ny))[has >= 0], oo + has[has >= 0], -1.0)
            ru = rows.block(nu, -inf, 0.0)
            rows.add(ru + np.arange(nu), uu + np.arange(nu), 1.0)
            has = o_key[u_dev, u_mod]
            rows.add((ru + np.arange(nu))[has >= 0], oo + has[has >= 0], 1.0)
            rows.add(ru + np.arange(nu), g + u_dev, -1.0)
            # band: w >= superadditive sum; w >= each tangent of the union's rate
            so, su, st = sref(q)
            rw = rows.block(nd, -inf, 0.0)
            rows.add(rw + od, oo + np.arange(no), 1.0, ref=so + np.arange(no))
            rows.add(rw + u_dev, uu + np.arange(nu), 1.0, ref=su + np.arange(nu))
            rows.add(rw + np.arange(nd), ww + np.arange(nd), -1.0)
            for ti in range(nt):
                rg = rows.block(nd, -inf, 0.0)
                beta, alpha = st + 2 * ti * nd + np.arange(nd), st + (2 * ti + 1) * nd + np.arange(nd)
                rows.add(rg + od, oo + np.arange(no), bits[om], ref=beta[od])
                rows.add(rg + u_dev, uu + np.arange(nu), bits[u_mod], ref=beta[u_dev])
                rows.add(rg + np.arange(nd), g + np.arange(nd), 1.0, ref=alpha)
                rows.add(rg + np.arange(nd), ww + np.arange(nd), -1.0)
        # coverage: samples of own and relayed modules >= demand (units of the largest demand)
        demand = p.coverage_demand()[e]
        need = np.flatnonzero(demand > 0)
        self.empty = need.size == 0
        scale = float(demand[need].max()) if need.size else 1.0
        pos = np.full(m, -1)
        pos[need] = np.arange(need.size)
        rcov = rows.block(need.size, -inf, -demand[need] / scale * (1 - 1e-9))
        ci, cm = np.nonzero(mbits[:, need])
        rows.add(rcov + cm, ox + ci, -p.samples[dev[ci]] / scale)
        ty, to = pos[ym] >= 0, pos[om] >= 0
        for q in range(kk + 1):
            yy = lev0[1] if q == 0 else lvl(q)[3]
            rows.add(rcov + pos[ym[ty]], yy + np.flatnonzero(ty), -p.samples[src[yl[ty]]] / scale)
            if q:
                rows.add(rcov + pos[om[to]], lvl(q)[1] + np.flatnonzero(to), -p.samples[members[od[to]]] / scale)
        self.csc, self.ref = rows.csc(self.ncol)
        self.row_lo, self.row_hi = np.concatenate(rows.lo), np.concatenate(rows.hi)
        self.members, self.od, self.om, self.y_arr = members, od, om, y_arr
        self.u_dev, self.u_mod, self.u_early, self.qmax = u_dev, u_mod, u_early, qmax
        self.tau_own = tau_m[members[od], om]
        self.lev0, self.lvl, self.sref, self.yl = lev0, lvl, sref, yl
        self.highs: Any = None

    def _band(self, q: np.ndarray, a: np.ndarray) -> np.ndarray:
        """h(q) in units of B_e (inf where no band reaches rate q)."""
        return min_bandwidth(q, a) / self.p.edge_bandwidth_hz[self.e]

    def costs(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cost, upper bound 0 or 1 of every column, the entries' scales) at trial latency t."""
        p = self.p
        cost, up = np.zeros(self.ncol), np.ones(self.ncol)
        scale = np.zeros(self.n_scale)
        scale[0] = 1.0 / t
        bits = 8.0 * p.module_bytes
        a_mem = p.snr_hz[self.members]

        def band(b: np.ndarray, ready: np.ndarray, a: np.ndarray) -> np.ndarray:
            slack = t - ready
            with np.errstate(divide="ignore", invalid="ignore"):
                return self._band(np.where(slack > 0, b / np.where(slack > 0, slack, 1.0), np.inf), a)

        def put(lo: int, w: np.ndarray) -> None:
            fin = np.isfinite(w)
            cost[lo:lo + w.size], up[lo:lo + w.size] = np.where(fin, w, 0.0), fin

        put(0, band(self.pay, self.tau, p.snr_hz[self.dev]))
        put(self.lev0[2], band(bits[self.u_mod], self.u_early, a_mem[self.u_dev]))
        up[self.lev0[1]:self.lev0[1] + self.yl.size] = self.y_arr < t
        nd = self.members.size
        for q in range(1, len(self.levels) + 1):
            s = self.levels[q - 1] * t
            g, oo, rr, yy, uu, ww = self.lvl(q)
            so, su, st = self.sref(q)
            own = band(bits[self.om], np.maximum(s, self.tau_own), a_mem[self.od])
            up[oo:rr] = np.isfinite(own)
            scale[so:su] = np.where(np.isfinite(own), own, 0.0)
            ext = band(bits[self.u_mod], np.maximum(s, self.u_early), a_mem[self.u_dev])
            up[uu:ww] = np.isfinite(ext)
            scale[su:st] = np.where(np.isfinite(ext), ext, 0.0)
            up[yy:uu] = self.y_arr < t
            cost[ww:ww + nd] = 1.0
            up[ww:ww + nd] = np.inf
            window = t - s
            for ti, f in enumerate(self.tangents):
                q0 = f * self.qmax / window
                b0 = self._band(q0, a_mem) * p.edge_bandwidth_hz[self.e]
                fin = np.isfinite(b0) & (b0 > 0)
                b0 = np.where(fin, b0, 1.0)
                slope_r = np.log1p(a_mem / b0) / LN2 - a_mem / ((a_mem + b0) * LN2)  # R'(b0)
                beta = np.where(fin, 1.0 / (slope_r * p.edge_bandwidth_hz[self.e]), 0.0)  # h'(q0), B_e units
                alpha = np.where(fin, b0 / p.edge_bandwidth_hz[self.e] - beta * q0, 0.0)
                scale[st + 2 * ti * nd:st + (2 * ti + 1) * nd] = beta / window
                scale[st + (2 * ti + 1) * nd:st + (2 * ti + 2) * nd] = alpha
        return cost, up, scale

    def impossible(self, t: float) -> bool:
        """True if no plan of the edge finishes by t within B_e (the LP's least band exceeds it, or no cover)."""
        if self.empty:
            return False
        hs = self.highspy
        cost, up, scale = self.costs(t)
        indptr, indices, data = self.csc
        dyn = self.ref >= 0
        data = data.copy()
        data[dyn] = data[dyn] * scale[self.ref[dyn]]
        ipm: dict[str, Any] = {"solver": "ipm"} if self.ncol > IPM_COLUMNS else {}
        lp = highs_lp(hs, cost, np.zeros(self.ncol), up, self.row_lo, self.row_hi, indptr, indices, data)
        h = run(highs(self._bare, lp, **ipm))
        self.highs = h
        status = h.getModelStatus()
        if status == hs.HighsModelStatus.kInfeasible:
            return True
        return bool(status == hs.HighsModelStatus.kOptimal and h.getInfo().objective_function_value > 1 + 1e-6)


def aggregate_lower_bound(problem: RoundProblem, upper: np.ndarray, known: float = 0.0, steps: int = 6,
                          edges: int = 1, low: float = 0.5) -> float:
    """Certified lower bound on the round's latency when relays aggregate (lambda = 0 part): for the `edges`
    slowest edges by `upper` [E] (latencies known achievable), the largest trial latency the LP refutes, bisected
    `steps` times on [max(known, low x upper_e), upper_e]; the round's latency is at least the largest (and at
    least `known`, a bound already certified). Unclocked: 8-11 CPU s an LP on a 100-device edge."""
    p = problem
    if not p.relay_aggregates:
        raise ValueError("relay_aggregates: the aggregate bound is for aggregating relays (use subset_lower_bound)")
    best = float(known)
    upper = np.asarray(upper, dtype=float)
    for e in np.argsort(-upper)[:edges]:
        if upper[e] <= best or not np.any(p.device_edge == e):
            continue
        r = EdgeRoutes.of(p, int(e), [0])
        lp = AggregateLP(p, int(e), r.dev, r.mbits, r.pay, r.ready[:r.dev.size])
        lo, hi = max(best, low * upper[e]), float(upper[e])
        if not lp.impossible(lo):
            continue
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if lp.impossible(mid) else (lo, mid)
        best = max(best, lo)
    return best
