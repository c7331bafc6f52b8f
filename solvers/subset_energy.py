"""The subset-column LP priced with energy: a certified lower bound on E_lb(T), the least energy of any plan of latency
<= T, that sees each device's whole payload (lambda > 0; fixed power and frequency, or both as decisions).

Columns, per edge: (device i, module subset S within its eligibility and memory), and for every device a D2D link
of the edge enters an empty column at cost 0 (a relay may train nothing and upload only what it relays; without it
the pair rows below shut such plans out, and the LP claimed no plan finishes by T). Rows: at most one column per
device, samples per module >= demand (coverage), 0 <= x <= 1. At a band price nu >= 0 (J per Hz) the band row
sum_j b_j <= B_e is dualized: E_e >= LP(nu) - nu B_e for every nu, where a column costs at least what its device's
work costs (compute + D2D + its share of an upload + nu x its share of the band). The shares follow from one of two
decompositions of an uploader j's term g_j(b_j) = p_j U_j / R_j(b_j) + nu b_j (U_j = own bits + relayed bits, start
S_j >= every part's ready time):

(W) windowed: g_j(b_j) >= phi_T(own) + p_j / R_j(B_e) x relayed bits, with phi_T(P) = min over b >= h(P / (T - tau))
    of p P / R(b) + nu b (b_j >= the own part's least band; b_j <= B_e, so every relayed bit costs at least the
    energy per bit at the whole band: p U / R(b) splits into own and relayed bits, each >= its own part);
(C) concave: g_j(b_j) >= phi(U_j) >= phi(own) + beta_j x relayed bits, phi(U) = min_b p U / R(b) + nu b concave
    (a minimum of functions linear in U), beta_j = (phi(O_j + Rin_j) - phi(O_j)) / Rin_j over j's largest own
    payload O_j and largest relayed payload Rin_j (concavity: increments shrink as the base and the step grow);
    also g_j(b_j) >= phi(own) + p_j / R_j(B_e) x relayed bits (p own / R(b) + nu b >= phi(own), b_j <= B_e), so a
    relayed bit pays the larger of beta_j and p_j / R_j(B_e).

Both are valid, so every convex combination theta (W) + (1 - theta) (C) is, and each gives a valid LP. A relayed
column also pays its D2D hop (p^d2d P / r) and must arrive in time: tau + P / r < T and the relay's least band
for it h_j(P / (T - arrival)) <= B_e; with `relay_aggregates` a relayed module may be in the relay's union
already, so relayed bits pay no upload. Memory is kept per column; columns that cannot finish by T are dropped.

phi(P) = nu a F(z), z = p P / (nu a^2), F(z) = min_s z / rho(s) + s with rho(s) = s log2(1 + 1 / s) (b = a s;
dropping b <= B_e only lowers it). F is concave and increasing: a table of certified lower values (golden section
on ln s, bounded below on its final bracket) is interpolated along chords (below a concave function), below the
table by the chord from F(0) = 0, above it by F(z) >= z ln2; phi_T(P) = p w + nu h(P / w) (w = T - tau, the
upload fills the window) when h(P / w) is at least the unconstrained minimizer (tabulated from above), else phi(P).

Power and frequency as decisions: a column that computes C = n_i sum_S c_m cycles in t_c and uploads P bits in the
rest of T spends at least kappa C max(f_min, C / t_c)^2 + P k(T - t_c, nu) (solvers/powerfreq_bound.py: the per-bit
upload price is linear in P once power is free); t_c on a grid t_0 < ... < t_G = T: on [t_g, t_(g+1)] at least
compute(t_(g+1)) + P k(T - t_g, nu) (each part monotone). Relayed bits pay k_j at the relay's window.

The LP value is valid at any nu and theta; both are searched per edge (the value is concave in each), a few LPs
each, within the round's clock (solvers/clock.py); edges it does not reach keep the knapsack bound
(solvers/energy_bound.py), which the round bound takes the max with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock
from solvers.evaluate import LN2, uplink_rate
from solvers.highs import bare_highs
from solvers.instance import RoundProblem
from solvers.powerfreq_bound import upload_per_bit

GOLD = (math.sqrt(5.0) - 1.0) / 2.0
Z_LN = (-70.0, 70.0, 4001)
"""The table of F: ln z from, to, points."""
MAX_COLUMNS = 200_000
"""Most (device, subset) columns of one edge (2^M per device); an edge with more keeps the knapsack bound."""
GRID = 12
"""Compute-time grid points per column when frequency is a decision."""


def _rho(s: np.ndarray) -> np.ndarray:
    return s * np.log1p(1.0 / s) / LN2


@lru_cache(maxsize=1)
def f_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z grid, certified lower bounds on F(z), upper bounds on the minimizer s*(z)), computed once."""
    z = np.exp(np.linspace(*Z_LN))
    lo, hi = np.full(z.shape, -80.0), np.full(z.shape, 80.0)

    def g(u: np.ndarray) -> np.ndarray:
        s = np.exp(u)
        return z / _rho(s) + s

    c, d = hi - GOLD * (hi - lo), lo + GOLD * (hi - lo)
    fc, fd = g(c), g(d)
    for _ in range(110):
        left = fc <= fd
        hi, lo = np.where(left, d, hi), np.where(left, lo, c)
        c, d = np.where(left, hi - GOLD * (hi - lo), d), np.where(left, c, lo + GOLD * (hi - lo))
        new = g(np.where(left, c, d))
        fc, fd = np.where(left, new, fd), np.where(left, fc, new)
    s_lo, s_hi = np.exp(lo), np.exp(hi)
    value = z / _rho(s_hi) + s_lo  # z / rho decreases, s increases: the least on the bracket
    value = np.maximum.accumulate(np.maximum(value, z * LN2) * (1 - 1e-12))  # F is increasing: keep it so
    s_up = np.maximum.accumulate(s_hi)  # s* increases with z: s*(z) <= s_up at the next grid point
    return z, value, s_up


