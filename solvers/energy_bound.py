"""Certified lower bound on min T + lambda E (lambda > 0) that prices the band (fixed power and frequency).

E_lb(T): no plan of latency <= T spends less energy. Per edge e and any band price nu >= 0, since
sum_j b_j <= B_e, E_up >= sum_j [p_j U_j / R_j(b_j) + nu b_j] - nu B_e. An uploader j sends U_j <= Umax_j bits (its
own eligible payload plus every D2D in-neighbour's) within its window t_j <= T, so U_j <= min(Umax_j, T R_j(b_j))
and, per bit, p_j / R_j(b_j) + nu b_j / U_j >= k_j(T, nu) = min_{0 < b <= B_e} p_j / R_j(b) + nu b / min(Umax_j,
T R_j(b)). Each bit of device i reaches the edge directly (k_i) or after a D2D hop to j (p^d2d_i / r_ij + k_j;
+ 0 with `relay_aggregates`, since the relay may hold that module already), so with c_i the cheaper route, a
module m on device i costs at least w_im = kappa n_i c_m f_i^2 + 8 s_m c_i, and
E_e >= min { sum w_im x_im : samples per module >= demand, 0 <= x <= 1 } - nu B_e (a fractional knapsack,
memory dropped). Every nu gives a valid bound; the best is searched per edge (the dual is concave in nu).

k_j: b -> p / R(b) + nu b / U is convex (1/R is convex) and b -> (p + nu b / T) / R(b) is quasiconvex (its
sublevel sets {alpha R(b) - nu b / T >= p} are convex), so their max is quasiconvex: a golden-section search on
ln b brackets a minimizer in [b_lo, b_hi], where k_j >= p / R(b_hi) + nu b_lo / min(Umax, T R(b_hi)) (each part
is monotone on the bracket); below the search range p / R(b) alone is larger. So the value is a lower bound,
whatever the number of steps.

E_lb is nonincreasing in T. Any plan has T >= T_0 (the latency bound of solvers/bounds.py); on a piece
[T_a, T_b] every plan costs >= T_a + lambda E_lb(T_b), and past the last point T_K >= T_K + lambda E_lb(inf).
The bound is the least piece; the least piece is split (geometric midpoint) until it is narrow or the budget
of evaluations is spent: any partition is valid, the splits only tighten it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock, now
from solvers.evaluate import LN2, uplink_rate
from solvers.instance import RoundProblem
from solvers.powerfreq_bound import compute_floor, upload_per_bit
from solvers.upload_table import GOLD, concave_energy, golden_bracket

SPAN = 30.0
"""The band search covers b in [B_e e^-SPAN, B_e]."""


def per_bit_cost(power: np.ndarray, a: np.ndarray, umax: np.ndarray, cap: np.ndarray, t: float, nu: np.ndarray,
                 steps: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower bound on k = min over 0 < b <= cap of power / R(b) + nu b / min(umax, t R(b)) in J per bit, an upper
    bound on its minimizer, an upper bound on k: the value there), elementwise (see the module doc: a bracket of a
    golden-section search on ln b, bounded from below on the bracket)."""
    def f(u: np.ndarray) -> np.ndarray:
        b = np.exp(u)
        r = uplink_rate(b, a)
        return power / r + nu * b / np.minimum(umax, t * r)

    lo, hi = golden_bracket(f, np.log(cap) - SPAN, np.log(cap) + 0.0 * nu, steps)
    b_lo, b_hi = np.exp(lo), np.exp(hi)
    r_hi = uplink_rate(b_hi, a)
    inside = power / r_hi + nu * b_lo / np.minimum(umax, t * r_hi)
    below = power / uplink_rate(cap * math.exp(-SPAN), a)
    return np.minimum(inside, below), b_hi, f(hi)


