"""The subset-column energy bound of every edge at once (lambda > 0, large rounds): a Lagrangian dual, vectorized.

solvers/subset_energy.py solves one LP per edge, band price and latency; at 1,000 devices that is 0.3-0.5 CPU s an
edge, so within a 2 s round it reaches few edges. Here its coverage rows go into the objective instead: with
multipliers beta_em >= 0 (J per sample) and the band price nu_e >= 0 (J per Hz), every plan of latency <= T spends at
least, per edge e,

    L_e(beta, nu) = sum_m beta_em d_em - nu_e B_e
                    + sum_{i in e} min(0, min over device i's columns S that can finish by T of
                                         c_i(S) - n_i sum_{m in S} beta_em)

(weak duality: each device trains at most one subset S, reaching the edge directly or through one D2D hop; a
plan's coverage only adds nonnegative terms). Every (beta, nu) gives a valid bound, whatever the search found, and
each device's minimum is over its own columns, so the whole round is one vectorized pass (no LP, no per-edge call).

A column (device i, subset S within eligibility and memory) costs at least, at band price nu:
- compute kappa n_i sum_S c_m f_i^2, and it must finish: tau_S = n_i sum_S c_m / f_i, then either a direct upload
  (tau_S + P_S / R_i(B_e) <= T: the band is at most B_e) or a D2D hop (tau_S + P_S / r <= T on i's fastest link);
- direct: phi_i(P_S) = min over b <= B_e of p_i P_S / R_i(b) + nu b (solvers/energy_bound.py `unwindowed_cost`:
  the whole payload, so phi's concavity in P is seen);
- via a D2D neighbour j: the hop p^d2d_i P_S / r_ij plus P_S x beta_j, the least energy per relayed bit at j:
  phi_j(P + B) - phi_j(P) >= B (phi_j(O_j + Rin_j) - phi_j(O_j)) / Rin_j for every own payload P <= O_j and relayed
  B <= Rin_j (phi concave: its increments shrink as P and B grow), and >= B p_j / R_j(B_e) (the relay's band is at
  most B_e); 0 with `relay_aggregates` (the relay may hold that module already). The relay's own column pays its own
  upload; the cheaper route counts (each route's time is checked on the fastest link: a relaxation).
At unlimited latency this is no stronger than the knapsack of solvers/energy_bound.py on the scale instances (the
cheap relayed bits make every column's cost nearly additive); what it adds is each subset's compute and upload time:
near the latency bound many devices cannot train and send all their modules by T, which the knapsack checks per
module. What it lacks against the LP: the pair rows (a relay must upload, with its own column's class).

The search per latency: nu_e is the knapsack's best band price at T; beta starts at the better, per edge, of the
fractional knapsack's critical ratios at T (then L_e >= the knapsack's value: every column costs at least its
modules' knapsack weights) and the best beta of the last latency; then projected subgradient steps (Polyak steps
towards 5 % above the best value, halved after 3 steps without gain) while the clock lasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from solvers.clock import Clock, now
from solvers.energy_bound import EnergyBound, unwindowed_cost
from solvers.evaluate import uplink_rate
from solvers.instance import RoundProblem

MAX_COLUMNS = 4_000_000
"""Most (device, subset) columns of the round (2^k per device of k eligible modules); more: no bound (None)."""
ITERATIONS = 10
"""Subgradient steps per latency (each one pass over the columns, 1-3 ms at 1,000 devices; the multipliers carry
over from the last latency): on the three 1,000-device rounds of experiments/solver_scale_gap.py at lambda 0.5, 5,
15 and 40 steps gave the same certified gaps to 0.05 points (/tmp probe, CPU clock, load 7)."""


@dataclass
class SubsetDual:
    """The round's columns (device, subset) with their fixed parts, and per device its cheapest relayed bit."""

    p: RoundProblem
    dev: np.ndarray  # [K] device of each column, sorted
    bits: np.ndarray  # [K, M] its modules (0 / 1)
    pay: np.ndarray  # [K] payload bits
    comp: np.ndarray  # [K] compute energy (J)
    cycles: np.ndarray  # [K] n_i sum_S c_m
    fastest: np.ndarray  # [N] the fastest D2D link out of each device (bit/s; 0: none)
    first: np.ndarray  # [D] the first column of each device that has columns (np.minimum.reduceat)
    owner: np.ndarray  # [D] those devices
    relay_d2d: np.ndarray  # [N] min over out-links of the hop's J per bit (inf: no D2D link)
    links: tuple[np.ndarray, np.ndarray, np.ndarray]  # (src, dst, J per bit of the hop)
    eb: EnergyBound
    iterations: int = ITERATIONS
    beta: np.ndarray | None = None  # [E, M] the last latency's best multipliers
    spent: float = 0.0  # seconds of the last call's fixed part (costs, starting multipliers and their values)

    @classmethod
    def of(cls, p: RoundProblem, iterations: int = ITERATIONS) -> SubsetDual | None:
        """None where the round has power and frequency as decisions, more than MAX_COLUMNS columns or no demand."""
        m = p.num_modules
        if p.has_power_frequency or m > 16:
            return None
        elig = p.eligible & (p.samples[:, None] > 0)
        if float(np.sum(2.0 ** elig.sum(axis=1))) > MAX_COLUMNS:
            return None
        masks = np.arange(1, 1 << m)
        table = ((masks[:, None] >> np.arange(m)[None, :]) & 1).astype(np.int8)
        emask = elig.astype(np.int64) @ (1 << np.arange(m))
        mem = table @ p.module_memory_bytes
        dev_l, mask_l = [], []
        for lo in range(0, p.num_devices, 4096):  # [devices, masks] in slices: at most 4096 x 2^M booleans at once
            hi = min(lo + 4096, p.num_devices)
            ok = (((masks[None, :] & ~emask[lo:hi, None]) == 0)
                  & (mem[None, :] <= p.memory_bytes[lo:hi, None] * (1 + 1e-12)))
            d_, c_ = np.nonzero(ok)
            dev_l.append(d_ + lo)
            mask_l.append(c_)
        dev = np.concatenate(dev_l)
        if dev.size == 0:
            return None
        bits = table[np.concatenate(mask_l)]
        pay = 8.0 * (bits @ p.module_bytes)
        cycles = p.samples[dev] * (bits @ p.module_cycles)
        comp = p.kappa * cycles * p.cpu_hz[dev] ** 2
        fastest = np.zeros(p.num_devices)
        np.maximum.at(fastest, p.d2d_src, p.d2d_rate_bps)
        first = np.flatnonzero(np.concatenate([[True], dev[1:] != dev[:-1]]))
        hop = p.d2d_power_w[p.d2d_src] / p.d2d_rate_bps
        relay_d2d = np.full(p.num_devices, np.inf)
        np.minimum.at(relay_d2d, p.d2d_src, hop)
        return cls(p, dev, bits, pay, comp, cycles, fastest, first, dev[first], relay_d2d, (p.d2d_src, p.d2d_dst, hop),
                   EnergyBound.of(p), iterations)

    def via(self, eb: EnergyBound, nu_dev: np.ndarray) -> np.ndarray:
        """[N] J per bit of a device's cheapest D2D route: the hop plus the relay's least marginal upload price."""
        p = self.p
        src, dst, hop = self.links
        if src.size == 0:
            return np.full(p.num_devices, np.inf)
        if p.relay_aggregates:
            return self.relay_d2d
        rin = np.maximum(eb.umax - eb.own, 1.0)
        k_max, _, _ = unwindowed_cost(p.tx_power_w, p.snr_hz, eb.umax, eb.cap, nu_dev)
        _, _, up_own = unwindowed_cost(p.tx_power_w, p.snr_hz, eb.own, eb.cap, nu_dev)
        secant = (eb.umax * k_max - eb.own * up_own) / rin
        floor = p.tx_power_w / uplink_rate(eb.cap, p.snr_hz)
        price = np.maximum(secant, floor)
        out = np.full(p.num_devices, np.inf)
        np.minimum.at(out, src, hop + price[dst])
        return out

    def costs(self, eb: EnergyBound, nu: np.ndarray, t: float = math.inf) -> np.ndarray:
        """[K] each column's least energy + band charge at band prices nu [E] (its cheaper route) among the routes
        that can finish by t (inf: none can)."""
        p = self.p
        nu_dev = nu[p.device_edge]
        d = self.dev
        k, _, _ = unwindowed_cost(p.tx_power_w[d], p.snr_hz[d], self.pay, eb.cap[d], nu_dev[d])
        tau = self.cycles / p.cpu_hz[d]
        by = t * (1 + 1e-9)
        ok_direct = tau + self.pay / uplink_rate(eb.cap[d], p.snr_hz[d]) <= by
        fast = self.fastest[d]
        with np.errstate(divide="ignore", invalid="ignore"):
            ok_relay = (fast > 0) & (tau + np.where(fast > 0, self.pay / np.where(fast > 0, fast, 1.0), 0.0) <= by)
        per_bit = np.minimum(np.where(ok_direct, k, np.inf), np.where(ok_relay, self.via(eb, nu_dev)[d], np.inf))
        with np.errstate(invalid="ignore"):
            upload = np.where(self.pay > 0, self.pay * per_bit, 0.0)
        return np.where(ok_direct | ok_relay, self.comp + upload, np.inf)

    def value(self, cost: np.ndarray, beta: np.ndarray, demand: np.ndarray,
              nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """([E] L_e(beta, nu) of the module doc, [E, M] a supergradient in beta: demand less the chosen coverage)."""
        p = self.p
        e_col = p.device_edge[self.dev]
        n = p.samples[self.dev]
        reduced = cost - n * np.einsum("km,km->k", self.bits, beta[e_col], dtype=float)
        best = np.minimum.reduceat(reduced, self.first)
        take = best < 0
        own_edge = p.device_edge[self.owner]
        val = (np.sum(beta * demand, axis=1) - nu * p.edge_bandwidth_hz
               + np.bincount(own_edge, weights=np.where(take, best, 0.0), minlength=p.num_edges))
        hit = (reduced == np.repeat(best, np.diff(np.append(self.first, self.dev.size))))
        hit &= np.repeat(take, np.diff(np.append(self.first, self.dev.size)))
        cols = np.flatnonzero(hit)
        cols = cols[np.unique(self.dev[cols], return_index=True)[1]]  # one argmin per device
        got = np.zeros_like(demand)
        np.add.at(got, p.device_edge[self.dev[cols]], self.bits[cols] * n[cols, None])
        return val, demand - got

    def search(self, cost: np.ndarray, beta: np.ndarray, nu: np.ndarray, clock: Clock | None,
               iterations: int) -> tuple[np.ndarray, np.ndarray]:
        """([E] the best L_e found from beta, [E, M] the beta that gave it): projected subgradient steps (module
        doc) while the clock lasts."""
        demand = self.eb.demand
        best, grad = self.value(cost, beta, demand, nu)
        arg, val = beta.copy(), best.copy()
        theta = np.ones(self.p.num_edges)
        stall = np.zeros(self.p.num_edges, dtype=int)
        for _ in range(iterations):
            if clock is not None and clock.expired():
                break
            target = best + np.maximum(0.05 * np.abs(best), 1e-9)
            norm = np.sum(grad * grad, axis=1)
            with np.errstate(invalid="ignore"):
                step = np.where((norm > 0) & np.isfinite(val), theta * (target - val) / np.where(norm > 0, norm, 1.0),
                                0.0)
            beta = np.maximum(beta + step[:, None] * grad, 0.0)
            val, grad = self.value(cost, beta, demand, nu)
            better = val > best + 1e-12 * np.abs(best)
            arg = np.where(better[:, None], beta, arg)
            best = np.where(better, val, best)
            stall = np.where(better, 0, stall + 1)
            theta = np.where(stall >= 3, 0.5 * theta, theta)
            stall = np.where(stall >= 3, 0, stall)
        return best, arg

    def energy_edges(self, t: float, nu_ref: np.ndarray, floor: np.ndarray, clock: Clock | None = None) -> np.ndarray:
        """[E] per edge the larger of `floor` (another valid bound, the knapsack's) and the best L_e found at latency
        <= t and band prices nu_ref (the `EdgeFloor` of solvers/energy_bound.py); nothing once `clock` has run out."""
        out = np.array(floor, dtype=float)
        if clock is not None and clock.left() <= self.spent:  # not even the fixed part fits
            return out
        began = now()
        cost = self.costs(self.eb, nu_ref, t)
        start = knapsack_beta(self.eb, nu_ref, t)
        if self.beta is not None:  # the last latency's best multipliers, where they start higher
            mine, _ = self.value(cost, start, self.eb.demand, nu_ref)
            last, _ = self.value(cost, self.beta, self.eb.demand, nu_ref)
            start = np.where((last > mine)[:, None], self.beta, start)
        self.spent = now() - began
        best, self.beta = self.search(cost, start, nu_ref, clock, self.iterations)
        return np.where(np.isfinite(out), np.maximum(out, best), out)  # an edge no cover fits keeps inf


    def tangent_energy(self, a: float, b: float) -> tuple[float, float] | None:
        """No tangents in T here (`EdgeFloor`: the latency-energy bound splits its pieces instead)."""
        return None


def knapsack_beta(eb: EnergyBound, nu: np.ndarray, t: float) -> np.ndarray:
    """[E, M] the fractional knapsacks' critical ratios (J per sample) at band prices nu and latency t, with the
    (C) routes of EnergyBound.routes: with them L_e is at least that knapsack's value (each column costs at least its
    modules' weights there)."""
    p = eb.problem
    _, c_route = eb.routes(t, nu)
    w = eb.compute_at(t) + eb.bits * c_route[eb.dev]
    ne, nm = eb.demand.shape
    key = p.device_edge[eb.dev] * nm + eb.mod
    with np.errstate(invalid="ignore"):
        ratio = w / p.samples[eb.dev]
    order = np.lexsort((ratio, key))
    key_s, n, r_s = key[order], p.samples[eb.dev][order], ratio[order]
    cum = np.cumsum(n)
    start = np.searchsorted(key_s, key_s, side="left")
    before = cum - n - np.where(start > 0, cum[start - 1], 0.0)
    taken = (before < eb.demand.ravel()[key_s]) & np.isfinite(r_s)
    beta = np.zeros(ne * nm)
    np.maximum.at(beta, key_s[taken], r_s[taken])
    return beta.reshape(ne, nm)