def concave_energy(q: np.ndarray, nua: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower bound on phi = min_s q / rho(s) + nua s, an upper bound on its minimizer s*), elementwise; q = p P / a
    (J, the infinite-band energy / ln2), nua = nu a (J). nua = 0: (q ln2, inf)."""
    zg, fg, sg = f_table()
    q, nua = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(nua, dtype=float))
    pos = nua > 0
    safe = np.where(pos, nua, 1.0)
    z = np.where(pos, q / safe, 0.0)
    chord = np.interp(z, zg, fg)  # linear in z between grid points: below the concave F; F(zK) above the table
    chord = np.where(z < zg[0], z * (fg[0] / zg[0]), chord)
    f = np.maximum(chord, z * LN2)
    k = np.minimum(np.searchsorted(zg, z), zg.size - 1)
    s_up = np.where(z <= zg[-1], sg[k], np.inf)
    return np.where(pos, safe * f, q * LN2), np.where(pos, s_up, np.inf)


def concave_upper(q: np.ndarray, nua: np.ndarray) -> np.ndarray:
    """An upper bound on phi (its value at a feasible s: the tabulated minimizer of the nearest grid point)."""
    zg, _, sg = f_table()
    q, nua = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(nua, dtype=float))
    pos = nua > 0
    safe = np.where(pos, nua, 1.0)
    z = np.where(pos, q / safe, 0.0)
    k = np.clip(np.searchsorted(zg, z), 0, zg.size - 1)
    s = sg[k]
    return np.where(pos, q / _rho(s) + safe * s, q * LN2)


COVER_HOLDERS = 16
"""Modules held by more devices than this get no minimal covers (2^holders subsets to enumerate)."""
LP_COVER_HOLDERS = 12
"""The same for the bounds' LPs (this LP and solvers/bounds.py `EdgeLP`), solved many times a round: at 13-16
holders the covers' enumeration and the larger LP made 20-device edges' rounds 2.5x slower
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


