"""Exact prices of relay groups (the columns of solvers/group_columns.py) and the pricing problem: per uploader j, a
lower bound on the least reduced cost of any group j uploads at latency T, and that group.

`price` enumerates: for each start threshold s (the parts' ready times), each member's parts ready by s, their
combinations kept on a Pareto set over (ready time, bits, reduced cost) (a larger payload never lowers the upload
term), and the upload term min over b of p U / R(b) + nu b with b >= h(U / (T - s)), bounded below by the certified
table of solvers/upload_table.py; with relays that aggregate, per union Q of modules (each member's best subset
within Q). Pricing is exact, so the Lagrangian bound of group_columns.py is valid at any multipliers.
"""

from __future__ import annotations

import math

import numpy as np

from solvers.bandwidth import min_bandwidth, min_bandwidth_one
from solvers.evaluate import LN2, uplink_rate
from solvers.group_parts import Parts, pareto3
from solvers.instance import RoundProblem
from solvers.upload_table import GOLD, concave_energy

LAZY = 16
"""Entries of a pricing pass whose exact upload term is taken first (`GroupPricing._lazy`; 0: every entry)."""
CHORDS = 9
"""Points of the cheap upload term's chords (`GroupPricing.upload_cheap`)."""
GOLDEN_STEPS = 40
"""Golden-section steps of a column's band (`GroupPricing.upload_at`: any band in range gives a real column; 40 steps
leave the bracket 4e-9 of its log-width, as before)."""


