"""Relay groups as columns with exact prices: a certified lower bound on E_lb(T), the least energy of any plan of
one edge that finishes by T (lambda > 0, one-hop relays, fixed power and frequency).

A *group* is an uploader j with its own module subset (possibly empty) and the devices that relay through it, each
with its subset. Its price at latency T is exact: compute, the D2D hops, and one upload of U bits (the sum of the
parts, or with `relay_aggregates` the union of their modules) starting at S = the last ready time (j's compute, each
member's arrival), at a band b in [h_j(U / (T - S)), B_e]. The subset LP of solvers/subset_energy.py prices a group
by its parts and cannot see that it starts after its last member; here nothing is split.

The master LP over groups g (solved by HiGHS, columns added as they are priced):
    min sum_g E_g x_g   s.t.   sum_g cov_gm x_g >= 1 (coverage, per module in units of its demand),
    sum_{g ∋ i} x_g <= 1 (each device in at most one group), sum_g b_g x_g / B_e <= 1 (the band as a row),
    x >= 0.
For any multipliers pi >= 0 (coverage), mu >= 0 (devices), nu >= 0 (band) and every feasible plan (a set of
disjoint groups, each uploader in one group),

    E >= sum_m pi_m - sum_i mu_i - nu + sum_j min(0, rc_j),

rc_j a lower bound on the least reduced cost E_g - pi cov_g + mu(g) + nu b_g / B_e over every group uploaded by j
and every band b it may use (a Lagrangian / Farley bound: valid at any multipliers, optimal or not, so HiGHS's
numbers are only ever clipped to their signs). `price` computes rc_j by enumeration: for each start threshold s
(the parts' ready times), each member's Pareto set over (bits, reduced cost) among its parts ready by s (a
larger payload never lowers the upload term), summed (Minkowski, pruned), and the upload term
min over b of p U / R(b) + nu b with b >= h(U / (T - s)) bounded below by the certified table of
solvers/upload_table.py; with relays that aggregate, per union Q of modules (each member's best subset within Q).
Its argmin group, priced exactly, is the next column; the loop stops when no group has a negative reduced cost
(then the bound is the master's optimum) or after `iters` rounds.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock, charge
from solvers.covers import LP_COVER_HOLDERS, cover_sets
from solvers.evaluate import LN2, uplink_rate
from solvers.highs import bare_highs
from solvers.instance import RoundProblem
from solvers.subsets import trainable_subsets
from solvers.upload_table import GOLD, concave_energy

MAX_SUBSETS = 4096
"""Most subsets of one edge's devices in all (2^M per device); an edge with more gets no group bound."""
PENALTY = 100.0
"""Cost of a unit of uncovered demand or of band beyond B_e in the master (units of the energy scale): keeps the
master feasible at any latency; the multipliers it bounds still give a valid bound."""
ITERS = 60
"""Pricing rounds per latency."""
MAX_POINTS = 64
"""Most trial latencies of the objective bound (each one pricing pass)."""
MAX_MASTERS = 8
"""Most masters (column generation runs) of the objective bound."""
SMOOTH = 0.5
"""Pricing first at SMOOTH x the best multipliers so far + the rest x the master's (dual stabilization); at the
master's alone where that finds no column."""
TOL = 1e-3
"""Pricing stops once the bound is within TOL of the master's value."""


@dataclass
class Parts:
    """One edge's (device, subset) parts."""

    dev: np.ndarray  # [K] device
    mask: np.ndarray  # [K] module bit mask
    mbits: np.ndarray  # [K, M] 0/1
    bits: np.ndarray  # [K] payload bits
    energy: np.ndarray  # [K] compute energy (J)
    tau: np.ndarray  # [K] compute time (s)


def edge_parts(p: RoundProblem, e: int) -> Parts | None:
    """Every (device, non-empty eligible subset within memory) of edge e; None where there are too many."""
    m = p.num_modules
    members = p.edge_devices(e)
    elig_bits = p.eligible[members] & (p.samples[members, None] > 0)
    if m > 12 or float(np.sum(2.0 ** elig_bits.sum(axis=1))) > MAX_SUBSETS:
        return None
    li, mask, bits = trainable_subsets(p, members)
    dev = members[li]
    mb = bits.astype(float)
    cycles = p.samples[dev] * (mb @ p.module_cycles)
    return Parts(dev=dev, mask=mask, mbits=mb, bits=8.0 * (mb @ p.module_bytes),
                 energy=p.kappa * cycles * p.cpu_hz[dev] ** 2, tau=cycles / p.cpu_hz[dev])


