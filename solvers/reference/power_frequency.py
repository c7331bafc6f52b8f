"""Exact reference with uplink power and CPU frequency as decisions (one-hop relays, any lambda): every whole-round
discrete choice, each solved by nested one-dimensional convex searches (the math: solvers/reference/__init__.py).
Vectorized over all choices at once; for a handful of devices (it enumerates)."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

from solvers.edgebatch import EdgeView
from solvers.errors import TooLargeError
from solvers.evaluate import LN2, evaluate
from solvers.exact import edge_placements, relay_maps
from solvers.instance import RoundProblem
from solvers.plan import RoundPlan

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def log_k(x: np.ndarray) -> np.ndarray:
    """ln K(x), K(x) = 1 + e^x (x - 1) = sum_{n >= 2} x^n (n - 1) / n! (series below 0.01, asymptotic above 30)."""
    x = np.asarray(x, dtype=float)
    xs = np.minimum(x, 0.01)
    series = xs * xs * (1 / 2 + xs * (1 / 3 + xs * (1 / 8 + xs * (1 / 30 + xs / 144))))
    xm = np.clip(x, 0.01, 30.0)
    mid = 1.0 + np.exp(xm) * (xm - 1.0)
    xb = np.maximum(x, 30.0)
    big = xb + np.log(xb - 1.0 + np.exp(-xb))
    with np.errstate(divide="ignore"):
        return np.where(x < 0.01, np.log(series), np.where(x <= 30.0, np.log(mid), big))


def k_inverse(v: np.ndarray, iters: int = 40) -> np.ndarray:
    """x > 0 with K(x) = v > 0: Newton on u = ln x from the right of the root (K(x) >= x^2 / 2, and K(ln v) >= v
    once v >= e^2), where ln K(e^u) is increasing and convex, so the iterates decrease monotonically to the root."""
    lv = np.log(np.asarray(v, dtype=float))
    u = 0.5 * (lv + math.log(2.0))
    with np.errstate(invalid="ignore"):
        u = np.where(lv >= 2.0, np.minimum(u, np.log(np.maximum(lv, 1e-300))), u)
    for _ in range(iters):
        x = np.exp(u)
        g = log_k(x) - lv
        slope = np.exp(2 * u + x - log_k(x))  # d ln K / d u = x^2 e^x / K
        step = g / slope
        u = u - step
        if np.all(np.abs(step) < 1e-14):
            break
    return np.exp(u)


def least_band(k: np.ndarray, t: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Least band b with b ln(1 + a / b) >= k / t (send k / ln2 bits in t at SNR-band a): with y = a / b,
    ln(1 + y) / y = k / (a t) =: c, so y = -W_-1(-c e^-c) / c - 1 (inf where c >= 1, 0 where k = 0)."""
    from scipy.special import lambertw

    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(t > 0, k / (a * t), np.inf)
    ok = (c > 0) & (c < 1)
    cc = np.where(ok, c, 0.5)
    y = -np.real(lambertw(-cc * np.exp(-cc), -1)) / cc - 1.0
    b = a / np.where(ok, y, 1.0)
    return np.where(k <= 0, 0.0, np.where(ok, b, np.inf))