class GroupPricing:
    """One edge's relay groups: their exact prices (`column`) and the pricing problem (`price`)."""

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
        self.scale = 1.0  # energy unit (J), set per latency
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
        u = np.asarray(u, dtype=float)
        return upload_lb(float(self.p.snr_hz[j]), float(self.p.tx_power_w[j]), float(self.rb[j]), self.band, u,
                         np.broadcast_to(np.asarray(w, dtype=float), u.shape), nu)

    def upload_at(self, j: int, u: float, w: float, nu: float, band: float | None = None) -> tuple[float, float]:
        """(energy, band) of a real upload of u bits in at most w at band price nu (a band in [need, B_e] near the
        priced optimum, or `band` clamped to that range); (inf, inf) where none fits."""
        p = self.p
        if u <= 0:
            return 0.0, 0.0
        a, pw = float(p.snr_hz[j]), float(p.tx_power_w[j])
        need = min_bandwidth_one(u / w, a) if w > 0 else math.inf
        if need > self.band:
            return math.inf, math.inf
        if band is not None:
            b = min(max(band, need), self.band)
            return pw * u * LN2 / (b * math.log1p(a / b)), b
        lo, hi = math.log(max(need, 1e-12 * self.band)), math.log(self.band)

        def f(x: float) -> float:
            b = math.exp(x)
            return pw * u * LN2 / (b * math.log1p(a / b)) + nu * b

        c, d = hi - GOLD * (hi - lo), lo + GOLD * (hi - lo)
        fc, fd = f(c), f(d)
        for _ in range(GOLDEN_STEPS):  # golden section on ln b (p u / R(b) + nu b is convex in b: unimodal in ln b)
            if fc <= fd:
                hi, d, fd = d, c, fc
                c = hi - GOLD * (hi - lo)
                fc = f(c)
            else:
                lo, c, fc = c, d, fd
                d = lo + GOLD * (hi - lo)
                fd = f(d)
        b = min(max(math.exp(0.5 * (lo + hi)), need), self.band)
        return pw * u * LN2 / (b * math.log1p(a / b)), b

    # ---- pricing -----------------------------------------------------------------------------------------------
    def price(self, j: int, t: float, red: np.ndarray, mu: np.ndarray, nu: float, memo: dict | None = None,
              many: int = 1) -> tuple[float, list[list[tuple[int, int]]]]:
        """(lower bound on the least reduced cost of a group uploaded by j at latency t, in energy units, where
        negative, else 0; up to `many` groups of the least priced reduced costs, where negative, the least first,
        each as [(device, part index or -1 for j's empty own part)]). memo: a dict kept with these multipliers
        across latencies (relays that forward: j's members' combinations are enumerated once, for any latency, and
        filtered by t)."""
        p = self.p
        nu_j = nu * self.scale / self.band  # J per Hz
        # every bit a group uploads costs at least p_j / R_j(B_e) more (at any band b <= B_e that fits the larger
        # upload, the smaller one fits too), so with that charge moved onto the parts (not with relay_aggregates,
        # where a member's modules may add no bits) a member whose part costs >= 0 never lowers the price
        floor = 0.0 if p.relay_aggregates else float(p.tx_power_w[j] / self.rb[j]) / self.scale
        if memo is not None and not p.relay_aggregates:
            if j not in memo:
                memo[j] = self._combos(j, math.inf, self._sides(j, math.inf, red, mu, floor))
            own, members = memo[j]
            return self._finish(j, t, own, members, nu_j, floor, many)
        sides = self._sides(j, t, red, mu, floor)
        if p.relay_aggregates:
            ready_all = np.unique(np.concatenate([s[1] for s in sides]))
            return self._price_union(j, t, sides, ready_all, nu_j, many)
        own, members = self._combos(j, t, sides)
        return self._finish(j, t, own, members, nu_j, floor, many)

    def _sides(self, j: int, t: float, red: np.ndarray, mu: np.ndarray, floor: float) -> list:
        """[(part indices, ready times, reduced costs)] of j's own parts (-1: none) and of each member's parts
        that arrive before t (those that could lower the price: cost < 0 after the bits' floor charge)."""
        pa, p = self.parts, self.p
        own = self.by_dev[j]
        own = own[pa.tau[own] < t]
        sides = [(np.concatenate([[-1], own]), np.concatenate([[0.0], pa.tau[own]]),
                  np.concatenate([[0.0], red[own] + floor * pa.bits[own]]) + mu[self.row_of[j]])]
        for i, r in self.into[j]:
            k = self.by_dev[i]
            arrive = pa.tau[k] + pa.bits[k] / r
            c = red[k] + p.d2d_power_w[i] * pa.bits[k] / r / self.scale + mu[self.row_of[i]] + floor * pa.bits[k]
            ok = (arrive < t) & (c < 0)
            sides.append((k[ok], arrive[ok], c[ok]))
        return sides

    def _combos(self, j: int, t: float, sides: list) -> tuple[tuple, tuple]:
        """Sum of the parts' bits: j's own parts and the members' combinations (each member out or one part), each
        kept where no other is ready as early with as few bits at as low a cost. Only a negative reduced cost
        counts (the bound takes min(0, rc)), so a combination is dropped where even the rest's least costs
        cannot make it negative (the upload term less the bit charge is >= 0 and never falls as bits or the start
        grow) or where its bits cannot finish by t on the whole band."""
        pa = self.parts
        rate = float(self.rb[j])  # the most bits a second j can upload
        k0, r0, c0 = sides[0]
        b0 = np.where(k0 >= 0, pa.bits[np.maximum(k0, 0)], 0.0)
        keep = pareto3(r0, b0, c0)
        k0, r0, c0, b0 = k0[keep], r0[keep], c0[keep], b0[keep]
        least = [float(c.min()) if c.size else 0.0 for _, _, c in sides[1:]]  # each member's least (< 0)
        rest = float(c0.min()) + np.concatenate([np.cumsum(least[::-1])[::-1][1:], [0.0]]) if least else np.zeros(0)
        ready = np.zeros(1)
        bits = np.zeros(1)
        cost = np.zeros(1)
        levels: list[tuple[np.ndarray, np.ndarray]] = []  # per member: each kept combination's parent, its part
        for q, (k, r_, c) in enumerate(sides[1:]):
            b_ = pa.bits[k]
            n0 = ready.size
            ready = np.concatenate([ready, np.maximum(ready[:, None], r_[None, :]).ravel()])
            bits = np.concatenate([bits, (bits[:, None] + b_[None, :]).ravel()])
            cost = np.concatenate([cost, (cost[:, None] + c[None, :]).ravel()])
            sel = np.flatnonzero((cost + rest[q] < 0) & (bits < rate * (t - ready)))
            sel = sel[pareto3(ready[sel], bits[sel], cost[sel])]
            ready, bits, cost = ready[sel], bits[sel], cost[sel]
            out, rel, ks = sel < n0, sel - n0, max(k.size, 1)  # the member out (-2), else its part k[rel % ks]
            levels.append((np.where(out, sel, rel // ks), np.where(out, -2, k[rel % ks] if k.size else -2)))
        return (k0, r0, c0, b0), (ready, bits, cost, levels)

    def _finish(self, j: int, t: float, own: tuple, members: tuple, nu_j: float, floor: float, many: int
                ) -> tuple[float, list]:
        """Every own part against every members' combination ready before t, with the upload term."""
        k0, r0, c0, b0 = own
        ready, bits, cost, levels = members
        rate = float(self.rb[j])
        a0 = r0 < t
        a1 = np.flatnonzero(ready < t)
        k0, r0, c0, b0 = k0[a0], r0[a0], c0[a0], b0[a0]
        ready, bits, cost = ready[a1], bits[a1], cost[a1]
        start = np.maximum(r0[:, None], ready[None, :])
        u = b0[:, None] + bits[None, :]
        i0, i1 = np.nonzero((c0[:, None] + cost[None, :] < 0) & (u < rate * (t - start)))
        if i0.size == 0:
            return 0.0, []
        su, ss = u[i0, i1], start[i0, i1]
        val = self._lazy(j, c0[i0] + cost[i1] - floor * su, su, t - ss, nu_j, many)
        order = _least(val, many)
        if order.size == 0:
            return 0.0, []
        devs = [j] + [d for d, _ in self.into[j]]
        groups = []
        for at in order.tolist():
            chosen = [int(k0[i0[at]])] + _trace(levels, int(a1[i1[at]]))
            groups.append([(int(dv), kx) for dv, kx in zip(devs, chosen, strict=True) if kx != -2])
        return float(val[order[0]]), groups

    def _lazy(self, j: int, base: np.ndarray, u: np.ndarray, w: np.ndarray, nu_j: float, many: int) -> np.ndarray:
        """base + upload_lb(u, w) / scale where that may be among the `many` least negative values, +inf elsewhere.
        The upload term's lower bound (a Newton root per entry) is taken first on the LAZY entries least by a
        cheaper one, `upload_cheap`, then only where the cheap value is below the `many`-th least found: a group
        skipped has a real reduced cost >= its cheap value >= that, so the least stays <= every real one."""
        cheap = base + self.upload_cheap(j, u, nu_j) / self.scale
        val = np.full(base.size, np.inf)
        cand = np.flatnonzero(cheap < 0)
        if LAZY and cand.size > LAZY:
            first = cand[np.argpartition(cheap[cand], LAZY - 1)[:LAZY]]
            val[first] = base[first] + self.upload_lb(j, u[first], w[first], nu_j) / self.scale
            got = np.sort(val[first])
            cut = min(float(got[many - 1]), 0.0) if got.size >= many else 0.0
            cand = cand[(cheap[cand] < cut) & ~np.isfinite(val[cand])]
        val[cand] = base[cand] + self.upload_lb(j, u[cand], w[cand], nu_j) / self.scale
        return val

    def upload_cheap(self, j: int, u: np.ndarray, nu: float) -> np.ndarray:
        """A lower bound on the real upload term (min over b in [h_j(u / w), B_e] of p_j u / R_j(b) + nu b) for any
        w, without the least band's root: the larger of p_j u / R_j(B_e) and the chords of phi(u) = min over every
        b > 0 (concave in u, as a least of functions linear in u, and 0 at u = 0: its chords lie below it) through
        the table's certified lower values at CHORDS points from 0 to max u."""
        a, pw = float(self.p.snr_hz[j]), float(self.p.tx_power_w[j])
        grid = np.linspace(0.0, float(u.max()), CHORDS)
        phi, _ = concave_energy(pw * grid / a, np.full(grid.shape, nu * a))
        return np.maximum(np.interp(u, grid, phi), pw * u / float(self.rb[j]))

    def _price_union(self, j: int, t: float, sides: list, ready_all: np.ndarray, nu_j: float, many: int
                     ) -> tuple[float, list]:
        """relay_aggregates: per start threshold s and union Q of modules, each side's least cost among its parts
        ready by s within Q (a member's at most 0: it may stay out; j's own part is one, maybe empty), plus the
        upload of Q's bits in T - s (the union of the chosen parts lies within Q, and fewer bits never cost more);
        the upload term (>= 0) only where the parts' sum is negative and Q's bits can finish on the whole band."""
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
        rs, qs = np.nonzero((total < 0) & (self.qbits[None, :] < float(self.rb[j]) * (t - ready_all[:, None])))
        if rs.size == 0:
            return 0.0, []
        val = self._lazy(j, total[rs, qs], self.qbits[qs], t - ready_all[rs], nu_j, many)
        best = _least(val, many)
        if best.size == 0:
            return 0.0, []
        groups = []
        for arg in best.tolist():
            s_, qm = ready_all[rs[arg]], qs[arg]
            group = []
            for q, (dv, (k, ready, c)) in enumerate(zip([j] + [d for d, _ in self.into[j]], sides, strict=True)):
                ok = (ready <= s_) & np.where(k >= 0, self.sup[np.maximum(k, 0), qm], True)
                if not ok.any():
                    continue
                i = int(np.argmin(np.where(ok, c, np.inf)))
                if q == 0 or c[i] < 0:
                    group.append((int(dv), int(k[i])))
            if group not in groups:
                groups.append(group)
        return float(val[best[0]]), groups

    # ---- the exact column --------------------------------------------------------------------------------------
    def column(self, j: int, group: list[tuple[int, int]], t: float, nu: float, band: float | None = None
               ) -> tuple[float, np.ndarray, np.ndarray, float] | None:
        """(energy J, device rows, coverage [need], band Hz) of the group priced exactly; None: it cannot finish."""
        pa, p = self.parts, self.p
        energy, start = 0.0, 0.0
        cov = np.zeros(self.need.size)
        rows = []
        union = np.zeros(p.num_modules)
        u = 0.0
        rate = {i: r for i, r in self.into[j]}
        for dv, k in group:
            rows.append(self.row_of[dv])
            if k < 0:
                continue
            energy += pa.energy[k]
            cov += self.cov[k]
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
        return energy + up, np.array(rows), cov, b


def _least(val: np.ndarray, many: int) -> np.ndarray:
    """Indices of the `many` least negative entries of val, the least first."""
    neg = np.flatnonzero(val < 0)
    if neg.size > many:
        neg = neg[np.argpartition(val[neg], many - 1)[:many]]
    return neg[np.argsort(val[neg], kind="stable")]


def _trace(levels: list[tuple[np.ndarray, np.ndarray]], i: int) -> list[int]:
    """Each member's part (-2: out) of the members' combination i of `GroupPricing._combos`."""
    out = []
    for parent, part in reversed(levels):
        out.append(int(part[i]))
        i = int(parent[i])
    return out[::-1]


def upload_lb(a: float | np.ndarray, pw: float | np.ndarray, rb: float | np.ndarray, band: float, u: np.ndarray,
              w: np.ndarray, nu: float) -> np.ndarray:
    """`GroupPricing.upload_lb` elementwise, for uploaders of SNR a (Hz), power pw (W) and whole-band rate rb (bit/s),
    scalars or arrays like u (the same floats either way)."""
    a_, pw_, rb_ = (np.broadcast_to(np.asarray(x, dtype=float), u.shape) for x in (a, pw, rb))
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(w > 0, min_bandwidth(np.where(w > 0, u / np.where(w > 0, w, 1.0), 0.0), a_), np.inf)
    need_lo = need * (1 - 1e-9)
    phi, s_up = concave_energy(pw_ * u / a_, nu * a_)
    with np.errstate(invalid="ignore"):
        val = np.where(need_lo >= a_ * s_up, pw_ * w + nu * need_lo, phi)
    val = np.maximum(val, pw_ * u / rb_ + (nu * need_lo if nu > 0 else 0.0))
    val = np.where(need <= band, val, np.inf)
    return np.where(u > 0, val * (1 - 1e-9), 0.0)