class RouteLP:
    """min c x over columns (device, subset, route): at most one per device, samples per module >= demand, and
    one hop: the columns of device i via relay j sum to at most j's direct columns (a relay uploads; its empty
    column counts), 0 <= x <= 1.
    Between calls only the costs (and which columns are usable) change: HiGHS re-solves from its basis."""

    def __init__(self, dev: np.ndarray, mbits: np.ndarray, samples: np.ndarray, demand: np.ndarray,
                 lcol: np.ndarray, ldst: np.ndarray, covers: bool = False, union: bool = False,
                 lidle: np.ndarray | None = None) -> None:
        fast = bare_highs()
        if fast is None:
            raise RuntimeError("the subset energy LP needs highspy's bare solver (highspy._core._Highs)")
        self.highspy, self.bare = fast
        need = demand > 0
        scale = demand[need].max()
        devs, local = np.unique(dev, return_inverse=True)
        k, nl = dev.size, lcol.size
        cov = mbits[:, need] * (samples[dev] / scale)[:, None]  # [K, need]
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []

        def add(r_: np.ndarray, c_: np.ndarray, v_: np.ndarray) -> None:
            rows.append(r_)
            cols.append(c_)
            vals.append(v_)

        add(local, np.arange(k), np.ones(k))  # direct columns: device row, coverage rows
        ci, mj = np.nonzero(cov)
        add(devs.size + mj, ci, cov[ci, mj])
        add(local[lcol], k + np.arange(nl), np.ones(nl))  # route columns k + l: device row, coverage rows
        li, lm = np.nonzero(cov[lcol])
        add(devs.size + lm, k + li, cov[lcol][li, lm])
        npair = devs.size + int(need.sum())
        link_id = np.unique(dev[lcol] * (int(dev.max()) + 1) + ldst, return_inverse=True)[1]
        idle = np.zeros(nl, dtype=np.int64) if lidle is None else lidle.astype(np.int64)
        pair_id = np.unique(2 * link_id + idle, return_inverse=True)[1]
        add(npair + pair_id, k + np.arange(nl), np.ones(nl))  # +1 in its (link, relay idle or not) pair row
        pairs = (np.unique(np.stack([pair_id, ldst, idle], axis=1), axis=0) if nl
                 else np.zeros((0, 3), dtype=np.int64))
        empty = ~mbits.any(axis=1)
        for pid, j, idl in pairs:  # the relay's direct columns (idle routes: its empty one): -1 in the pair row
            mine = np.flatnonzero((dev == j) & (empty == bool(idl)) if lidle is not None else dev == j)
            add(np.full(mine.size, npair + pid), mine, -np.ones(mine.size))
        self.n, self.m = k + nl, npair + pairs.shape[0]
        inf = self.highspy.kHighsInf
        row_lo = [np.full(devs.size, -inf), demand[need] / scale, np.full(pairs.shape[0], -inf)]
        row_hi = [np.ones(devs.size), np.full(int(need.sum()), inf), np.zeros(pairs.shape[0])]
        self.ny = 0  # cover variables after the n columns (cost 0, in [0, 1])
        if covers:  # each module's minimal covers: the convex hull of its knapsack (as in solvers/column_milp.py)
            col_dev = np.concatenate([dev, dev[lcol]])
            col_bits = np.concatenate([mbits, mbits[lcol]])
            for m in np.flatnonzero(need):
                holders = np.unique(dev[mbits[:, m] > 0])
                found = cover_sets(samples[holders], float(demand[m]), LP_COVER_HOLDERS)
                if found.shape[0] == 0:
                    continue
                y = self.n + self.ny + np.arange(found.shape[0])
                self.ny += found.shape[0]
                add(np.full(y.size, self.m), y, np.ones(y.size))  # the module's covers sum to >= 1
                for a_, i in enumerate(holders):  # device i trains m at least as often as the covers use it
                    mine = np.flatnonzero((col_dev == i) & (col_bits[:, m] > 0))
                    use = y[found[:, a_]]
                    add(np.full(mine.size + use.size, self.m + 1 + a_), np.concatenate([mine, use]),
                        np.concatenate([np.ones(mine.size), -np.ones(use.size)]))
                row_lo.append(np.concatenate([[1.0], np.zeros(holders.size)]))
                row_hi.append(np.full(1 + holders.size, inf))
                self.m += 1 + holders.size
        self.nz = 0  # union variables after the covers: z_j >= each member's upload alone (set per solve)
        tag = [np.full(sum(x.size for x in rows), -1)]
        if union:
            self.nz = devs.size
            z = self.n + self.ny + np.arange(devs.size)
            nrow = devs.size + int(link_id.max(initial=-1)) + 1
            add(self.m + np.arange(devs.size), z, np.ones(devs.size))  # own row of j: z_j - w_o x_o >= 0
            if nl:
                dst_local = np.searchsorted(devs, ldst)
                first = np.unique(link_id, return_index=True)[1]
                add(self.m + devs.size + np.arange(first.size), z[dst_local[first]], np.ones(first.size))
            tag.append(np.full(devs.size + (first.size if nl else 0), -1))
            add(self.m + local, np.arange(k), -np.ones(k))
            add(self.m + devs.size + link_id, k + np.arange(nl), -np.ones(nl))
            tag.append(np.arange(k + nl))
            row_lo.append(np.zeros(nrow))
            row_hi.append(np.full(nrow, inf))
            self.m += nrow
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        order = np.lexsort((r, c))
        r, c, v = r[order], c[order], v[order]
        tags = np.concatenate(tag)[order]
        self.union_pos = np.zeros(self.n, dtype=np.int64)
        self.union_pos[tags[tags >= 0]] = np.flatnonzero(tags >= 0)
        nc = self.n + self.ny + self.nz
        self.start = np.concatenate([[0], np.cumsum(np.bincount(c, minlength=nc))]).astype(np.int32)
        self.index, self.value = r.astype(np.int32), v
        self.row_lo, self.row_hi = np.concatenate(row_lo), np.concatenate(row_hi)
        self.h: Any = None

    def _lp(self, c: np.ndarray, upper: np.ndarray) -> Any:
        hs = self.highspy
        lp = hs.HighsLp()
        nc = self.n + self.ny + self.nz
        lp.num_col_, lp.num_row_ = nc, self.m
        lp.col_cost_ = np.concatenate([c, np.zeros(self.ny), np.ones(self.nz)])
        lp.col_lower_ = np.zeros(nc)
        lp.col_upper_ = np.concatenate([upper, np.ones(self.ny), np.full(self.nz, hs.kHighsInf)])
        lp.row_lower_, lp.row_upper_ = self.row_lo, self.row_hi
        lp.a_matrix_.format_ = hs.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = self.start, self.index, self.value
        return lp

    def solve(self, cost: np.ndarray, member: np.ndarray | None = None) -> tuple[str, float]:
        """(optimal | infeasible | other, value) at costs [K + L] (inf: the column cannot be used); with union rows,
        member [K + L]: each column's upload alone at its uploader (its coefficient in the uploader's row)."""
        hs = self.highspy
        usable = np.isfinite(cost)
        c, upper = np.where(usable, cost, 0.0), usable.astype(float)
        if self.nz:
            if member is None:
                raise ValueError("member: the union rows need each column's upload alone")
            self.value[self.union_pos] = -np.where(usable & np.isfinite(member), member, 0.0)
        if self.h is None:
            h = self.bare()
            h.setOptionValue("output_flag", False)
            h.passModel(self._lp(c, upper))
            self.h = h
        elif self.nz:  # new coefficients: the model again, from the last basis (same rows and columns)
            basis = self.h.getBasis()
            self.h.passModel(self._lp(c, upper))
            self.h.setBasis(basis)
        else:
            idx = np.arange(self.n, dtype=np.int32)
            self.h.changeColsCost(self.n, idx, c)
            self.h.changeColsBounds(self.n, idx, np.zeros(self.n), upper)
        self.h.run()
        status = self.h.getModelStatus()
        kind = {hs.HighsModelStatus.kOptimal: "optimal", hs.HighsModelStatus.kInfeasible: "infeasible"}.get(
            status, "other")
        return kind, float(self.h.getInfo().objective_function_value)