def unwindowed_cost(power: np.ndarray, a: np.ndarray, umax: np.ndarray, cap: np.ndarray,
                    nu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`per_bit_cost` at t = inf, from the certified table of solvers/upload_table.py instead of a search (one pass:
    at 10,000 devices the search's 24 steps were most of a price evaluation). g(b) = p U / R(b) + nu b is convex: if
    g'(cap) <= 0 its minimum on (0, cap] is g(cap) (up to the 1e-12 below); else the minimizer lies below cap and
    the minimum is the unconstrained phi(U) of `concave_energy` (a lower bound), its minimizer at most a s_up."""
    u = np.broadcast_to(umax, np.shape(power))
    r_cap = uplink_rate(cap, a)
    x = a / cap
    slope = (np.log1p(x) - x / (1.0 + x)) / LN2  # R'(cap)
    at_cap = nu <= power * u * slope / r_cap ** 2  # g'(cap) <= 0: the band cap binds
    g_cap = power / r_cap + nu * cap / u
    phi, s_up = concave_energy(power * u / a, nu * a)
    b_free = np.minimum(cap, a * s_up)  # holds the unconstrained minimizer (< cap when g'(cap) > 0)
    upper = power / uplink_rate(b_free, a) + nu * b_free / u
    low = np.where(at_cap, g_cap * (1 - 1e-12), np.maximum(phi / u, power / r_cap))
    return low, np.where(at_cap, cap, b_free), np.where(at_cap, g_cap, np.maximum(upper, low))


def _run_starts(key: np.ndarray) -> np.ndarray:
    """For a sorted array: the index of the first element equal to each (np.searchsorted(key, key), in one pass)."""
    change = np.ones(key.size, dtype=bool)
    change[1:] = key[1:] != key[:-1]
    return np.maximum.accumulate(np.where(change, np.arange(key.size), 0))


def knapsack(p: RoundProblem, dev: np.ndarray, mod: np.ndarray, w: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Per edge: sum over modules of min sum_i w_i x_i s.t. sum_i n_i x_i >= demand, 0 <= x <= 1 (sorted greedy)."""
    ne, nm = demand.shape
    key = p.device_edge[dev] * nm + mod
    ratio = w / p.samples[dev]
    # by key, then ratio (np.lexsort((ratio, key)) up to the order of equal ratios, which the value does not see):
    # a stable sort of 16-bit keys is a radix sort, 7x faster than lexsort on 45,000 columns
    order = np.argsort(ratio)
    small = key.astype(np.uint16) if ne * nm < 1 << 16 else key
    order = order[np.argsort(small[order], kind="stable")]
    key, w, n = key[order], w[order], p.samples[dev][order]
    cum = np.cumsum(n)
    first = _run_starts(key)
    before = cum - n - np.where(first > 0, cum[first - 1], 0.0)
    need = demand.ravel()[key]
    frac = np.clip((need - before) / n, 0.0, 1.0)
    with np.errstate(invalid="ignore"):
        cost = np.where(frac > 0, frac * w, 0.0)
    out = np.bincount(key, weights=cost, minlength=ne * nm)
    got = np.bincount(key, weights=n, minlength=ne * nm)
    out = np.where(got >= demand.ravel() * (1 - 1e-12), out, np.inf)  # not even coverable: no plan at all
    return out.reshape(ne, nm).sum(axis=1)


@dataclass(frozen=True)
class EnergyBound:
    """What E_lb(T) needs of a round, computed once: per device its power, SNR, band cap B_e and most bits Umax;
    the (device, module) columns with their compute energy and bits; the D2D hops."""

    problem: RoundProblem
    dev: np.ndarray
    mod: np.ndarray
    compute_j: np.ndarray
    bits: np.ndarray
    own: np.ndarray  # [N] most bits of a device's own modules, O_i
    umax: np.ndarray  # [N] most bits it may upload: its own and its D2D in-neighbours', Umax_i
    cap: np.ndarray
    nu_ref: np.ndarray  # [E] the scale of an edge's band price (J per Hz)
    demand: np.ndarray  # [E, M]
    cycles: np.ndarray  # per column: n_i c_m
    decisions: bool  # power and frequency are decisions (solvers/powerfreq_bound.py prices the bits)

    @classmethod
    def of(cls, p: RoundProblem) -> EnergyBound:
        dev, mod = np.nonzero(p.eligible & (p.samples[:, None] > 0))
        bits = 8.0 * p.module_bytes[mod]
        own = np.bincount(dev, weights=bits, minlength=p.num_devices)
        cap = p.edge_bandwidth_hz[p.device_edge]
        size = np.bincount(p.device_edge, minlength=p.num_edges)
        share = cap / np.maximum(size[p.device_edge], 1)
        per_hz = p.tx_power_w * np.maximum(own, 1.0) / (uplink_rate(share, p.snr_hz) * share)
        nu_ref = np.ones(p.num_edges)
        for e in np.flatnonzero(size):
            nu_ref[e] = float(np.median(per_hz[p.device_edge == e]))
        cycles = p.samples[dev] * p.module_cycles[mod]
        compute = p.kappa * cycles * p.freq_min[dev] ** 2
        umax = own.copy()
        if p.d2d_src.size:
            np.add.at(umax, p.d2d_dst, own[p.d2d_src])
        return cls(p, dev, mod, compute, bits, np.maximum(own, 1.0), np.maximum(umax, 1.0), cap, nu_ref,
                   p.coverage_demand(), cycles, p.has_power_frequency)

    def compute_at(self, t: float) -> np.ndarray:
        """Per column: least compute energy of training it within latency t (inf: it cannot finish by t)."""
        p = self.problem
        return compute_floor(p.kappa, self.cycles, p.freq_min[self.dev], p.freq_max[self.dev], t)

    def earliest(self) -> float:
        """Least latency at which E_lb is finite: every coverable (edge, module) needs devices whose own compute of
        it (n_i c_m / f_max) ends by T to cover its demand, so no plan is faster (below it the knapsack is inf,
        which `energy` would read as "no plan at all" and count as 0)."""
        p = self.problem
        if self.dev.size == 0:
            return 0.0
        ne, nm = self.demand.shape
        t = self.cycles / p.freq_max[self.dev]
        key = p.device_edge[self.dev] * nm + self.mod
        order = np.lexsort((t, key))
        key, t, n = key[order], t[order], p.samples[self.dev][order]
        cum = np.cumsum(n)
        first = np.searchsorted(key, key, side="left")
        got = cum - np.where(first > 0, cum[first - 1], 0.0)  # samples of the key's columns up to this one
        need = self.demand.ravel()[key] * (1 - 1e-12)
        done = got >= need
        reach = np.full(ne * nm, np.inf)
        np.minimum.at(reach, key[done], t[done])  # the first column (by time) at which the key is covered
        reach = np.where(self.demand.ravel() > 0, reach, 0.0)
        return float(np.max(reach[np.isfinite(reach)], initial=0.0))

    def _relayed(self, t: float, nu_dev: np.ndarray) -> np.ndarray:
        """[N] J per bit relay j spends at least on a relayed bit: p_j / R_j(b_bar), b_bar >= the band of any
        optimal upload of up to Umax_j bits by t (the larger of the unconstrained minimizer of p U / R(b) + nu b
        at U = Umax and the band the window needs, h(Umax / t); at most B_e).

        Valid although j's window starts at S_j > 0, not at 0 (so its band b may exceed b_bar): with
        g(b) = p U / R(b) + nu b, j's term is >= g(b*), b* = max(b0(U), h(U / (t - S_j))). If b* <= b_bar, the
        relayed bits cost >= p / R(b_bar) each and the own ones >= k_w (own <= (t - S_j) R(b*)). If b* > b_bar >= b0(U),
        g rises on [b_bar, b*], so g(b*) >= g(b_bar) >= own k_w + relayed p / R(b_bar), the own part because
        own <= Umax <= t R(b_bar) (the h(Umax / t) term). tests/test_solver_relay_bound.py checks it on late relays."""
        p = self.problem
        _, b0, _ = unwindowed_cost(p.tx_power_w, p.snr_hz, self.umax, self.cap, nu_dev)
        with np.errstate(divide="ignore", invalid="ignore"):
            need = min_bandwidth(self.umax / t, p.snr_hz) * (1 + 1e-9) if t > 0 else np.full(p.num_devices, np.inf)
        b_bar = np.minimum(self.cap, np.maximum(b0, need))
        return p.tx_power_w / uplink_rate(b_bar, p.snr_hz)

    def routes(self, t: float, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """([N] each device's least J per own bit at latency <= t and band prices nu [E], direct or via a D2D hop,
        under the two decompositions of an uploader's cost (module doc): (W) own bits with the window, relayed bits
        at the marginal energy; (C) no window, own and relayed bits at the vertices of the concave cost)."""
        p = self.problem
        nu_dev = nu[p.device_edge]
        if self.decisions:  # one per-bit price for every uploaded bit, own or relayed (solvers/powerfreq_bound.py)
            route = upload_per_bit(p.noise_w_per_hz / p.uplink_gain, t, nu_dev)
            if p.d2d_src.size:
                via = p.d2d_power_w[p.d2d_src] / p.d2d_rate_bps + (0.0 if p.relay_aggregates else route[p.d2d_dst])
                np.minimum.at(route, p.d2d_src, via)
            return route, route
        power, a = p.tx_power_w, p.snr_hz
        k_c, _, up_c = unwindowed_cost(power, a, self.own, self.cap, nu_dev)
        k_w = k_c if math.isinf(t) else per_bit_cost(power, a, self.own, self.cap, t, nu_dev)[0]
        out = []
        for own, relayed in ((k_w, None), (k_c, "vertex")):
            route = own.copy()
            if p.d2d_src.size:
                via = p.d2d_power_w[p.d2d_src] / p.d2d_rate_bps
                if not p.relay_aggregates:
                    extra = self._relayed(t, nu_dev) if relayed is None else self._vertex(nu_dev, up_c)
                    via = via + extra[p.d2d_dst]
                np.minimum.at(route, p.d2d_src, via)
            out.append(route)
        return out[0], out[1]

    def _vertex(self, nu_dev: np.ndarray, up_own: np.ndarray) -> np.ndarray:
        """[N] (C): with phi(U) = min_b p U / R(b) + nu b concave, phi(A + B) >= alpha A + beta B on the box
        A <= O, B <= Rin iff it holds at the vertices: alpha = phi(O) / O and beta = min(phi(Rin) / Rin,
        (phi(Umax) - phi(O)) / Rin), from lower bounds on phi(Rin), phi(Umax) and an upper bound on phi(O)."""
        p = self.problem
        rin = np.maximum(self.umax - self.own, 1.0)
        k_rin, _, _ = unwindowed_cost(p.tx_power_w, p.snr_hz, rin, self.cap, nu_dev)
        k_max, _, _ = unwindowed_cost(p.tx_power_w, p.snr_hz, self.umax, self.cap, nu_dev)
        secant = (self.umax * k_max - self.own * up_own) / rin
        return np.maximum(np.minimum(k_rin, secant), 0.0)

    def edge_energy(self, t: float, nu: np.ndarray) -> np.ndarray:
        """[E] lower bounds on each edge's energy of any plan of latency <= t, at band prices nu [E] (J per Hz):
        per edge the larger of the two decompositions' knapsacks."""
        p = self.problem
        w_route, c_route = self.routes(t, nu)
        compute = self.compute_at(t)
        vals = [knapsack(p, self.dev, self.mod, compute + self.bits * r[self.dev], self.demand)
                for r in ((w_route,) if w_route is c_route else (w_route, c_route))]
        return np.max(np.stack(vals), axis=0) - nu * p.edge_bandwidth_hz

    def prices(self, t: float, around: np.ndarray | None = None, steps: int = 10,
               clock: Clock | None = None) -> tuple[np.ndarray, np.ndarray]:
        """([E] E_lb per edge at latency <= t, [E] the band prices that gave it): golden section on ln nu per edge
        (the dual is concave in nu; any price is valid, nu = 0 too); `around` [E]: search only e^+-1.5 around these
        prices (those of a nearby latency), in `steps` // 2 steps; `clock`: no more steps once it has run out (the
        best price so far is as valid)."""
        ne = self.problem.num_edges
        best, arg = self.edge_energy(t, np.zeros(ne)), np.zeros(ne)
        lo, hi = np.log(self.nu_ref) - 12.0, np.log(self.nu_ref) + 6.0
        if around is not None:
            ok = around > 0
            lo = np.where(ok, np.log(np.where(ok, around, 1.0)) - 1.5, lo)
            hi = np.where(ok, np.log(np.where(ok, around, 1.0)) + 1.5, hi)
            steps //= 2
        c, d = hi - GOLD * (hi - lo), lo + GOLD * (hi - lo)
        fc, fd = self.edge_energy(t, np.exp(c)), self.edge_energy(t, np.exp(d))
        for _ in range(steps + 1):
            for u, v in ((c, fc), (d, fd)):
                better = v > best
                best, arg = np.where(better, v, best), np.where(better, np.exp(u), arg)
            if clock is not None and clock.expired():
                break
            left = fc >= fd  # maximizing: keep [lo, d]
            hi = np.where(left, d, hi)
            lo = np.where(left, lo, c)
            c, d = np.where(left, hi - GOLD * (hi - lo), d), np.where(left, c, lo + GOLD * (hi - lo))
            new = self.edge_energy(t, np.exp(np.where(left, c, d)))
            fc, fd = np.where(left, new, fd), np.where(left, fc, new)
        return best, arg

    def energy(self, t: float, around: np.ndarray | None = None, clock: Clock | None = None) -> float:
        """E_lb(t): no plan of latency <= t spends less (J); `around`, `clock`: as in `prices`."""
        best, _ = self.prices(t, around, clock=clock)
        return float(np.sum(best[np.isfinite(best)]))  # an edge no cover fits has no plan at all

    def priced_weights(self, t: float, steps: int = 4) -> np.ndarray:
        """[N, M] J of device i training and sending module m at latency t and the best band prices: weights for a
        cover (solvers.greedy.greedy_placement) that prices the band, the bound's own choice made integral. steps:
        of the price search (a heuristic's weights: 4 rather than the bound's 10, 0.2 CPU s less at 10,000 devices)."""
        p = self.problem
        _, nu = self.prices(t, steps=steps)
        route = np.maximum(*self.routes(t, nu))
        return (p.kappa * p.samples[:, None] * p.module_cycles[None, :] * p.freq_min[:, None] ** 2
                + 8.0 * p.module_bytes[None, :] * route[:, None])


class EdgeFloor(Protocol):
    """A stronger per-edge energy bound (solvers/subset_energy.py: the subset-column LP)."""

    def energy_edges(self, t: float, nu_ref: np.ndarray, floor: np.ndarray,
                     clock: Clock | None = None) -> np.ndarray: ...

    def tangent_energy(self, a: float, b: float) -> tuple[float, float] | None: ...


def tradeoff_lower_bound(problem: RoundProblem, t_lb: float, upper: float | None = None, budget: int = 20,
                         rtol: float = 0.002, clock: Clock | None = None, subset: EdgeFloor | None = None,
                         cap: bool = False, tangents_on: bool = False) -> float:
    """Certified lower bound on min T + lambda E given t_lb <= any plan's latency (see the module doc).
    upper: a known plan's objective (stops once the bound is within rtol of it); budget: evaluations of E_lb;
    clock: fewer price steps and no more splits once it has run out (every price and partition is valid);
    subset: per edge, E_lb(T) is the larger of the knapsack's and its bound (while the clock lasts); cap: the
    latencies searched end at upper - lambda E_lb(inf) (a plan of larger T costs at least `upper`: its piece
    [T_K, inf) is valid and no better than the known plan), so the first points and splits fall where a better
    plan can be; tangents_on: pieces lifted by the subset LP's tangents (`EdgeFloor.tangent_energy`, power and
    frequency as decisions) before they are split."""
    p = problem
    lam = p.lam
    eb = EnergyBound.of(p)
    t0 = max(t_lb, eb.earliest(), 1e-12)

    def energy(t: float, around: np.ndarray | None = None, search: Clock | None = None) -> tuple[float, np.ndarray]:
        best, nu = eb.prices(t, around, clock=clock if search is None else search)
        coverable = np.isfinite(best)  # an edge no cover fits has no plan at all
        if subset is not None and math.isfinite(t):
            best = subset.energy_edges(t, nu, best, clock)
        return float(np.sum(best[coverable])), nu

    began = now()
    # E_lb(t0)'s price search stops at 3/4 of the time left: the one more evaluation of the fewest steps (below) fits
    e0, nu0 = energy(t0, search=None if clock is None else clock.share(0.75))
    step = 0.01
    while not math.isfinite(e0):  # no plan finishes by t0 (e.g. the subset LP's band row): every latency exceeds it
        if step > 8:
            return t0 + lam * eb.energy(math.inf, clock=clock)
        e_next, nu_next = energy(t0 * (1 + step))
        if math.isfinite(e_next):
            e0, nu0 = e_next, nu_next  # only for the span below: the pieces start at t0
            break
        t0, step = t0 * (1 + step), 2 * step
    full = now() - began  # one evaluation with the whole price search
    if clock is not None and clock.left() < 4 * full:
        # little time left (at 10,000 devices x 8 modules the steps below ran 0.15 s past the round's 2 s): one
        # more evaluation, around nu0, at t_far = t0 + lam e0, and 0 for E_lb past it (its piece, t_far + 0, is
        # t0 + lam e0, no less than the first piece's t0 + lam E_lb(t_far)); then splits while the clock lasts
        e_inf = 0.0
        pts = [t0, t0 + lam * e0]
        vals = [e0, energy(pts[1], nu0)[0]]
    else:
        e_inf = eb.energy(math.inf, clock=clock)
        each = now() - began - full
        t_end = t0 + lam * max(e0 - e_inf, 0.0)
        if cap and upper is not None:
            t_end = min(t_end, upper - lam * e_inf)
        t_end = max(t_end, t0 * (1 + 1e-9))
        # its fewest steps: 3 points (at 10,000 devices 0.6 CPU s, 96 % of the unbounded bound, which takes 3 s),
        # also where the clock has too little left for 4 more evaluations
        late = clock is not None and clock.left() < 4 * each
        pts = list(np.geomspace(t0, t_end, 3 if late else 5))
        vals = [e0] + [energy(t, nu0)[0] for t in pts[1:]]

    tangents: dict[tuple[float, float], tuple[float, float] | None] = {}  # piece: (G(b), G(a)), see below

    def pieces() -> list[float]:
        """Per piece [pts[k], pts[k+1]] (the last to inf) the least T + lambda E on it: the least energy by T never
        rises with T, so each value holds at every earlier T; and where `tangents` has the piece (the subset LP
        with its columns' tangents, `tangent_energy`), T + lambda G(T) is concave on it: at least its value at an
        end."""
        low = np.maximum.accumulate(np.array(vals[1:] + [e_inf])[::-1])[::-1]
        out = [pts[k] + lam * low[k] for k in range(len(pts))]
        for k in range(len(pts) - 1):
            got = tangents.get((pts[k], pts[k + 1]))
            if got is not None:
                out[k] = max(out[k], min(pts[k + 1] + lam * got[0], pts[k] + lam * got[1]))
        return out

    tangent = getattr(subset, "tangent_energy", None) if tangents_on else None
    splits = 0
    last = 0.0  # seconds of the last split's evaluation: a split starts only if that much is left
    while splits < budget:
        if clock is not None and (clock.expired() or clock.left() < last):
            break
        now_ = pieces()
        k = int(np.argmin(now_))
        bound = now_[k]
        if upper is not None and bound >= upper * (1 - rtol):
            return bound
        if k == len(pts) - 1:
            return bound
        if tangent is not None and (pts[k], pts[k + 1]) not in tangents:  # one LP: often lifts the piece enough
            tangents[(pts[k], pts[k + 1])] = tangent(pts[k], pts[k + 1])
            continue
        if pts[k + 1] <= pts[k] * (1 + rtol):
            return bound
        mid = math.sqrt(pts[k] * pts[k + 1])
        pts.insert(k + 1, mid)
        began = now()
        vals.insert(k + 1, energy(mid, nu0)[0])
        last = now() - began
        splits += 1
    return float(min(pieces()))
