"""The subset-column LP priced with energy: a certified lower bound on E_lb(T), the least energy of any plan of latency
<= T, that sees each device's whole payload (lambda > 0; fixed power and frequency, or both as decisions).

Columns, per edge: (device i, module subset S within its eligibility and memory), and for every device a D2D link
of the edge enters an empty column at cost 0 (a relay may train nothing and upload only what it relays; without it
the pair rows shut such plans out, and the LP claimed no plan finishes by T). Rows: at most one column per
device, samples per module >= demand (coverage), 0 <= x <= 1. At a band price nu >= 0 (J per Hz) the band row
sum_j b_j <= B_e is dualized: E_e >= LP(nu) - nu B_e for every nu, where a column costs at least what its device's
work costs (compute + D2D + its share of an upload + nu x its share of the band). The shares follow from one of two
decompositions of an uploader j's term g_j(b_j) = p_j U_j / R_j(b_j) + nu b_j (U_j = own bits + relayed bits, start
S_j >= every part's ready time):

(W) windowed: g_j(b_j) >= phi_T(own) + p_j / R_j(B_e) x relayed bits, with phi_T(P) = min over b >= h(P / (T - tau))
    of p P / R(b) + nu b (b_j >= the own part's least band; b_j <= B_e, so every relayed bit costs at least the
    energy per bit at the whole band: p U / R(b) splits into own and relayed bits, each >= its own part);
(C) concave: g_j(b_j) >= phi_B(U_j) >= phi_B(own) + s x relayed bits, phi_B(U) = min over b <= B_e of
    p U / R(b) + nu b concave (a minimum of functions linear in U), s the secant of phi_B from the relay's own
    payload over the most bits it can relay (solvers/relay_price.py: each route exists once per class of the
    relay's own column, its pair row against the relay's columns of that class), and at least p_j / R_j(B_e).

Both are valid, so every convex combination theta (W) + (1 - theta) (C) is, and each gives a valid LP. A relayed
column also pays its D2D hop (p^d2d P / r) and must arrive in time: tau + P / r < T and the relay's least band
for it h_j(P / (T - arrival)) <= B_e; with `relay_aggregates` a relayed module may be in the relay's union
already, so relayed bits pay no upload. Memory is kept per column; columns that cannot finish by T are dropped.

phi(P) and its minimizer come from the certified table of solvers/upload_table.py; phi_T(P) = p w + nu h(P / w)
(w = T - tau, the upload fills the window) when h(P / w) is at least the unconstrained minimizer, else phi(P).
The LP itself (rows, covers, union rows, warm re-solves) is solvers/route_lp.py.

Power and frequency as decisions: a column that computes C = n_i sum_S c_m cycles and uploads P bits, compute and
upload sharing T, spends at least min over the compute time tau of kappa C max(f_min, C / tau)^2 + P k(T - tau, nu)
(solvers/powerfreq_column.py: certified by the sign of its slope along the optimal spectral efficiency). A relayed
column shares T - its hop's time, its bits at the relay's per-bit price k_j. The band price is searched by the sign
of the LP's supergradient (solvers/powerfreq_price.py `price_by_slope`), and its tangents in T lift the latency
search's pieces (`tangent_energy`).

The LP value is valid at any nu and theta; both are searched per edge (the value is concave in each), a few LPs
each, within the round's clock (solvers/clock.py); edges it does not reach keep the knapsack bound
(solvers/energy_bound.py), which the round bound takes the max with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from solvers import relay_levels, relay_price
from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock
from solvers.evaluate import uplink_rate
from solvers.instance import RoundProblem
from solvers.powerfreq_column import column_energy
from solvers.powerfreq_price import price_by_slope, tangent_energy
from solvers.relay_price import at_band, level_chord, payload_classes, relayed_price
from solvers.route_lp import RouteLP
from solvers.subsets import trainable_subsets
from solvers.upload_table import GOLD, concave_energy

MAX_COLUMNS = 200_000
"""Most (device, subset) columns of one edge (2^M per device); an edge with more keeps the knapsack bound."""


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
    lcls: np.ndarray  # [L] the class of the relay's own column it pairs with (0: the relay trains nothing)
    ltop: np.ndarray  # [L] that class's largest own payload at the relay (bits; solvers/relay_price.py)
    lmin: np.ndarray  # [L] its least own payload
    llead: np.ndarray  # [L] its least R_j(B_e) tau + own payload (what the relay's own column uses of its upload)
    own: np.ndarray  # [N] most own bits O_j (its largest column's payload)
    rin: np.ndarray  # [N] most relayed bits Rin_j (the in-neighbours' O; a route of P bits from i: Rin_j - O_i + P)
    lp: RouteLP
    union: bool = False  # relay_aggregates: uploads in the union rows of `lp` (each uploader >= each member alone)
    band_row: bool = False  # `lp` has the row: the columns' least bands alone sum to at most B_e (`bands`)
    band_at: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [K + L] bands at the last decision costs
    slope_at: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [K + L] there: -d cost / dT, from below
    cost_at: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [K + L] the costs of the last `value`
    # load levels (solvers/relay_levels.py; none: empty): per column its level (0: the column itself) and
    # level ends, per route its relay's level ends
    clvl: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cends: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [K, 2]
    ctop: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [K] its class's largest payload at its device
    lends: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [L, 2]
    ccls: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [K] class as a relay (`lp`'s)

    @classmethod
    def of(cls, p: RoundProblem, e: int, demand: np.ndarray, covers: bool = False,
           union: bool = False, band_row: bool = False, classes: int | None = None,
           levels: int = 1, lp: bool = True) -> EdgeEnergy | None:
        """The edge's columns; None where it has more than MAX_COLUMNS or no demand (covers: the LP gets each
        module's minimal covers; union, with relay_aggregates: each uploader's upload at least each member's alone,
        `RouteLP`; classes: payload classes of a relay's own columns, default relay_price.RELAY_CLASSES; levels:
        load levels per relay, solvers/relay_levels.py, where relayed bits pay the relay's upload; lp=False: no
        `RouteLP` (`lp` is then None: solvers/pair_dual.py prices the columns from solvers/pair_rows.py))."""
        m = p.num_modules
        members = p.edge_devices(e)
        if members.size == 0 or not np.any(demand > 0) or m > 20:
            return None
        elig_bits = (p.eligible[members] & (p.samples[members, None] > 0))
        if float(np.sum(2.0 ** elig_bits.sum(axis=1))) > MAX_COLUMNS:
            return None
        li, _, bits = trainable_subsets(p, members)
        on = np.flatnonzero(p.device_edge[p.d2d_src] == e)
        hubs = np.unique(p.d2d_dst[on])  # a relay may train nothing: its empty column (cost 0) opens its pair rows
        dev = np.concatenate([members[li], hubs])
        mbits = np.concatenate([bits, np.zeros((hubs.size, m), dtype=bits.dtype)])
        pay = 8.0 * (mbits @ p.module_bytes)
        cycles = p.samples[dev] * (mbits @ p.module_cycles)
        split = not p.relay_aggregates and not p.has_power_frequency  # else relayed bits are priced per bit
        classes = relay_price.RELAY_CLASSES if classes is None else classes
        ccls = payload_classes(dev, pay, hubs, classes if split else 1)
        band = float(p.edge_bandwidth_hz[e])
        own = np.zeros(p.num_devices)  # each device's largest column payload
        np.maximum.at(own, dev, pay)
        extra: dict[str, np.ndarray] = {}
        send = None
        if levels > 1 and split and on.size:  # copies of the relays' columns per load level (solvers/relay_levels.py)
            bp = relay_levels.breakpoints(own, p.d2d_src[on], p.d2d_dst[on], levels)
            take, ccls, clvl, ctop = relay_levels.expand(dev, pay, ccls, bp, hubs, levels)
            dev, mbits, pay, cycles = dev[take], mbits[take], pay[take], cycles[take]
            d_ = dev[clvl > 0]
            cends = np.zeros((dev.size, 2))
            cends[clvl > 0] = np.stack([bp[d_, clvl[clvl > 0]], bp[d_, clvl[clvl > 0] + 1]], axis=1)
            extra = {"clvl": clvl, "cends": cends, "ctop": ctop}
            send = clvl == 0  # a sender's own columns, not the copies
        rb = uplink_rate(np.full(p.num_devices, band), p.snr_hz)
        lead = rb[dev] * cycles / p.cpu_hz[dev] + pay
        lcol_, ldst_, lrate, lcls_, ltop, lmin, llead = routes(dev, mbits, pay, ccls, lead, p.d2d_src[on],
                                                               p.d2d_dst[on], p.d2d_rate_bps[on], send)
        if extra:
            first, length = runs(ldst_, lcls_)  # routes come in runs of one (link, class): a relay and level
            d_, lv = ldst_[first], lcls_[first] % levels
            extra["lends"] = np.repeat(np.stack([bp[d_, lv], bp[d_, lv + 1]], axis=1), length, axis=0)
        agg = p.relay_aggregates and not p.has_power_frequency  # union rows price uploads at fixed power
        rin = np.zeros(p.num_devices)
        if on.size:
            np.add.at(rin, p.d2d_dst[on], own[p.d2d_src[on]])
        return cls(p, e, dev, mbits, pay, cycles, lcol_, ldst_, lrate, lcls_, ltop, lmin, llead, own, rin,
                   RouteLP(dev, mbits, p.samples, demand, lcol_, ldst_, covers, union and agg, lcls_, ccls,
                           band_row) if lp else cast(RouteLP, None), union and agg, band_row, ccls=ccls, **extra)

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
        need = window_band(pay, w, a, t)
        if theta != 0:
            need_lo = need * (1 - 1e-9)
            with np.errstate(invalid="ignore"):
                windowed = np.where(need_lo >= a * s_up, pw * w + nu * need_lo, phi)
        phi = np.maximum(phi, at_band(pay, pw, a, nu, band, uplink_rate(np.full(dev.size, band), a)))  # b <= B_e
        direct = phi if theta == 0 else windowed if theta == 1 else theta * windowed + (1 - theta) * phi
        if self.union:  # the upload is the uploader's union variable's (`members`)
            direct = np.zeros(dev.size)
        direct = np.where((w > 0) & (need <= band), direct, np.inf)
        best = np.where(self.empty, 0.0, direct)
        if self.clvl.size and np.any(self.clvl > 0):  # a relay's column at load level >= 1: its chord's intercept
            up = self.clvl > 0
            run, length = runs(self.cends[up, 0], self.cends[up, 1], self.ctop[up], pw[up], a[up])  # one chord a run
            at = np.flatnonzero(up)[run]
            _, icpt = level_chord(self.cends[at, 0], self.cends[at, 1], self.ctop[at], pw[at], a[at], nu, band)
            best[up] = best[up] + (1 - theta) * np.repeat(icpt, length)
        if self.lcol.size:
            c, j, r = self.lcol, self.ldst, self.lrate
            pay_c, dev_c = pay[c], dev[c]  # each route's bits and sender (gathered once)
            arrive = tau[c] + pay_c / r
            wj = t - arrive
            need_j = window_band(pay_c, wj, p.snr_hz[j], t)
            hop = p.d2d_power_w[dev_c] * pay_c / r
            if not p.relay_aggregates:  # a relayed bit: the secant of its relay's upload from its class (relay_price)
                relays = j[runs(j)[0]]  # the rate at the whole band once per relay (the same values)
                rate = np.zeros(p.num_devices)
                rate[relays] = uplink_rate(np.full(relays.size, band), p.snr_hz[relays])
                rb = rate[j]
                pw_j, a_j = p.tx_power_w[j], p.snr_hz[j]
                floor = pw_j / rb
                room = self.rin[j] - self.own[dev_c] + pay_c
                if math.isfinite(t):  # by t after its arrival and after the relay's own column
                    room = np.minimum(np.minimum(room, rb * (t - arrive) - self.lmin), rb * t - self.llead)
                if self.lends.shape[0]:  # the chord of the route's load level (solvers/relay_levels.py)
                    lo, hi = self.lends[:, 0], self.lends[:, 1]
                    fits = (pay_c <= hi * (1 + 1e-9)) & (room >= np.maximum(pay_c, lo) * (1 - 1e-9))
                    price = np.full(c.size, np.inf)
                    # level 0: the secant over its own room too (intercept 0); where the room and the bits are
                    # within the level, the secant over the whole level, one a run of equal (level, top, relay)
                    level0 = lo <= 0
                    whole = np.flatnonzero(level0 & (room >= hi) & (pay_c <= hi))
                    if whole.size:
                        run, length = runs(hi[whole], self.ltop[whole], pw_j[whole], a_j[whole])
                        at = whole[run]
                        price[whole] = np.repeat(relayed_price(hi[at], self.ltop[at], hi[at], pw_j[at], a_j[at], nu,
                                                               band), length)
                    z = np.flatnonzero(level0 & ((room < hi) | (pay_c > hi)))
                    if z.size:
                        price[z] = relayed_price(pay_c[z], self.ltop[z], np.minimum(hi[z], room[z]), pw_j[z], a_j[z],
                                                 nu, band)
                    u = np.flatnonzero(lo > 0)  # levels >= 1: one chord a run of equal (level, top, relay)
                    run, length = runs(lo[u], hi[u], self.ltop[u], pw_j[u], a_j[u])
                    at = u[run]
                    slope, _ = level_chord(lo[at], hi[at], self.ltop[at], pw_j[at], a_j[at], nu, band)
                    price[u] = np.repeat(slope, length)
                    price = np.where(fits, price, np.inf)
                else:
                    price = relayed_price(pay_c, self.ltop, room, pw_j, a_j, nu, band)
                ok = np.isfinite(price)
                hop = hop + np.where(ok, pay_c * (theta * floor + (1 - theta) * np.where(ok, price, 0.0)), np.inf)
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

    def _costs_decisions(self, t: float, nu: float) -> np.ndarray:
        """[K + L] power and frequency as decisions: each column's compute and upload sharing its window
        (solvers/powerfreq_column.py); a relayed column computes, hops, and its bits go up at the relay's price
        (nothing with `relay_aggregates`: the relay may hold the module already). Keeps each column's band at its
        price in `self.band_at` (the band price search's supergradient)."""
        p, dev, pay = self.p, self.dev, self.pay
        c0 = p.noise_w_per_hz / p.uplink_gain
        fmin, fmax = p.freq_min[dev], p.freq_max[dev]
        c, j, r = self.lcol, self.ldst, self.lrate
        hop = pay[c] / r
        up_bits = np.zeros(c.size) if p.relay_aggregates else pay[c]
        cat = np.concatenate  # direct columns, then routes via a hop: one call
        out, self.band_at, slope = column_energy(p.kappa, cat([self.cycles, self.cycles[c]]), cat([fmin, fmin[c]]),
                                                 cat([fmax, fmax[c]]), cat([c0[dev], c0[j]]), cat([pay, up_bits]),
                                                 cat([np.full(dev.size, t), t - hop]), nu)
        self.slope_at = slope
        self.slope_at[:dev.size][self.empty] = 0.0
        return out + cat([np.zeros(dev.size), p.d2d_power_w[dev[c]] * hop])

    def bands(self, t: float) -> np.ndarray:
        """[K + L] each column's least band alone at latency t in units of B_e: its payload by t from its ready time
        at the uploader's SNR (at p_max and f_max where power and frequency are decisions). An uploader's band is at
        least the sum of its parts' (R^-1 convex with R^-1(0) = 0: superadditive; it starts after every part is
        ready), and the uploaders' bands sum to at most B_e, so every plan of latency <= t meets the row.
        With relay_aggregates a relayed part may add nothing to its relay's union, so the parts do not add up: the
        LP's union rows take each uploader's band as at least each member's alone, else relayed parts count 0."""
        p, dev, pay = self.p, self.dev, self.pay
        if p.has_power_frequency:
            a = p.power_max * p.uplink_gain / p.noise_w_per_hz
            tau = self.cycles / p.freq_max[dev]
        else:
            a, tau = p.snr_hz, self.cycles / p.cpu_hz[dev]
        up = np.concatenate([dev, self.ldst])
        ready = np.concatenate([tau, tau[self.lcol] + pay[self.lcol] / self.lrate])
        bits = np.concatenate([pay, pay[self.lcol]])
        w = t - ready
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(w > 0, min_bandwidth(np.where(w > 0, bits / np.where(w > 0, w, 1.0), 0.0), a[up]), np.inf)
        need = need * (1 - 1e-9) / float(p.edge_bandwidth_hz[self.edge])
        if p.relay_aggregates and not self.union:  # with union rows: y_j >= each member's band alone (`RouteLP`)
            need[dev.size:] = 0.0
        return np.where(bits <= 0, 0.0, need)

    def value(self, t: float, nu: float, theta: float) -> float:
        """A lower bound on the edge's energy of plans of latency <= t (J): LP(nu, theta) - nu B_e; inf: none
        finishes by t; -inf: the LP did not solve (no information)."""
        cost = self.cost_at = self.costs(t, nu, theta)
        status, val = self.lp.solve(cost, self.members(t, nu) if self.union else None,
                                    self.bands(t) if self.band_row else None)
        if status == "infeasible":
            return math.inf
        if status != "optimal":
            return -math.inf
        return val * (1 - 1e-7) - abs(val) * 0.0 - nu * float(self.p.edge_bandwidth_hz[self.edge])


def window_band(bits: np.ndarray, w: np.ndarray, a: np.ndarray, t: float) -> np.ndarray:
    """The least band that sends `bits` within the window w (inf where w <= 0) at SNR a: 0 everywhere at t = inf
    (no bits by a positive window), without the work."""
    if t == math.inf:
        return np.where(w > 0, 0.0, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w > 0, min_bandwidth(np.where(w > 0, bits / np.where(w > 0, w, 1.0), 0.0), a), np.inf)


def runs(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first position, length) of each run of consecutive equal entries of the arrays `keys` (same length)."""
    n = keys[0].size
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    first = np.flatnonzero(change)
    return first, np.diff(np.append(first, n))


def ragged(size: np.ndarray) -> np.ndarray:
    """0, 1, ..., size[0] - 1, 0, 1, ..., size[1] - 1, ...: the position within each block."""
    return np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)


def routes(dev: np.ndarray, mbits: np.ndarray, pay: np.ndarray, ccls: np.ndarray, lead: np.ndarray, src: np.ndarray,
           dst: np.ndarray, rate: np.ndarray, send: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(lcol, ldst, lrate, lcls, ltop, lmin, llead) of `EdgeEnergy`: per link (src -> dst, in order), per class of
    the relay's own columns (ascending), the sender's non-empty columns (ascending), with the class's largest and
    least payload and least lead (send: the columns that may send, default all). Vectorized: a 100-device edge has
    300 links."""
    nonempty = np.flatnonzero(mbits.any(axis=1) & (True if send is None else send))
    sending = nonempty[np.argsort(dev[nonempty], kind="stable")]
    lo, hi = np.searchsorted(dev[sending], src), np.searchsorted(dev[sending], src, side="right")
    ncls = int(ccls.max(initial=0)) + 1
    keys, inv = np.unique(dev.astype(np.int64) * ncls + ccls, return_inverse=True)
    top, least, first = np.full(keys.size, -np.inf), np.full(keys.size, np.inf), np.full(keys.size, np.inf)
    np.maximum.at(top, inv, pay)
    np.minimum.at(least, inv, pay)
    np.minimum.at(first, inv, lead)
    a, b = np.searchsorted(keys, dst.astype(np.int64) * ncls), np.searchsorted(keys, (dst.astype(np.int64) + 1) * ncls)
    link = np.repeat(np.arange(src.size), b - a)  # per (link, class of its relay)
    q = np.repeat(a, b - a) + ragged(b - a)
    size = (hi - lo)[link]
    lcol = sending[np.repeat(lo[link], size) + ragged(size)].astype(np.int64)

    def each(v: np.ndarray) -> np.ndarray:  # a (link, class)'s value on each of its routes
        return np.repeat(v, size)

    return (lcol, each(dst[link].astype(np.int64)), each(rate[link].astype(float)), each(keys[q] % ncls),
            each(top[q]), each(least[q]), each(first[q]))


class SubsetEnergy:
    """E_lb per edge by the subset-column LP, searched over the band price nu (golden section on ln nu around a
    reference price) for each decomposition theta in `thetas` (default (C) alone: on the scale study's 100-device
    edges it was above (W) and the mixtures at every latency tried); edges are built lazily, in the clock."""

    def __init__(self, p: RoundProblem, steps: int = 6, thetas: tuple[float, ...] = (0.0,),
                 covers: bool = False, union: bool = False, band_row: bool = False) -> None:
        self.p = p
        self.covers = covers
        self.union = union
        self.band_row = band_row
        self.steps = steps
        self.thetas = (0.0,) if p.has_power_frequency else thetas
        self.demand = p.coverage_demand()
        self.edges: dict[int, EdgeEnergy | None] = {}
        self.nu: dict[int, float] = {}  # the best price found per edge (the next latency starts there)
        self.nu_at: dict[int, dict[float, float]] = {}  # power / frequency: per edge, latency: its best price
        self.solutions: dict[int, dict[float, tuple[float, np.ndarray]]] = {}  # per edge, latency: (value, columns)
        # power / frequency: per edge, latency: (best price, its column costs, their slopes -dc/dT, its value)
        self.tangents: dict[int, dict[float, tuple[float, np.ndarray, np.ndarray, float]]] = {}
        self.at: dict[float, tuple[np.ndarray, np.ndarray]] = {}  # latency: (per edge E_lb, coverable by the floor)

    def edge(self, e: int) -> EdgeEnergy | None:
        if e not in self.edges:
            self.edges[e] = EdgeEnergy.of(self.p, e, self.demand[e], self.covers, self.union, self.band_row)
        return self.edges[e]

    def edge_value(self, e: int, t: float, nu_ref: float, clock: Clock | None = None, scale: float = 0.0) -> float:
        """Best LP(nu, theta) - nu B_e found for edge e at latency <= t (-inf: no LP ran). scale: where nu_ref is 0
        (the knapsack priced no band), a price of the edge's scale to search around besides nu = 0."""
        ee = self.edge(e)
        if ee is None:
            return -math.inf
        if self.p.has_power_frequency:
            return price_by_slope(self, ee, e, t, self.nu.get(e, nu_ref), clock)
        thetas = self.thetas
        start = self.nu.get(e, nu_ref if nu_ref > 0 else scale)
        best, arg = -math.inf, start
        if e not in self.nu and nu_ref <= 0 < scale:  # nu = 0 is valid too (what was searched before)
            v = ee.value(t, 0.0, thetas[0])
            if v == math.inf:
                return math.inf
            best, arg = v, 0.0
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
            # no knapsack price (with relay_aggregates its relayed parts may use no band): search around the energy
            # floor's worth of the whole band, floor / B_e (J per Hz); on 8-device aggregating edges the LP at the
            # plan's latency went 0.36 -> 0.83 of the plan's energy (experiments/results/solver_model/s20/NOTES.md).
            # Not with power and frequency as decisions: there the extra LPs cost its clocked bound more than they
            # gave (median certified gap 57.0 -> 59.3 %, s20/ab_nu_scale_powerfreq.json)
            band = float(self.p.edge_bandwidth_hz[e])
            scale = (float(floor[e]) / band if math.isfinite(floor[e]) and floor[e] > 0 and band > 0
                     and not self.p.has_power_frequency else 0.0)
            out[e] = max(out[e], self.edge_value(int(e), t, float(nu_ref[e]), clock, scale))
        self.at[t] = (out.copy(), np.asarray(floor, dtype=float) < math.inf)  # floor inf: no cover fits
        return out

    def tangent_energy(self, a: float, b: float) -> tuple[float, float] | None:
        """(G(b), G(a)): the subset LP's tangents in the latency over [a, b] (solvers/powerfreq_price.py)."""
        return tangent_energy(self, a, b)