@dataclass
class EdgeEnergy:
    """One edge's columns (device, subset) and routes, and its LP (re-solved from its basis as costs change)."""

    p: RoundProblem
    edge: int
    dev: np.ndarray  # [K] device of each column
    mbits: np.ndarray  # [K, M] its modules
    pay: np.ndarray  # [K] payload bits
    cycles: np.ndarray  # [K] n_i sum_S c_m
    lcol: np.ndarray  # [L] per route via a D2D hop: its column
    ldst: np.ndarray  # [L] the relay
    lrate: np.ndarray  # [L] the hop's rate (bit/s)
    lidle: np.ndarray  # [L] the route's relay trains nothing (its pair row is the relay's empty column's)
    own: np.ndarray  # [N] most own bits O_j (eligible payload)
    rin: np.ndarray  # [N] most relayed bits Rin_j (the in-neighbours' O)
    lp: RouteLP
    union: bool = False  # relay_aggregates: uploads in the union rows of `lp` (each uploader >= each member alone)

    @classmethod
    def of(cls, p: RoundProblem, e: int, demand: np.ndarray, covers: bool = False,
           union: bool = False) -> EdgeEnergy | None:
        """The edge's columns; None where it has more than MAX_COLUMNS or no demand (covers: the LP gets each
        module's minimal covers; union, with relay_aggregates: each uploader's upload at least each member's alone,
        `RouteLP`)."""
        m = p.num_modules
        members = p.edge_devices(e)
        if members.size == 0 or not np.any(demand > 0) or m > 20:
            return None
        elig_bits = (p.eligible[members] & (p.samples[members, None] > 0))
        if float(np.sum(2.0 ** elig_bits.sum(axis=1))) > MAX_COLUMNS:
            return None
        masks = np.arange(1, 1 << m)
        bits = (masks[:, None] >> np.arange(m)[None, :]) & 1
        mem = bits @ p.module_memory_bytes
        elig = elig_bits.astype(np.int64) @ (1 << np.arange(m))
        ok = ((masks[None, :] & ~elig[:, None]) == 0) & (mem[None, :] <= p.memory_bytes[members, None] * (1 + 1e-12))
        li, cm = np.nonzero(ok)
        on = np.flatnonzero(p.device_edge[p.d2d_src] == e)
        hubs = np.unique(p.d2d_dst[on])  # a relay may train nothing: its empty column (cost 0) opens its pair rows
        dev = np.concatenate([members[li], hubs])
        mbits = np.concatenate([bits[cm], np.zeros((hubs.size, m), dtype=bits.dtype)])
        pay = 8.0 * (mbits @ p.module_bytes)
        cycles = p.samples[dev] * (mbits @ p.module_cycles)
        lcol, ldst, lrate, lidle = [], [], [], []
        for s_, d_, r_ in zip(p.d2d_src[on], p.d2d_dst[on], p.d2d_rate_bps[on], strict=True):
            cols = np.flatnonzero((dev == s_) & mbits.any(axis=1))
            for idle in (False, True):  # via a relay that trains, or one that trains nothing (priced apart)
                lcol.append(cols)
                ldst.append(np.full(cols.size, d_))
                lrate.append(np.full(cols.size, r_))
                lidle.append(np.full(cols.size, idle))
        own = 8.0 * ((p.eligible & (p.samples[:, None] > 0)) @ p.module_bytes)
        agg = p.relay_aggregates and not p.has_power_frequency  # union rows price uploads at fixed power
        rin = np.zeros(p.num_devices)
        if on.size:
            np.add.at(rin, p.d2d_dst[on], own[p.d2d_src[on]])
        def cat(parts: list[np.ndarray], dt: type) -> np.ndarray:
            return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dtype=dt)

        return cls(p, e, dev, mbits, pay, cycles, cat(lcol, np.int64), cat(ldst, np.int64), cat(lrate, float),
                   cat(lidle, bool), own, rin,
                   RouteLP(dev, mbits, p.samples, demand, cat(lcol, np.int64), cat(ldst, np.int64),
                           covers, union and agg, cat(lidle, bool)), union and agg)

    # ---- column costs ----------------------------------------------------------------------------------------
    def costs(self, t: float, nu: float, theta: float) -> np.ndarray:
        """[K + L] least energy + band charge of each column (direct, then via each D2D hop) at latency <= t,
        band price nu, decomposition theta (module doc); inf where the column cannot finish by t."""
        if self.p.has_power_frequency:
            out = self._costs_decisions(t, nu)
            out[:self.dev.size][self.empty] = 0.0
            return out
        p, dev, pay = self.p, self.dev, self.pay
        band = float(p.edge_bandwidth_hz[self.edge])
        a, pw = p.snr_hz[dev], p.tx_power_w[dev]
        tau = self.cycles / p.cpu_hz[dev]
        comp = p.kappa * self.cycles * p.cpu_hz[dev] ** 2
        w = t - tau
        q = pw * pay / a
        phi, s_up = concave_energy(q, nu * a)
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(w > 0, min_bandwidth(np.where(w > 0, pay / np.where(w > 0, w, 1.0), 0.0), a), np.inf)
        need_lo = need * (1 - 1e-9)
        with np.errstate(invalid="ignore"):
            windowed = np.where(need_lo >= a * s_up, pw * w + nu * need_lo, phi)
        direct = phi if theta == 0 else windowed if theta == 1 else theta * windowed + (1 - theta) * phi
        if self.union:  # the upload is the uploader's union variable's (`members`)
            direct = np.zeros(dev.size)
        direct = np.where((w > 0) & (need <= band), direct, np.inf)
        best = np.where(self.empty, 0.0, direct)
        if self.lcol.size:
            c, j, r = self.lcol, self.ldst, self.lrate
            arrive = tau[c] + pay[c] / r
            wj = t - arrive
            with np.errstate(divide="ignore", invalid="ignore"):
                need_j = np.where(wj > 0, min_bandwidth(np.where(wj > 0, pay[c] / np.where(wj > 0, wj, 1.0), 0.0),
                                                        p.snr_hz[j]), np.inf)
            hop = p.d2d_power_w[dev[c]] * pay[c] / r
            if not p.relay_aggregates:  # a relayed bit costs at least its relay's energy per bit at the whole band
                floor = p.tx_power_w[j] / uplink_rate(np.full(j.size, band), p.snr_hz[j])
                beta = np.where(self.lidle, self._average(nu)[j], self._beta(nu)[j])
                hop = hop + pay[c] * (theta * floor + (1 - theta) * np.maximum(beta, floor))
            hop = np.where((wj > 0) & (need_j <= band), hop, np.inf)
            return np.concatenate([comp + best, comp[c] + hop])
        return comp + best

    @property
    def empty(self) -> np.ndarray:
        """[K] the relays' empty columns (a device that trains nothing and uploads only what it relays)."""
        return np.asarray(~self.mbits.any(axis=1))

    def members(self, t: float, nu: float) -> np.ndarray:
        """[K + L] each column's upload alone at its uploader, at band price nu by latency t: min over
        b >= h_j(P / (T - ready)) of p_j P / R_j(b) + nu b (the windowed cost; the union of a group holds every
        member's subset and starts after every arrival, so the group's term is at least each member's)."""
        p, dev, pay = self.p, self.dev, self.pay
        tau = self.cycles / p.cpu_hz[dev]
        up = np.concatenate([dev, self.ldst])
        ready = np.concatenate([tau, tau[self.lcol] + pay[self.lcol] / self.lrate])
        bits = np.concatenate([pay, pay[self.lcol]])
        a, pw = p.snr_hz[up], p.tx_power_w[up]
        phi, s_up = concave_energy(pw * bits / a, nu * a)
        w = t - ready
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(w > 0, min_bandwidth(np.where(w > 0, bits / np.where(w > 0, w, 1.0), 0.0), a), np.inf)
            need_lo = need * (1 - 1e-9)
            return np.where(bits <= 0, 0.0, np.where(need_lo >= a * s_up, pw * w + nu * need_lo, phi))

    def _beta(self, nu: float) -> np.ndarray:
        """[N] the (C) price of a relayed bit at relay j: (phi(O + Rin) - phi(O)) / Rin (0 where Rin = 0)."""
        p = self.p
        a, pw = p.snr_hz, p.tx_power_w
        lo_max, _ = concave_energy(pw * (self.own + self.rin) / a, nu * a)
        up_own = concave_upper(pw * self.own / a, nu * a)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = np.where(self.rin > 0, (lo_max - up_own) / np.where(self.rin > 0, self.rin, 1.0), 0.0)
        return np.maximum(beta, 0.0)

    def _average(self, nu: float) -> np.ndarray:
        """[N] the (C) price of a bit relayed by j when j trains nothing: phi(Rin) / Rin (phi concave with
        phi(0) = 0, so phi(U) / U falls with U; j uploads U <= Rin relayed bits; 0 where Rin = 0)."""
        p = self.p
        a, pw = p.snr_hz, p.tx_power_w
        lo, _ = concave_energy(pw * self.rin / a, nu * a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.maximum(np.where(self.rin > 0, lo / np.where(self.rin > 0, self.rin, 1.0), 0.0), 0.0)

    def _costs_decisions(self, t: float, nu: float) -> np.ndarray:
        """[K] power and frequency as decisions: min over compute-time pieces of compute + upload (module doc)."""
        p, dev, pay = self.p, self.dev, self.pay
        c0 = p.noise_w_per_hz / p.uplink_gain
        fmin, fmax = p.freq_min[dev], p.freq_max[dev]
        t_min = self.cycles / fmax
        t_top = np.minimum(t, self.cycles / fmin)
        frac = np.linspace(0.0, 1.0, GRID + 1)
        span = np.where(t_min > 0, np.maximum(t_top, t_min) / np.where(t_min > 0, t_min, 1.0), 1.0)
        grid = t_min[:, None] * span[:, None] ** frac[None, :]  # [K, G+1] geometric from the least compute time
        with np.errstate(divide="ignore", invalid="ignore"):  # the relays' empty columns: 0 / 0 (cost 0 below)
            f = np.maximum(fmin[:, None], self.cycles[:, None] / grid)
        comp = np.where(f <= fmax[:, None] * (1 + 1e-12), p.kappa * self.cycles[:, None] * f * f, np.inf)
        # piece g: t_c in [grid_g, grid_(g+1)] -> comp(grid_(g+1)) + upload(t - grid_g); past t_top: comp(t_top)
        comp_hi = np.concatenate([comp[:, 1:], comp[:, -1:]], axis=1)
        start = grid  # each piece's earliest compute end
        k_dir = upload_per_bit(c0[dev][:, None], t - start, nu)
        best = np.min(comp_hi + pay[:, None] * k_dir, axis=1)
        if self.lcol.size:
            c, j, r = self.lcol, self.ldst, self.lrate
            hop_t = (pay[c] / r)[:, None]
            k_rel = upload_per_bit(c0[j][:, None], t - start[c] - hop_t, nu)
            up = 0.0 if p.relay_aggregates else pay[c][:, None] * k_rel
            via = p.d2d_power_w[dev[c]] * pay[c] / r
            rel = np.where(np.isfinite(k_rel), via[:, None] + comp_hi[c] + up, np.inf).min(axis=1)
            return np.concatenate([np.where(t_min < t, best, np.inf), np.where(t_min[c] < t, rel, np.inf)])
        return np.where(t_min < t, best, np.inf)

    def value(self, t: float, nu: float, theta: float) -> float:
        """A lower bound on the edge's energy of plans of latency <= t (J): LP(nu, theta) - nu B_e; inf: none
        finishes by t; -inf: the LP did not solve (no information)."""
        cost = self.costs(t, nu, theta)
        status, val = self.lp.solve(cost, self.members(t, nu) if self.union else None)
        if status == "infeasible":
            return math.inf
        if status != "optimal":
            return -math.inf
        return val * (1 - 1e-7) - abs(val) * 0.0 - nu * float(self.p.edge_bandwidth_hz[self.edge])


class SubsetEnergy:
    """E_lb per edge by the subset-column LP, searched over the band price nu (golden section on ln nu around a
    reference price) for each decomposition theta in `thetas` (default (C) alone: on the scale study's 100-device
    edges it was above (W) and the mixtures at every latency tried); edges are built lazily, in the clock."""

    def __init__(self, p: RoundProblem, steps: int = 6, thetas: tuple[float, ...] = (0.0,),
                 covers: bool = False, union: bool = False) -> None:
        self.p = p
        self.covers = covers
        self.union = union
        self.steps = steps
        self.thetas = (0.0,) if p.has_power_frequency else thetas
        self.demand = p.coverage_demand()
        self.edges: dict[int, EdgeEnergy | None] = {}
        self.nu: dict[int, float] = {}  # the best price found per edge (the next latency starts there)

    def edge(self, e: int) -> EdgeEnergy | None:
        if e not in self.edges:
            self.edges[e] = EdgeEnergy.of(self.p, e, self.demand[e], self.covers, self.union)
        return self.edges[e]

    def edge_value(self, e: int, t: float, nu_ref: float, clock: Clock | None = None) -> float:
        """Best LP(nu, theta) - nu B_e found for edge e at latency <= t (-inf: no LP ran)."""
        ee = self.edge(e)
        if ee is None:
            return -math.inf
        thetas = self.thetas
        start = self.nu.get(e, nu_ref if nu_ref > 0 else 0.0)
        best, arg = -math.inf, start
        for theta in thetas:
            if start <= 0:  # no reference price: nu = 0 alone (a valid bound)
                v = ee.value(t, 0.0, theta)
                if v > best:
                    best, arg = v, 0.0
                continue
            width = 3.0 if e not in self.nu else 1.0
            lo, hi = math.log(start) - width, math.log(start) + width
            c, d = hi - GOLD * (hi - lo), lo + GOLD * (hi - lo)
            fc, fd = ee.value(t, math.exp(c), theta), ee.value(t, math.exp(d), theta)
            for u, v in ((c, fc), (d, fd)):
                if v > best:
                    best, arg = v, math.exp(u)
            if math.isinf(fc) and fc > 0:
                return math.inf  # no plan finishes by t on this edge
            for _ in range(self.steps if theta == thetas[0] else self.steps // 2):
                if clock is not None and clock.expired():
                    break
                if fc >= fd:  # maximizing: keep [lo, d]
                    hi, d, fd = d, c, fc
                    c = hi - GOLD * (hi - lo)
                    u = c
                    fc = v = ee.value(t, math.exp(u), theta)
                else:
                    lo, c, fc = c, d, fd
                    d = lo + GOLD * (hi - lo)
                    u = d
                    fd = v = ee.value(t, math.exp(u), theta)
                if v > best:
                    best, arg = v, math.exp(u)
        if best > -math.inf:
            self.nu[e] = arg
        return best

    def energy_edges(self, t: float, nu_ref: np.ndarray, floor: np.ndarray, clock: Clock | None = None,
                     order: np.ndarray | None = None) -> np.ndarray:
        """[E] per edge the larger of `floor` (another valid bound, e.g. the knapsack's) and the LP's, the edges in
        `order` (default: all) while the clock lasts."""
        out = np.array(floor, dtype=float)
        for e in (range(self.p.num_edges) if order is None else order):
            if clock is not None and clock.expired():
                break
            out[e] = max(out[e], self.edge_value(int(e), t, float(nu_ref[e]), clock))
        return out