@dataclass(frozen=True)
class Batch:
    """Uploader groups of C whole-round choices (flat over all choices) and their members."""

    choice: np.ndarray  # [G] choice of each group
    device: np.ndarray  # [G] its uploader
    pair: np.ndarray  # [G] choice * E + edge
    k: np.ndarray  # [G] U ln 2
    n0g: np.ndarray  # [G] N0 / g
    a_max: np.ndarray  # [G] p_max g / N0
    s_min: np.ndarray  # [G] earliest start (every member at f_max)
    s_cap: np.ndarray  # [G] latest useful start (every member at f_min)
    member_group: np.ndarray  # [Mm]
    member: np.ndarray  # [Mm] device
    cycles: np.ndarray
    delay: np.ndarray
    tau_min: np.ndarray
    tau_max: np.ndarray
    kappa: float
    fixed: np.ndarray  # [C] D2D energy and the compute of groups that upload nothing (at f_min)

    def compute_energy(self, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """([G] compute energy per group, [Mm] compute time per member) when each group starts at `start`."""
        tau = np.clip(start[self.member_group] - self.delay, self.tau_min, self.tau_max)
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(self.cycles > 0, self.kappa * self.cycles ** 3 / tau ** 2, 0.0)
        return np.bincount(self.member_group, weights=e, minlength=self.k.size), tau


def _batch(p: RoundProblem, choices: list[tuple[np.ndarray, np.ndarray]]) -> Batch:
    ne = p.num_edges
    g_rows: list[tuple] = []
    m_rows: list[tuple] = []
    fixed = np.zeros(len(choices))
    for c, (x, relay) in enumerate(choices):
        cycles = p.samples * (x.astype(float) @ p.module_cycles)
        pay = 8.0 * (x.astype(float) @ p.module_bytes)
        relayed = relay != np.arange(p.num_devices)
        rate = np.where(relayed, p.link_rate(np.arange(p.num_devices), relay), np.inf)
        delay = np.where(relayed & (pay > 0), pay / rate, 0.0)
        fixed[c] += float(np.sum(np.where(relayed, p.d2d_power_w * delay, 0.0)))
        for j in np.flatnonzero(~relayed):
            members = np.flatnonzero(relay == j)
            if p.relay_aggregates:
                bits = 8.0 * float(x[members].any(axis=0).astype(float) @ p.module_bytes)
            else:
                bits = float(pay[members].sum())
            tmin, tmax = cycles[members] / p.freq_max[members], cycles[members] / p.freq_min[members]
            if bits <= 0:  # uploads nothing: no deadline, its members compute at f_min
                fixed[c] += float(np.sum(p.kappa * cycles[members] * p.freq_min[members] ** 2))
                continue
            g = len(g_rows)
            g_rows.append((c, j, c * ne + int(p.device_edge[j]), bits * LN2, p.noise_w_per_hz / p.uplink_gain[j],
                           p.power_max[j] * p.uplink_gain[j] / p.noise_w_per_hz, float(np.max(tmin + delay[members])),
                           float(np.max(tmax + delay[members]))))
            m_rows += [(g, i, cycles[i], delay[i], cycles[i] / p.freq_max[i], cycles[i] / p.freq_min[i])
                       for i in members]
    gr = np.array(g_rows, dtype=float).reshape(-1, 8)
    mr = np.array(m_rows, dtype=float).reshape(-1, 6)
    return Batch(choice=gr[:, 0].astype(int), device=gr[:, 1].astype(int), pair=gr[:, 2].astype(int), k=gr[:, 3],
                 n0g=gr[:, 4], a_max=gr[:, 5], s_min=gr[:, 6], s_cap=gr[:, 7], member_group=mr[:, 0].astype(int),
                 member=mr[:, 1].astype(int), cycles=mr[:, 2], delay=mr[:, 3], tau_min=mr[:, 4], tau_max=mr[:, 5],
                 kappa=p.kappa, fixed=fixed)


def _group_cost(bt: Batch, t_round: np.ndarray, nu: np.ndarray, s: np.ndarray, band: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(compute + upload energy + nu b, b) of each group starting at s, at its choice's deadline: b is `band` where
    given (not NaN; inf cost if it needs more than p_max), else the best band at price nu (closed form)."""
    t = t_round - s
    h = least_band(bt.k, t, bt.a_max)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = k_inverse(np.where(np.isnan(band), nu, 1.0) / (np.maximum(t, 1e-300) * bt.n0g))
        b = np.where(np.isnan(band), np.maximum(bt.k / (np.maximum(t, 1e-300) * x), h), band)
        w = b * t
        upload = bt.n0g * w * np.expm1(bt.k / w)
        cost = bt.compute_energy(s)[0] + upload + np.where(np.isnan(band), nu * b, 0.0)
    return np.where((t > 0) & np.isfinite(b) & (b >= h * (1 - 1e-12)), cost, np.inf), b


def _best_start(bt: Batch, t_round: np.ndarray, nu: np.ndarray, band: np.ndarray,
                iters: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Golden section on each group's start (convex: a partial minimum of a jointly convex function); groups whose
    members' frequencies are fixed start as early as they can (no search)."""
    lo = bt.s_min
    hi = np.maximum(np.minimum(bt.s_cap, t_round - bt.k / bt.a_max * (1 + 1e-12)), lo)
    live = np.flatnonzero(hi - lo > 1e-12 * np.maximum(hi, 1e-300))
    s = lo.copy()
    if live.size:
        sub = _subset(bt, live)
        tr, nv, bd, a, c = t_round[live], nu[live], band[live], lo[live], hi[live]
        x1, x2 = c - GOLDEN * (c - a), a + GOLDEN * (c - a)
        f1, f2 = _group_cost(sub, tr, nv, x1, bd)[0], _group_cost(sub, tr, nv, x2, bd)[0]
        for _ in range(iters):
            left = f1 <= f2  # keep [a, x2] (new probe left) or [x1, c] (new probe right)
            c, a = np.where(left, x2, c), np.where(left, a, x1)
            x2, x1 = np.where(left, x1, x2), np.where(left, x1, x2)
            x1 = np.where(left, c - GOLDEN * (c - a), x1)
            x2 = np.where(left, x2, a + GOLDEN * (c - a))
            f2, f1 = np.where(left, f1, f2), np.where(left, f1, f2)
            new = np.where(left, x1, x2)
            fn = _group_cost(sub, tr, nv, new, bd)[0]
            f1, f2 = np.where(left, fn, f1), np.where(left, f2, fn)
            if np.all(c - a <= 1e-9 * np.maximum(c, 1e-300)):
                break
        best = np.where(f1 <= f2, x1, x2)
        for cand in (a, c, lo[live], hi[live]):  # an optimum at a bound of the bracket or of the range
            best = np.where(_group_cost(sub, tr, nv, cand, bd)[0] < _group_cost(sub, tr, nv, best, bd)[0], cand, best)
        s[live] = best
    return s, _group_cost(bt, t_round, nu, s, band)[1]


def _subset(bt: Batch, groups: np.ndarray) -> Batch:
    """The batch restricted to some groups (their members renumbered)."""
    pos = np.full(bt.k.size, -1)
    pos[groups] = np.arange(groups.size)
    keep = pos[bt.member_group] >= 0
    return Batch(choice=bt.choice[groups], device=bt.device[groups], pair=bt.pair[groups], k=bt.k[groups],
                 n0g=bt.n0g[groups], a_max=bt.a_max[groups], s_min=bt.s_min[groups], s_cap=bt.s_cap[groups],
                 member_group=pos[bt.member_group[keep]], member=bt.member[keep], cycles=bt.cycles[keep],
                 delay=bt.delay[keep], tau_min=bt.tau_min[keep], tau_max=bt.tau_max[keep], kappa=bt.kappa,
                 fixed=bt.fixed)


def _energy_at(bt: Batch, t_choice: np.ndarray, budget: np.ndarray, iters: int = 200
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """([C] least energy at each choice's deadline, [G] band, [G] start). Each (choice, edge) with several uploaders
    prices band by its nu: sum_j b_j(nu) decreases in nu, and log(sum b / B_e) is found to cross 0 in log nu by the
    Illinois method (a bracketed secant), ending on the side that fits the band; a lone uploader takes all of B_e."""
    t_round = t_choice[bt.choice]
    npair = budget.size
    count = np.bincount(bt.pair, minlength=npair)
    band = np.where(count[bt.pair] == 1, budget[bt.pair], np.nan)  # a lone uploader: the whole band

    def excess(log_nu: np.ndarray) -> np.ndarray:
        _, b = _best_start(bt, t_round, np.exp(log_nu)[bt.pair], band)
        tot = np.bincount(bt.pair, weights=np.where(np.isfinite(b), b, 1e300), minlength=npair)
        return np.log(np.maximum(tot, 1e-300) / budget)

    lo, hi = np.full(npair, -150.0), np.full(npair, 80.0)  # ln nu (J/Hz): over the band at lo, under it at hi
    if np.any(count > 1):
        f_lo, f_hi = excess(lo), excess(hi)
        side = np.zeros(npair)
        hopeless = f_hi > 0  # over the band even at the highest price: every band at its p_max floor, T too short
        for it in range(iters):
            with np.errstate(invalid="ignore", divide="ignore"):
                mid = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
            # bisect first (the excess is flat where every band sits at its p_max floor), then the secant
            mid = np.where(np.isfinite(mid) & (mid > lo) & (mid < hi) & (it >= 14), mid, 0.5 * (lo + hi))
            f_mid = excess(mid)
            over = f_mid > 0
            lo, f_lo = np.where(over, mid, lo), np.where(over, f_mid, f_lo)
            hi, f_hi = np.where(over, hi, mid), np.where(over, f_hi, f_mid)
            f_hi = np.where(over & (side == 1), 0.5 * f_hi, f_hi)  # Illinois: halve the end that stayed twice
            f_lo = np.where(~over & (side == -1), 0.5 * f_lo, f_lo)
            side = np.where(over, 1, -1)
            exact = np.abs(f_mid) < 1e-13
            hi, f_hi = np.where(exact, mid, hi), np.where(exact, f_mid, f_hi)
            lo = np.where(exact, mid, lo)
            if np.all((count <= 1) | hopeless | (hi - lo < 1e-12)):
                break
    s, b = _best_start(bt, t_round, np.exp(hi)[bt.pair], band)
    h = least_band(bt.k, t_round - s, bt.a_max)
    total = np.bincount(bt.pair, weights=np.where(np.isfinite(b), b, 1e300), minlength=npair)
    short = np.bincount(bt.pair, weights=(b < h * (1 - 1e-12)).astype(float), minlength=npair) > 0
    ok = (total <= budget * (1 + 1e-9)) & ~short
    t = t_round - s
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = b * t
        upload = bt.n0g * w * np.expm1(bt.k / w)
    energy = bt.compute_energy(s)[0] + upload
    per_choice = bt.fixed + np.bincount(bt.choice, weights=np.where(ok[bt.pair], energy, np.inf),
                                        minlength=t_choice.size)
    return np.where(np.isfinite(per_choice), per_choice, np.inf), b, s


def _least_deadline(bt: Batch, budget: np.ndarray, nchoice: int, num_edges: int) -> np.ndarray:
    """[C] least feasible T of each choice: every member at f_max, p_max; bisection on T per choice."""
    lo = np.zeros(nchoice)
    np.maximum.at(lo, bt.choice, bt.s_min + bt.k / bt.a_max)
    hi = lo * 2 + 1e-9
    npair = budget.size

    def fits(t: np.ndarray) -> np.ndarray:
        need = least_band(bt.k, t[bt.choice] - bt.s_min, bt.a_max)
        tot = np.bincount(bt.pair, weights=np.where(np.isfinite(need), need, 1e300), minlength=npair)
        bad = np.zeros(nchoice, dtype=bool)
        np.logical_or.at(bad, np.arange(npair) // num_edges, tot > budget)
        return ~bad

    for _ in range(200):
        good = fits(hi)
        if good.all():
            break
        hi = np.where(good, hi, hi * 2)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        good = fits(mid)
        lo, hi = np.where(good, lo, mid), np.where(good, mid, hi)
        if np.all(hi - lo <= 1e-13 * hi):
            break
    return hi


def _choices(p: RoundProblem, max_choices: int) -> list[tuple[np.ndarray, np.ndarray]]:
    per_edge = []
    for e in range(p.num_edges):
        v = EdgeView.of(p, e)
        if v.n == 0:
            continue
        pls, maps = edge_placements(v), relay_maps(v.rate, p.relay_capacity)
        per_edge.append([(v, xe, np.array(r)) for xe in pls for r in maps])
    total = math.prod(len(c) for c in per_edge)
    if total > max_choices:
        raise TooLargeError(f"{total} whole-round choices > max_choices={max_choices}; the power / frequency "
                            "reference is for a handful of devices")
    out = []
    for combo in itertools.product(*per_edge):
        x = np.zeros((p.num_devices, p.num_modules), dtype=bool)
        relay = np.arange(p.num_devices)
        for v, xe, r in combo:
            x[v.dev], relay[v.dev] = xe, v.dev[r]
        out.append((x, relay))
    return out


def reference_power_frequency(problem: RoundProblem, max_choices: int = 5000, iters: int = 80) -> RoundPlan:
    """The optimal plan with uplink power and CPU frequency as decisions (numerically: each 1-D search to about 1e-9
    relative), by enumeration of every whole-round discrete choice (those whose bound t_lo + lambda E_floor cannot
    beat the best t_lo + lambda E(t_lo) are dropped first); TooLargeError beyond max_choices."""
    t0 = time.perf_counter()
    p = problem
    if p.p_max is None:
        raise ValueError("reference_power_frequency: the instance has no p_max, so uplink power is fixed and not a "
                         "decision; give p_max (= tx_power_w for none), or use exact_solve")
    choices = _choices(p, max_choices)
    bt = _batch(p, choices)
    nc = len(choices)
    budget = np.tile(p.edge_bandwidth_hz, nc)
    t_lo = _least_deadline(bt, budget, nc, p.num_edges)
    if p.lam == 0:  # the least deadline is the optimum; of the plans meeting it, the one spending least energy
        j = int(np.argmin(t_lo))
        sub = _subset(bt, np.flatnonzero(bt.choice == j))
        _, b, s = _energy_at(sub, t_lo, budget)
        return _plan(p, sub, choices[j], j, float(t_lo[j]), b, s, t0)
    e_lo = _energy_at(bt, t_lo, budget)[0]
    floor = bt.fixed + np.bincount(bt.choice, weights=bt.n0g * bt.k + bt.compute_energy(bt.s_cap)[0], minlength=nc)
    # a choice can do no better than t_lo + lam E_floor (its fastest deadline, its least energy at any deadline)
    keep = t_lo + p.lam * floor <= np.min(t_lo + p.lam * e_lo) * (1 + 1e-9)
    sub = _subset(bt, np.flatnonzero(keep[bt.choice]))
    # T beyond t_lo + lam (E(t_lo) - E_floor) costs more than t_lo already does
    a, c = t_lo.copy(), np.maximum(t_lo + p.lam * (e_lo - floor), t_lo)
    x1, x2 = c - GOLDEN * (c - a), a + GOLDEN * (c - a)
    f1 = x1 + p.lam * _energy_at(sub, x1, budget)[0]
    f2 = x2 + p.lam * _energy_at(sub, x2, budget)[0]
    for _ in range(iters):
        left = f1 <= f2
        c, a = np.where(left, x2, c), np.where(left, a, x1)
        x2, x1 = np.where(left, x1, x2), np.where(left, x1, x2)
        x1 = np.where(left, c - GOLDEN * (c - a), x1)
        x2 = np.where(left, x2, a + GOLDEN * (c - a))
        f2, f1 = np.where(left, f1, f2), np.where(left, f1, f2)
        new = np.where(left, x1, x2)
        fn = new + p.lam * _energy_at(sub, new, budget)[0]
        f1, f2 = np.where(left, fn, f1), np.where(left, f2, fn)
        if np.all(c - a <= 1e-9 * c):
            break
    t_best = np.where(f1 <= f2, x1, x2)
    t_best = np.where(t_lo + p.lam * e_lo < np.minimum(f1, f2), t_lo, t_best)
    energy, b, s = _energy_at(sub, t_best, budget)
    j = int(np.argmin(np.where(keep, t_best + p.lam * energy, np.inf)))
    return _plan(p, sub, choices[j], j, float(t_best[j]), b, s, t0)


def _plan(p: RoundProblem, bt: Batch, choice: tuple[np.ndarray, np.ndarray], j: int, t_round: float, b: np.ndarray,
          s: np.ndarray, t0: float) -> RoundPlan:
    """The plan of choice j: its groups' bands, the least power finishing each upload by t_round, f = c / tau."""
    x, relay = choice
    band, power, freq = np.zeros(p.num_devices), p.power_max.copy(), p.freq_min.copy()
    _, tau = bt.compute_energy(s)
    for g in np.flatnonzero(bt.choice == j):
        i, t = int(bt.device[g]), t_round - s[g]
        band[i] = b[g]
        power[i] = min(float(bt.n0g[g] * b[g] * np.expm1(bt.k[g] / (b[g] * t))), float(p.power_max[i]))
        for m in np.flatnonzero(bt.member_group == g):
            d = int(bt.member[m])
            freq[d] = np.clip(bt.cycles[m] / tau[m], p.freq_min[d], p.freq_max[d]) if bt.cycles[m] > 0 else \
                p.freq_max[d]
    cost = evaluate(p, x, relay, band, power, freq)
    return RoundPlan(placement=x, relay=relay, bandwidth_hz=band, latency_s=cost.latency_s, energy_j=cost.energy_j,
                     objective=cost.objective, solver="reference", status="optimal",
                     solve_seconds=time.perf_counter() - t0, tx_power_w=power, cpu_hz=freq)