def _pareto(bits: np.ndarray, cost: np.ndarray, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points no other beats on both fewer-or-equal bits and lower cost (sorted by bits)."""
    order = np.lexsort((cost, bits))
    bits, cost, pick = bits[order], cost[order], pick[order]
    best = np.minimum.accumulate(cost)
    keep = np.ones(bits.size, dtype=bool)
    keep[1:] = cost[1:] < best[:-1]
    return bits[keep], cost[keep], pick[keep]


def _pareto3(ready: np.ndarray, bits: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """[n] bool: the points no other point matches or beats on ready time, bits and cost together (of equal
    points the first is kept)."""
    n = ready.size
    order = np.lexsort((bits, ready, cost))  # by cost: a point can only be dominated by one before it
    r, b = ready[order], bits[order]
    keep = np.ones(n, dtype=bool)
    if n <= 256:
        dom = (r[None, :] <= r[:, None]) & (b[None, :] <= b[:, None]) & np.tri(n, n, -1, dtype=bool)
        keep = ~dom.any(axis=1)
    else:  # a staircase of the kept points' (ready, bits): ready ascending, bits descending
        sr: list[float] = []
        sb: list[float] = []
        for i, (ri, bi) in enumerate(zip(r.tolist(), b.tolist(), strict=True)):
            at = bisect.bisect_right(sr, ri)
            if at > 0 and sb[at - 1] <= bi:
                keep[i] = False
                continue
            end = at
            while end < len(sr) and sb[end] >= bi:
                end += 1
            sr[at:end] = [ri]
            sb[at:end] = [bi]
    out = np.zeros(n, dtype=bool)
    out[order[keep]] = True
    return out


@dataclass
class Duals:
    """Multipliers of one master (J units): the constant sum_m pi_m + sum alpha - sum_i mu_i - nu (+ the covers'
    y terms), each part's reduced cost before device and band terms, each device's mu, and nu (J per B_e)."""

    const: float
    red: np.ndarray
    mu: np.ndarray
    nu: float


class GroupBound:
    """E_lb(T) of one edge by column generation over exact relay groups (module doc)."""

    def __init__(self, p: RoundProblem, e: int, parts: Parts) -> None:
        self.p, self.e, self.parts = p, e, parts
        self.band = float(p.edge_bandwidth_hz[e])
        self.devices = p.edge_devices(e)
        demand = p.coverage_demand()[e]
        self.need = np.flatnonzero(demand > 0)
        self.cov = parts.mbits[:, self.need] * (p.samples[parts.dev][:, None] / demand[self.need][None, :])
        on = np.flatnonzero(p.device_edge[p.d2d_src] == e)
        self.links = [(int(s), int(d), float(r)) for s, d, r in
                      zip(p.d2d_src[on], p.d2d_dst[on], p.d2d_rate_bps[on], strict=True)]
        self.into = {int(j): [(s, r) for s, d, r in self.links if d == j] for j in self.devices}
        self.rb = uplink_rate(np.full(p.num_devices, self.band), p.snr_hz)  # each device's rate on the whole band
        self.row_of = {int(i): k for k, i in enumerate(self.devices)}
        self.by_dev = {int(i): np.flatnonzero(parts.dev == i) for i in self.devices}
        self.part_of = {(int(d), int(m)): k for k, (d, m) in enumerate(zip(parts.dev, parts.mask, strict=True))}
        self.scale = 1.0  # energy unit (J), set per latency
        self.duals: list[Duals] = []  # the multipliers of each latency's best bound (J units)
        self.columns: dict[tuple, int] = {}  # relay groups' column index in the last master
        self.known: dict[tuple, float] = {}  # relay groups kept from the last master, with their bands
        # each module's minimal covers (the knapsack's convex hull, as in solvers/route_lp.py): rows "the module's
        # covers sum to >= 1" and per holder i "i trains m in its group >= the covers that use i"
        self.cover_rows: list[tuple[int, np.ndarray, np.ndarray]] = []  # (module, holders, covers [C, holders])
        link_of: dict[tuple[int, int], int] = {}
        for m in self.need:
            holders = np.unique(parts.dev[parts.mbits[:, m] > 0])
            found = cover_sets(p.samples[holders], float(demand[m]), LP_COVER_HOLDERS)
            if found.shape[0] == 0:
                continue
            for i in holders:
                link_of[(int(m), int(i))] = len(link_of)
            self.cover_rows.append((int(m), holders, found))
        self.nlink = len(link_of)
        self.part_link: list[np.ndarray] = []  # per part: its link rows (modules it trains that have covers)
        for k in range(parts.dev.size):
            ms = np.flatnonzero(parts.mbits[k])
            self.part_link.append(np.array([link_of[(int(m), int(parts.dev[k]))] for m in ms
                                            if (int(m), int(parts.dev[k])) in link_of], dtype=np.int64))
        plr = np.concatenate([np.full(x.size, k) for k, x in enumerate(self.part_link)] + [np.zeros(0, dtype=int)])
        plc = np.concatenate(self.part_link + [np.zeros(0, dtype=np.int64)])
        self.link_mat = np.zeros((parts.dev.size, max(self.nlink, 1)))
        self.link_mat[plr.astype(int), plc] = 1.0
        self.sup = np.zeros((0, 0), dtype=bool)
        self.qbits = np.zeros(0)
        if p.relay_aggregates:
            q = np.arange(1 << p.num_modules)
            self.sup = (parts.mask[:, None] & ~q[None, :]) == 0  # [K, 2^M] the part's subset lies within Q
            self.qbits = 8.0 * (((q[:, None] >> np.arange(p.num_modules)[None, :]) & 1) @ p.module_bytes)

    # ---- the upload term ---------------------------------------------------------------------------------------
    def upload_lb(self, j: int, u: np.ndarray, w: float | np.ndarray, nu: float) -> np.ndarray:
        """Lower bound on min over b in [h_j(u / w), B_e] of p_j u / R_j(b) + nu b (J); inf where no band finishes
        u bits in w; 0 for u = 0."""
        p = self.p
        a, pw = float(p.snr_hz[j]), float(p.tx_power_w[j])
        u = np.asarray(u, dtype=float)
        w = np.broadcast_to(np.asarray(w, dtype=float), u.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(w > 0, min_bandwidth(np.where(w > 0, u / np.where(w > 0, w, 1.0), 0.0),
                                                 np.full(u.shape, a)), np.inf)
        need_lo = need * (1 - 1e-9)
        phi, s_up = concave_energy(pw * u / a, np.full(u.shape, nu * a))
        with np.errstate(invalid="ignore"):
            val = np.where(need_lo >= a * s_up, pw * w + nu * need_lo, phi)
        val = np.maximum(val, pw * u / float(self.rb[j]) + (nu * need_lo if nu > 0 else 0.0))
        val = np.where(need <= self.band, val, np.inf)
        return np.where(u > 0, val * (1 - 1e-9), 0.0)

    def upload_at(self, j: int, u: float, w: float, nu: float, band: float | None = None) -> tuple[float, float]:
        """(energy, band) of a real upload of u bits in at most w at band price nu (a band in [need, B_e] near the
        priced optimum, or `band` clamped to that range); (inf, inf) where none fits."""
        p = self.p
        if u <= 0:
            return 0.0, 0.0
        a, pw = float(p.snr_hz[j]), float(p.tx_power_w[j])
        need = float(min_bandwidth(np.array([u / w]), np.array([a]))[0]) if w > 0 else math.inf
        if need > self.band:
            return math.inf, math.inf
        if band is not None:
            b = min(max(band, need), self.band)
            return pw * u * LN2 / (b * math.log1p(a / b)), b
        lo, hi = math.log(max(need, 1e-12 * self.band)), math.log(self.band)

        def f(x: float) -> float:
            b = math.exp(x)
            return pw * u * LN2 / (b * math.log1p(a / b)) + nu * b

        for _ in range(40):  # golden section on ln b (p u / R(b) + nu b is convex in b, so unimodal in ln b)
            c, d = hi - GOLD * (hi - lo), lo + GOLD * (hi - lo)
            if f(c) <= f(d):
                hi = d
            else:
                lo = c
        b = min(max(math.exp(0.5 * (lo + hi)), need), self.band)
        return pw * u * LN2 / (b * math.log1p(a / b)), b

    # ---- pricing -----------------------------------------------------------------------------------------------
    def price(self, j: int, t: float, red: np.ndarray, mu: np.ndarray, nu: float
              ) -> tuple[float, list[tuple[int, int]] | None]:
        """(lower bound on the least reduced cost of a group uploaded by j at latency t, in energy units; that
        group as [(device, part index or -1 for j's empty own part)], None where it is the empty group)."""
        pa, p = self.parts, self.p
        nu_j = nu * self.scale / self.band  # J per Hz
        own = self.by_dev[j]
        own = own[pa.tau[own] < t]
        sides = [(np.concatenate([[-1], own]), np.concatenate([[0.0], pa.tau[own]]),
                  np.concatenate([[0.0], red[own]]) + mu[self.row_of[j]])]
        for i, r in self.into[j]:
            k = self.by_dev[i]
            arrive = pa.tau[k] + pa.bits[k] / r
            ok = arrive < t
            k = k[ok]
            hop = p.d2d_power_w[i] * pa.bits[k] / r / self.scale
            sides.append((k, arrive[ok], red[k] + hop + mu[self.row_of[i]]))
        # every bit a group uploads costs at least p_j / R_j(B_e) more (at any band b <= B_e that fits the larger
        # upload, the smaller one fits too), so with that charge moved onto the parts (not with relay_aggregates,
        # where a member's modules may add no bits) a member whose part costs >= 0 never lowers the price
        floor = 0.0 if p.relay_aggregates else float(p.tx_power_w[j] / self.rb[j]) / self.scale
        sides = [(k, r_, c + floor * pa.bits[np.maximum(k, 0)] * (k >= 0)) for k, r_, c in sides]
        sides = [sides[0]] + [(k, r_, c) for k, r_, c in ((k[c < 0], r_[c < 0], c[c < 0]) for k, r_, c in sides[1:])]
        ready_all = np.unique(np.concatenate([s[1] for s in sides]))
        if p.relay_aggregates:
            return self._price_union(j, t, sides, ready_all, nu_j)
        return self._price_sum(j, t, sides, nu_j, floor)

    def _thresholds(self, j: int, t: float, sides: list, ready_all: np.ndarray, nu_j: float, floor: float
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(start thresholds in the order to try, a lower bound on the reduced cost of any group priced there: j's
        own part with its upload alone (the upload term less the bit charge `floor` never falls as bits are added)
        and each member's least cost among its parts ready by then, at most 0)."""
        k, ready, c = sides[0]
        ob = np.where(k >= 0, self.parts.bits[np.maximum(k, 0)], 0.0)
        up = self.upload_lb(j, np.broadcast_to(ob[:, None], (ob.size, ready_all.size)),
                            np.broadcast_to(t - ready_all[None, :], (ob.size, ready_all.size)), nu_j)
        mat = np.where(ready[:, None] <= ready_all[None, :], c[:, None] + up / self.scale - floor * ob[:, None],
                       np.inf)
        low = mat.min(axis=0)
        for _, ready, c in sides[1:]:
            if c.size == 0:
                continue
            order = np.argsort(ready, kind="stable")
            run = np.minimum.accumulate(c[order])
            at = np.searchsorted(ready[order], ready_all, side="right")  # parts ready by each threshold
            low += np.where(at > 0, np.minimum(run[np.maximum(at - 1, 0)], 0.0), 0.0)
        order = np.argsort(low, kind="stable")
        return ready_all[order], low[order]

    def _price_sum(self, j: int, t: float, sides: list, nu_j: float, floor: float
                   ) -> tuple[float, list | None]:
        """Sum of the parts' bits: the members' combinations (each member out or one part), kept where no other
        is ready as early with as few bits at as low a cost, against every own part at once."""
        pa = self.parts
        ready = np.zeros(1)
        bits = np.zeros(1)
        cost = np.zeros(1)
        pick = np.zeros((1, 0), dtype=np.int64)
        for k, r_, c in sides[1:]:
            b_ = pa.bits[k]
            n0 = ready.size
            ready = np.concatenate([ready, np.maximum(ready[:, None], r_[None, :]).ravel()])
            bits = np.concatenate([bits, (bits[:, None] + b_[None, :]).ravel()])
            cost = np.concatenate([cost, (cost[:, None] + c[None, :]).ravel()])
            pick = np.concatenate([np.concatenate([pick, np.full((n0, 1), -2)], axis=1),
                                   np.concatenate([np.repeat(pick, k.size, axis=0),
                                                   np.tile(k, n0)[:, None]], axis=1)])
            keep = _pareto3(ready, bits, cost)
            ready, bits, cost, pick = ready[keep], bits[keep], cost[keep], pick[keep]
        k0, r0, c0 = sides[0]
        b0 = np.where(k0 >= 0, pa.bits[np.maximum(k0, 0)], 0.0)
        keep = _pareto3(r0, b0, c0)
        k0, r0, c0, b0 = k0[keep], r0[keep], c0[keep], b0[keep]
        start = np.maximum(r0[:, None], ready[None, :])
        u = b0[:, None] + bits[None, :]
        val = c0[:, None] + cost[None, :] + self.upload_lb(j, u, t - start, nu_j) / self.scale - floor * u
        at = int(np.argmin(val))
        a0, a1 = divmod(at, ready.size)
        best = float(val.flat[at])
        if not math.isfinite(best):
            return math.inf, None
        chosen = [int(k0[a0])] + [int(x) for x in pick[a1]]
        return best, [(int(dv), kx) for dv, kx in zip([j] + [d for d, _ in self.into[j]], chosen, strict=True)
                      if kx != -2]

    def _price_union(self, j: int, t: float, sides: list, ready_all: np.ndarray, nu_j: float
                     ) -> tuple[float, list | None]:
        """relay_aggregates: per start threshold s and union Q of modules, each side's least cost among its parts
        ready by s within Q (a member's at most 0: it may stay out; j's own part is one, maybe empty), plus the
        upload of Q's bits in T - s (the union of the chosen parts lies within Q, and fewer bits never cost more)."""
        nq = self.qbits.size
        total = np.zeros((ready_all.size, nq))
        for q, (k, ready, c) in enumerate(sides):
            if k.size == 0:
                continue
            inside = np.ones((k.size, nq), dtype=bool)
            real = k >= 0
            inside[real] = self.sup[k[real]]
            order = np.argsort(ready, kind="stable")
            run = np.minimum.accumulate(np.where(inside, c[:, None], np.inf)[order], axis=0)
            at = np.searchsorted(ready[order], ready_all, side="right")
            got = np.where((at > 0)[:, None], run[np.maximum(at - 1, 0)], np.inf)
            total += np.minimum(got, 0.0) if q > 0 else got
        total += self.upload_lb(j, np.broadcast_to(self.qbits[None, :], total.shape),
                                np.broadcast_to(t - ready_all[:, None], total.shape), nu_j) / self.scale
        arg = int(np.argmin(total))
        best = float(total.flat[arg])
        if not math.isfinite(best):
            return math.inf, None
        s_, qm = ready_all[arg // nq], arg % nq
        group = []
        for q, (dv, (k, ready, c)) in enumerate(zip([j] + [d for d, _ in self.into[j]], sides, strict=True)):
            ok = (ready <= s_) & np.where(k >= 0, self.sup[np.maximum(k, 0), qm], True)
            if not ok.any():
                continue
            i = int(np.argmin(np.where(ok, c, np.inf)))
            if q == 0 or c[i] < 0:
                group.append((int(dv), int(k[i])))
        return best, group

    # ---- the exact column --------------------------------------------------------------------------------------
    def column(self, j: int, group: list[tuple[int, int]], t: float, nu: float, band: float | None = None
               ) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray] | None:
        """(energy J, device rows, coverage [need], band Hz) of the group priced exactly; None: it cannot finish."""
        pa, p = self.parts, self.p
        energy, start = 0.0, 0.0
        cov = np.zeros(self.need.size)
        rows = []
        links = []
        union = np.zeros(p.num_modules)
        u = 0.0
        rate = {i: r for i, r in self.into[j]}
        for dv, k in group:
            rows.append(self.row_of[dv])
            if k < 0:
                continue
            energy += pa.energy[k]
            cov += self.cov[k]
            links.append(self.part_link[k])
            union = np.maximum(union, pa.mbits[k])
            u += pa.bits[k]
            ready = pa.tau[k]
            if dv != j:
                ready += pa.bits[k] / rate[dv]
                energy += p.d2d_power_w[dv] * pa.bits[k] / rate[dv]
            start = max(start, ready)
        if p.relay_aggregates:
            u = 8.0 * float(union @ p.module_bytes)
        up, b = self.upload_at(j, u, t - start, nu, band)
        if not math.isfinite(up):
            return None
        return energy + up, np.array(rows), cov, b, np.concatenate(links + [np.zeros(0, dtype=np.int64)])

    def plan_groups(self, x: np.ndarray, relay: np.ndarray, band: np.ndarray) -> list[tuple]:
        """The relay groups of a plan (placement x [N, M], one-hop relay [N], bandwidth [N] Hz) on this edge, as
        master columns with their bands."""
        masks = np.asarray(x, dtype=np.int64) @ (1 << np.arange(self.p.num_modules))
        out = []
        for j in self.devices:
            if relay[j] != j:
                continue
            group = [(int(j), self.part_of.get((int(j), int(masks[j])), -1))]
            for i, _ in self.into[int(j)]:
                if relay[i] == j and masks[i] and (i, int(masks[i])) in self.part_of:
                    group.append((i, self.part_of[(i, int(masks[i]))]))
            if len(group) > 1 or group[0][1] >= 0:
                out.append(((int(j), tuple(group)), float(band[j])))
        return out

    # ---- the bound ---------------------------------------------------------------------------------------------
    def energy(self, t: float, scale: float, iters: int = ITERS, clock: Clock | None = None,
               seed: list | None = None, target: float | None = None) -> float:
        """Certified lower bound on the edge's energy of plans finishing by t (J; scale: the energy unit, e.g. a
        plan's energy; seed: (group, band Hz) columns to start from, e.g. `plan_groups`; target: stop once the
        bound reaches it)."""
        fast = bare_highs()
        if fast is None:
            return -math.inf
        hs, bare = fast
        self.scale = scale
        nd, nm = self.devices.size, self.need.size
        h = bare()
        h.setOptionValue("output_flag", False)
        inf = hs.kHighsInf
        none = np.zeros(0, dtype=np.int32)
        # rows: coverage (>= 1) [0, nm), devices (<= 1) [nm, nm + nd), band (<= 1) nm + nd, then per module with
        # covers its cover row (>= 1) and its holders' link rows (>= 0)
        h.addRows(nm, np.ones(nm), np.full(nm, inf), 0, none, none, np.zeros(0))
        h.addRows(nd + 1, np.full(nd + 1, -inf), np.ones(nd + 1), 0, none, none, np.zeros(0))
        base = nm + nd + 1
        ncr = len(self.cover_rows)
        h.addRows(ncr, np.ones(ncr), np.full(ncr, inf), 0, none, none, np.zeros(0))
        h.addRows(self.nlink, np.zeros(self.nlink), np.full(self.nlink, inf), 0, none, none, np.zeros(0))
        link0 = base + ncr
        ycols = []  # (cover row, link rows) of every cover variable y in [0, 1]
        first = 0
        for c, (_, holders, found) in enumerate(self.cover_rows):
            for cov in found:
                links = link0 + first + np.flatnonzero(cov)
                idx = np.concatenate([[base + c], links]).astype(np.int32)
                h.addCol(0.0, 0.0, 1.0, idx.size, idx, np.concatenate([[1.0], -np.ones(links.size)]))
                ycols.append((base + c, links))
            first += holders.size
        for m in range(nm):  # slack: uncovered demand
            h.addCol(PENALTY, 0.0, inf, 1, np.array([m], dtype=np.int32), np.array([1.0]))
        for c in range(ncr):
            h.addCol(PENALTY, 0.0, inf, 1, np.array([base + c], dtype=np.int32), np.array([1.0]))
        h.addCol(PENALTY, 0.0, inf, 1, np.array([nm + nd], dtype=np.int32), np.array([-1.0]))  # band beyond B_e
        self.link0 = link0
        best = -math.inf
        seen: set = set()
        self.columns = {}
        for k in range(self.parts.dev.size):  # every part alone, direct, at its least band and at the whole band
            i = int(self.parts.dev[k])
            for b in (0.0, self.band):
                self._add(h, (i, ((i, k),)), t, 0.0, seen, b)
        for g, b in list(self.known.items()) + list(seed or []):
            self._add(h, g, t, 0.0, seen, b)
        center: np.ndarray | None = None
        for _ in range(iters):
            h.run()
            charge(h.getInfo())
            obj = float(h.getInfo().objective_function_value)
            raw = np.asarray(h.getSolution().row_dual, dtype=float)
            for weight in ((SMOOTH, 0.0) if center is not None else (0.0,)):  # Wentges: toward the best multipliers
                dual = raw if center is None or weight == 0.0 else weight * center + (1 - weight) * raw
                pos = np.maximum(dual, 0.0)
                pi, alpha, sigma = pos[:nm], pos[base:link0], pos[link0:]
                mu = np.maximum(-dual[nm:nm + nd], 0.0)
                nu = max(-float(dual[nm + nd]), 0.0)
                const = float(pi.sum() + alpha.sum() - mu.sum() - nu)
                const += sum(min(0.0, float(pos[links].sum() - pos[row])) for row, links in ycols)  # y in [0, 1]
                red = self.parts.energy / scale - self.cov @ pi - self.link_mat[:, :self.nlink] @ sigma
                added = 0
                lb = const
                for j in self.devices:
                    rc, group = self.price(int(j), t, red, mu, nu)
                    if rc < 0:
                        lb += rc
                    if rc < -1e-9 and group is not None:
                        added += self._add(h, (int(j), tuple(group)), t, nu * self.scale / self.band, seen)
                if lb > best:
                    best, center = lb, dual
                    self.duals.append(Duals(const * scale, red * scale, mu * scale, nu * scale))
                if added:
                    break
            if added == 0 or best >= obj - TOL * abs(obj) or (target is not None and best * scale >= target) or (
                    clock is not None and clock.expired()):
                break
        x = np.asarray(h.getSolution().col_value, dtype=float)
        used = {g for g, c in self.columns.items() if c < x.size and x[c] > 1e-9}
        self.known = {g: b for g, b in self.known.items() if g in used}  # the next latency starts from these
        return best * scale

    def lagrangian(self, t: float, d: Duals) -> float:
        """The bound of multipliers d at latency t (J): one pricing pass, no LP; valid at any t (module doc)."""
        keep, self.scale = self.scale, 1.0
        lb = d.const
        for j in self.devices:
            rc, _ = self.price(int(j), t, d.red, d.mu, d.nu)
            lb += min(rc, 0.0)
        self.scale = keep
        return lb

    def _add(self, h, g: tuple, t: float, nu_hz: float, seen: set, band: float | None = None) -> int:  # noqa: ANN001
        j, group = g
        col = self.column(j, list(group), t, nu_hz, band)
        if col is None:
            return 0
        energy, rows, cov, b, links = col
        if len(group) > 1 or group[0][0] != j:
            self.known[g] = b
            self.columns[g] = h.getNumCol()
        key = (j, group, round(b / self.band, 6))
        if key in seen:
            return 0
        seen.add(key)
        nm = self.need.size
        idx = np.concatenate([np.arange(nm)[cov > 0], nm + rows, [nm + self.devices.size],
                              self.link0 + links]).astype(np.int32)
        val = np.concatenate([cov[cov > 0], np.ones(rows.size), [b / self.band], np.ones(links.size)])
        h.addCol(energy / self.scale, 0.0, np.inf, idx.size, idx, val)
        return 1


def group_applies(p: RoundProblem) -> bool:
    """The group bound's rounds: one-hop relays at fixed power and frequency, full-size uploads (no compression
    levels), no trees."""
    return not (p.tree_aggregation or p.has_power_frequency or p.level_factor is not None
                or p.level is not None) and p.num_modules <= 12


def group_lower_bound(p: RoundProblem, t_lb: float, upper: float, t_ref: float, e_ref: float, clock: Clock,
                      gap: float = 0.01, rtol: float = 0.002,
                      plan: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> float:
    """Certified lower bound on min T + lambda E over the round's plans (lambda > 0), from the group masters:
    t_lb <= every plan's latency, upper a plan's objective (no better plan is slower than it), t_ref and e_ref
    that plan's latency and energy (the first master's latency; the energy unit). E(T) >= sum over edges of the
    best Lagrangian bound L_e(T') at any T' >= T (E_lb never rises with T), so on a piece [t_k, t_k+1] the
    objective is at least t_k + lambda L(t_k+1): pieces are split where least, and where a piece is as fine as
    rtol a master at its right end adds its multipliers; each master starts from `plan`'s groups (placement,
    relays, bandwidth). -inf where an edge has too many subsets."""
    lam = p.lam
    edges = []
    for e in range(p.num_edges):
        parts = edge_parts(p, e)
        if parts is None:
            return -math.inf
        edges.append(GroupBound(p, e, parts))
    scale = max(e_ref / len(edges), 1e-30)

    found: list[tuple[float, list]] = []  # (latency, each edge's best multipliers there)

    def master(t: float) -> None:
        for g in edges:
            if clock.expired():
                return
            g.energy(t, scale, clock=clock, seed=None if plan is None else g.plan_groups(*plan))
        if all(g.duals for g in edges):
            found.append((t, [g.duals[-1] for g in edges]))

    def value(t: float) -> float:  # with the multipliers of the nearest masters on either side
        near = sorted(found, key=lambda f: abs(math.log(f[0] / t)))[:2]
        return max(sum(g.lagrangian(t, d) for g, d in zip(edges, ds, strict=True)) for _, ds in near)

    master(t_ref)
    if not found:
        return -math.inf
    hi = upper
    for _ in range(3):  # no plan better than upper is slower than upper - lambda E_lb(upper)
        hi = min(hi, max(upper - lam * max(value(hi), 0.0), t_lb))
    pts = sorted({t_lb, *np.geomspace(max(t_lb, 1e-12), hi, 6)[1:-1].tolist(), t_ref, hi})
    pts = [t for t in pts if t_lb <= t <= hi]
    vals = [value(t) for t in pts]

    def bound() -> tuple[float, int]:
        low = np.maximum.accumulate(np.array(vals)[::-1])[::-1]  # E(T) >= L(T') for every T' >= T
        pieces = [pts[k] + lam * low[k + 1] for k in range(len(pts) - 1)] + [upper]
        k = int(np.argmin(pieces))
        return float(pieces[k]), k

    while not clock.expired() and len(pts) < MAX_POINTS:
        got, k = bound()
        if got >= (1 - gap) * upper or k == len(pts) - 1:
            break
        t = pts[k + 1]
        if len(found) < MAX_MASTERS and all(abs(math.log(f[0] / t)) > rtol for f in found):
            master(t)  # multipliers of its own at the piece's right end
            for q in (k, k + 1, k + 2):
                if 0 <= q < len(pts):
                    vals[q] = max(vals[q], value(pts[q]))
            continue
        if pts[k + 1] <= pts[k] * (1 + rtol):
            break
        mid = math.sqrt(pts[k] * pts[k + 1])
        pts.insert(k + 1, mid)
        vals.insert(k + 1, value(mid))
    return min(bound()[0], upper)


class GroupEnergy:
    """Per edge E_lb(T) by the group columns (an `EdgeFloor` of solvers/energy_bound.py), the larger of it and
    `inner`'s (e.g. the subset LP) where both run; edges with too many subsets keep the floor."""

    def __init__(self, p: RoundProblem, inner: Any = None) -> None:
        self.p, self.inner = p, inner
        self.edges: dict[int, GroupBound | None] = {}
        self.scale: dict[int, float] = {}

    def edge(self, e: int) -> GroupBound | None:
        if e not in self.edges:
            parts = edge_parts(self.p, e)
            self.edges[e] = None if parts is None else GroupBound(self.p, e, parts)
        return self.edges[e]

    def energy_edges(self, t: float, nu_ref: np.ndarray, floor: np.ndarray, clock: Clock | None = None
                     ) -> np.ndarray:
        out = np.array(floor, dtype=float)
        if self.inner is not None:
            out = np.maximum(out, self.inner.energy_edges(t, nu_ref, floor, clock))
        for e in range(self.p.num_edges):
            if clock is not None and clock.expired():
                break
            g = self.edge(e)
            if g is None or not math.isfinite(out[e]):
                continue
            scale = self.scale.setdefault(e, max(float(out[e]), 1e-30))
            out[e] = max(out[e], g.energy(t, scale, clock=clock))
        return out
