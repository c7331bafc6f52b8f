"""Least upload energy to meet a deadline, and the best deadline of a fixed discrete choice (lambda > 0).

At a fixed round latency T the edges separate again (as at lambda = 0): edge e must minimize its upload energy
sum_j p_j U_j / R_j(b_j) subject to start_j + U_j / R_j(b_j) <= T and sum_j b_j <= B_e. The energy is convex
decreasing in b_j, the deadline is b_j >= h_j(T) (the price of solvers/joint.py), so the KKT conditions are a
water-filling: b_j = max(h_j, beta_j(nu)) with beta_j the b where the marginal energy saving equals nu, and nu
bisected until sum_j b_j = B_e. With y = a / b the marginal saving is p U ln2 / a^2 * G(y),
G(y) = y^2 (ln(1+y) - y/(1+y)) / ln(1+y)^2, increasing in y, inverted once for all devices (`inv_g`).

E_e(T) is convex and nonincreasing in T (the value of a convex program whose constraints are jointly convex in
(b, T)), so T + lambda sum_e E_e(T) is convex in T and `best_deadline` minimizes it by golden section.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers.bandwidth import min_bandwidth, minmax_bandwidth
from solvers.evaluate import LN2, round_timeline, uplink_rate
from solvers.instance import RoundProblem

GOLD = (np.sqrt(5.0) - 1.0) / 2.0


def _diff(y: np.ndarray) -> np.ndarray:
    """ln(1+y) - y/(1+y), by its series where the difference cancels (y < 1e-2)."""
    d = np.log1p(y) - y / (1.0 + y)
    small = y < 1e-2
    if small.any():
        ys = y[small]
        d[small] = sum((-1) ** n * (n - 1) / n * ys ** n for n in range(2, 10))
    return d


def g_func(y: np.ndarray) -> np.ndarray:
    """G(y) = y^2 (ln(1+y) - y/(1+y)) / ln(1+y)^2."""
    y = np.asarray(y, dtype=float)
    lg = np.log1p(y)
    return y * y * _diff(y) / (lg * lg)


def _dlog_g(y: np.ndarray) -> np.ndarray:
    """d log G / d log y (for Newton steps in log space)."""
    lg = np.log1p(y)
    return 2.0 + y * y / ((1.0 + y) ** 2 * _diff(y)) - 2.0 * y / ((1.0 + y) * lg)


_LY = np.linspace(np.log(1e-9), np.log(1e16), 4001)
_LG = np.log(g_func(np.exp(_LY)))
_LC = np.linspace(_LG[0], _LG[-1], 16001)  # the inverse on a uniform grid of log G: lookups without a search
_LYC = np.interp(_LC, _LG, _LY)
_STEP = _LC[1] - _LC[0]


def inv_g(c: np.ndarray, newton: int = 3) -> np.ndarray:
    """y > 0 with G(y) = c (c > 0): log-log table (monotone), asymptotes outside it, then Newton steps."""
    return np.exp(_inv_log_g(np.log(np.asarray(c, dtype=float)), newton))


def _inv_log_g(lc: np.ndarray, newton: int) -> np.ndarray:
    pos = np.clip((lc - _LC[0]) / _STEP, 0.0, _LC.size - 1.000001)
    i = pos.astype(int)
    w = pos - i
    ly = _LYC[i] * (1.0 - w) + _LYC[i + 1] * w  # piecewise linear, so monotone in lc
    low, high = lc < _LG[0], lc > _LG[-1]
    if low.any() or high.any():
        ly = np.where(low, 0.5 * (lc + np.log(2.0)), ly)  # G ~ y^2 / 2
        ly = np.where(high, 0.5 * (lc + np.log(np.maximum(0.5 * lc, 1.0))), ly)  # G ~ y^2 / ln y
    for _ in range(newton):
        y = np.exp(ly)
        ly = ly - (np.log(g_func(y)) - lc) / _dlog_g(y)
    return ly


def _table_slope(lc: np.ndarray) -> np.ndarray:
    """d ln y / d ln G of `_inv_log_g`'s table (0 Newton steps) at ln G = lc; 1/2 on the asymptotes."""
    pos = np.clip((lc - _LC[0]) / _STEP, 0.0, _LC.size - 1.000001)
    i = pos.astype(int)
    return np.where((lc < _LG[0]) | (lc > _LG[-1]), 0.5, (_LYC[i + 1] - _LYC[i]) / _STEP)


_DLYC = (_LYC[1:] - _LYC[:-1]) / _STEP  # the table's slope per segment (`_table_slope`'s numbers)
_TOP = _LC.size - 1.000001


def _table_both(lc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`_inv_log_g`(lc, 0), `_table_slope`(lc)) with one look-up: the same floats, a third of the numpy calls
    (the water level's loop is most of the energy search's time, and on one edge's dozen uploaders numpy's per-call
    overhead is most of the loop's)."""
    pos = np.minimum(np.maximum((lc - _LC[0]) / _STEP, 0.0), _TOP)
    i = pos.astype(int)
    w = pos - i
    ly = _LYC[i] * (1.0 - w) + _LYC[i + 1] * w
    slope = _DLYC[i]
    low, high = lc < _LG[0], lc > _LG[-1]
    if low.any() or high.any():
        ly = np.where(low, 0.5 * (lc + np.log(2.0)), ly)
        ly = np.where(high, 0.5 * (lc + np.log(np.maximum(0.5 * lc, 1.0))), ly)
        slope = np.where(low | high, 0.5, slope)
    return ly, slope


def _water_level(group: np.ndarray, hj: np.ndarray, lc: np.ndarray, la: np.ndarray, budget: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray, iters: int) -> np.ndarray:
    """[G] a level mu = ln nu (per group) with sum_j max(h_j, beta_j(mu)) <= budget, as close to equality as
    `iters` steps give, from a bracket lo (over the budget) .. hi (within it). beta_j(mu) = a_j / y_j, ln y_j from
    the table at mu + lc_j: decreasing and about convex in mu (beta ~ e^(-mu / 2)), so Newton's steps from lo climb
    to the root (a bisection step where one would leave the bracket); one probe past each converged point moves hi
    there. The steps are Newton's on ln(sum b), about linear in mu where the band is free (sum b ~ e^(-mu / 2)), so
    from lo, a few units of mu below the root, they reach it in 6-7 evaluations where Newton's on sum b took 10 (it
    moves at most 2 units a step there). It replaced `iters` bisection steps (the same hi within 1e-10 of the
    bracket; the energy search spent 80 % of its time here)."""
    with np.errstate(divide="ignore", invalid="ignore"):  # once, not per step (a tenth of the loop's time)
        return _water_steps(group, hj, lc, la, budget, lo, hi, iters)


def _water_steps(group: np.ndarray, hj: np.ndarray, lc: np.ndarray, la: np.ndarray, budget: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray, iters: int) -> np.ndarray:
    """`_water_level`'s loop."""
    ng = budget.size
    x = lo.copy()
    active = hi > lo
    for _ in range(iters):
        if not active.any():
            break
        ly, dly = _table_both(x[group] + lc)
        beta = np.exp(la - ly)
        free = beta > hj
        b = np.where(free, beta, hj)
        tot = np.bincount(group, weights=b, minlength=ng)
        slope = np.bincount(group, weights=np.where(free, -beta * dly, 0.0), minlength=ng)
        over = tot > budget
        lo = np.where(active & over, np.maximum(lo, x), lo)
        hi = np.where(active & ~over, np.minimum(hi, x), hi)
        excess = tot - budget
        done = np.abs(excess) <= 1e-13 * budget
        step = np.where(slope < 0, -np.log(tot / budget) * tot / slope, np.inf)  # Newton on ln(sum b)
        if (done & active & over).any():  # converged from the over side: one probe just past the root
            probe = done & active & over
            x_try = x + 2.0 * np.abs(np.where(np.isfinite(step), step, 0.0)) + 1e-12 * np.maximum(np.abs(x), 1.0)
            b_try = np.maximum(hj, np.exp(la - _inv_log_g(x_try[group] + lc, 0)))
            fits = np.bincount(group, weights=b_try, minlength=ng) <= budget
            hi = np.where(probe & fits, np.minimum(hi, x_try), hi)
            lo = np.where(probe & ~fits, np.maximum(lo, x_try), lo)
        active = active & ~(done & (~over | (hi - lo <= 1e-9 * np.maximum(np.abs(hi), 1.0))))
        active &= hi - lo > 1e-12 * np.maximum(np.abs(hi), 1.0)
        nxt = x + step
        inside = np.isfinite(nxt) & (nxt > lo) & (nxt < hi)
        x = np.where(active, np.where(inside, nxt, 0.5 * (lo + hi)), x)
    return hi


def deadline_energy(group: np.ndarray, start: np.ndarray, bits: np.ndarray, a: np.ndarray, power: np.ndarray,
                    budget: np.ndarray, deadline: np.ndarray, iters: int = 36) -> tuple[np.ndarray, np.ndarray]:
    """Least upload energy per group to finish by deadline[g] within budget[g] Hz: (energy [G], b per uploader).

    Arrays are per uploader (bits > 0). A group that cannot meet its deadline gets energy inf (and b = 0).
    """
    energy, b, _ = deadline_energy_slope(group, start, bits, a, power, budget, deadline, iters, slope=False)
    return energy, b


def deadline_energy_slope(group: np.ndarray, start: np.ndarray, bits: np.ndarray, a: np.ndarray, power: np.ndarray,
                          budget: np.ndarray, deadline: np.ndarray, iters: int = 36,
                          slope: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`deadline_energy` and dE_g / d deadline_g [G] (0 where not `slope`; nan in infeasible groups).

    Envelope theorem: with multipliers mu_j >= 0 on b_j >= h_j(T) and nu on the band, dE/dT = sum_j mu_j h_j'(T),
    and stationarity gives mu_j = nu - s_j(h_j) on the uploaders held at their least band (s_j(b) = G(a_j / b) / c_j
    the marginal saving, at most nu there), 0 on the others; h' < 0 as in solvers/bandwidth.py `_need_slope`."""
    ng = len(budget)
    if len(group) == 0:
        return np.zeros(ng), np.zeros(0), np.zeros(ng)
    ok, hj, level = _deadline_level(group, start, bits, a, power, budget, deadline, iters)
    okj = ok[group]
    beta = level_band(a, power, bits, level[group])
    b = np.maximum(hj, beta)  # the table the level was set on: in budget
    tot = np.bincount(group, weights=b, minlength=ng)
    b = np.where(okj, b * (budget / np.where(tot > 0, tot, 1.0))[group], 0.0)  # the leftover only helps
    e = np.where(okj, power * bits / np.where(okj, uplink_rate(b, a), 1.0), 0.0)
    energy = np.where(ok, np.bincount(group, weights=e, minlength=ng), np.inf)
    if not slope:
        return energy, b, np.zeros(ng)
    held = np.flatnonzero(okj & (hj >= beta) & (hj > 0))
    g, h, aj = group[held], hj[held], a[held]
    y = aj / h
    slack = deadline[g] - start[held]
    k = bits[held] * LN2 / (aj * slack)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dh = aj * k / (y * (1.0 / (1.0 + y) - k) * slack)
        mu = np.maximum(np.exp(level[g]) - g_func(y) * power[held] * bits[held] * LN2 / (aj * aj), 0.0)
        d = np.bincount(g, weights=mu * dh, minlength=ng)
    return energy, b, np.where(ok, d, np.nan)


def deadline_level(group: np.ndarray, start: np.ndarray, bits: np.ndarray, a: np.ndarray, power: np.ndarray,
                   budget: np.ndarray, deadline: np.ndarray, iters: int = 36) -> tuple[np.ndarray, np.ndarray]:
    """(feasible [G], ln nu [G]): the water level of `deadline_energy`, nu the band's price in J/Hz (the marginal
    upload energy one more Hz saves at the optimum), so that each uploader's priced cost E_j(b) + nu b alone is
    least at the optimal b_j (solvers/relay_sweep.py prices moves with it)."""
    ok, _, level = _deadline_level(group, start, bits, a, power, budget, deadline, iters)
    return ok, level


def level_band(a: np.ndarray, power: np.ndarray, bits: np.ndarray, level: np.ndarray) -> np.ndarray:
    """beta_j: the band where uploader j's marginal energy saving equals nu = e^level (J/Hz), the water-filling's
    choice above its least band (on the table `deadline_level` was set on)."""
    return np.exp(np.log(a) - _inv_log_g(level + np.log(a * a / (power * bits * LN2)), 0))


def _deadline_level(group: np.ndarray, start: np.ndarray, bits: np.ndarray, a: np.ndarray, power: np.ndarray,
                    budget: np.ndarray, deadline: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(feasible [G], each uploader's least band h_j (0 in infeasible groups), the level ln nu [G])."""
    ng = len(budget)
    slack = deadline[group] - start
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(slack > 0, bits / np.where(slack > 0, slack, 1.0), np.inf)
    h = min_bandwidth(q, a)
    need = np.bincount(group, weights=np.where(np.isfinite(h), h, 1e300), minlength=ng)
    ok = (need <= budget * (1 + 1e-12)) & np.isfinite(need)
    hj = np.where(ok[group], h, 0.0)
    c = a * a / (power * bits * LN2)  # marginal saving of b is G(a / b) / c
    with np.errstate(divide="ignore", over="ignore"):
        lm_full = np.log(g_func(a / budget[group])) - np.log(c)
        lm_h = np.log(g_func(a / np.where(hj > 0, hj, budget[group]))) - np.log(c)
    lo = np.full(ng, np.inf)
    np.minimum.at(lo, group, lm_full)
    hi = np.full(ng, -np.inf)
    np.maximum.at(hi, group, lm_h)
    lo = np.where(ok, lo - 1.0, 0.0)
    hi = np.where(ok, np.maximum(hi, lo) + 1.0, 0.0)
    return ok, hj, _water_level(group, hj, np.log(c), np.log(a), budget, lo, hi, iters)


@dataclass(frozen=True)
class Uploads:
    """The uploaders of a whole round (or a batch): group (edge), start, bits, SNR a, power, per-group band."""

    group: np.ndarray
    start: np.ndarray
    bits: np.ndarray
    a: np.ndarray
    power: np.ndarray
    budget: np.ndarray

    def min_latency(self) -> np.ndarray:
        """Least latency per group (lambda = 0 bandwidth)."""
        return minmax_bandwidth(self.group, self.start, self.bits, self.a, self.budget, rtol=1e-12)[0]

    def energy_at(self, t: float) -> tuple[float, np.ndarray]:
        """Least total upload energy of all groups by one common deadline t (inf if infeasible)."""
        e, b = deadline_energy(self.group, self.start, self.bits, self.a, self.power, self.budget,
                               np.full(len(self.budget), t))
        return float(e.sum()), b

    def energy_slope_at(self, t: float) -> tuple[float, np.ndarray, float]:
        """`energy_at` and its derivative in t (`deadline_energy_slope`)."""
        e, b, d = deadline_energy_slope(self.group, self.start, self.bits, self.a, self.power, self.budget,
                                        np.full(len(self.budget), t))
        return float(e.sum()), b, float(d.sum())


def best_deadline(up: Uploads, lam: float, tol: float = 1e-10, max_iter: int = 200,
                  hint: float | None = None, ftol: float = 1e-15) -> tuple[float, np.ndarray]:
    """argmin over T of T + lam E(T) for fixed discrete choices: (T, b per uploader); `hint` is tried first.

    f(T) = T + lam E(T) is convex, so its least point is where f' = 1 + lam E'(T) turns positive (E' from
    `deadline_energy_slope`): regula falsi on f' with the Illinois rule (a bisection where its point leaves the
    bracket) to a bracket of relative width tol, the best f evaluated returned. It replaced a golden-section search
    on f (48 water-fillings a call to tol 1e-10: 40 % of the energy search's time on 12-device edges) with about a
    fifth of the evaluations (experiments/results/solver_model/s26bd/NOTES.md)."""
    if len(up.group) == 0 or lam == 0:  # one bisection: its band and the latency that band achieves
        t_edge, b_up = minmax_bandwidth(up.group, up.start, up.bits, up.a, up.budget)
        return float(t_edge.max(initial=0.0)), b_up
    t_min = float(up.min_latency().max(initial=0.0))
    lo = t_min * (1 + 1e-9) + 1e-300
    seen: dict[float, tuple[float, np.ndarray]] = {}

    slopes: dict[float, float] = {}

    def slope_at(t: float) -> float:  # f'(t), keeping f(t) and its band
        e, bb, d = up.energy_slope_at(t)
        seen[t] = (t + lam * e, bb)
        slopes[t] = 1.0 + lam * d
        return slopes[t]

    def floor(a: float, b: float) -> float:  # f is above each point's tangent: the least f on [a, b] is above
        return max(seen[t][0] + min(d * (a - t), d * (b - t)) for t, d in slopes.items() if np.isfinite(d))

    g_lo = slope_at(lo)
    e_lo = (seen[lo][0] - lo) / lam
    e_inf, b_inf = up.energy_at(1e6 * lo + 1e6)
    hi = max(lo + (e_lo - e_inf) * lam * (1 + 1e-9), lo)  # beyond hi, T + lam E(T) > the value at lo
    if np.isfinite(e_inf):  # the least energy's band finishes by t_free: there E is least, so f rises beyond it
        t_free = float(np.max(up.start + up.bits / uplink_rate(b_inf, up.a)))
        hi = max(min(hi, t_free * (1 + 1e-9)), lo)
    if hi > lo and not g_lo >= 0:  # else f rises from lo: lo is the least point
        g_hi = slope_at(hi)
        a, b, ga, gb = lo, hi, g_lo, g_hi  # the bracket, and f' at its ends (the Illinois rule halves them)
        side = 0
        x = hint if hint is not None and lo < hint < hi else None
        for _ in range(max_iter):
            w = b - a
            if not gb > 0 or w <= tol * max(b, 1e-300):
                break
            if floor(a, b) >= (1.0 - ftol) * min(v[0] for v in seen.values()):
                break
            if x is None:
                x = b - gb * w / (gb - ga) if np.isfinite(ga) else None
                if x is None or not a < x < b:
                    x = a + 0.5 * w
            gx = slope_at(x)
            if gx > 0:
                b, gb = x, gx
                if side == 1:
                    ga *= 0.5
                side = 1
            elif gx < 0 or np.isnan(gx):
                a, ga = x, gx
                if side == -1:
                    gb *= 0.5
                side = -1
            else:
                break
            x = None
    best = min(seen, key=lambda t: seen[t][0])
    return best, seen[best][1]


def round_uploads(problem: RoundProblem, x: np.ndarray, relay: np.ndarray) -> tuple[Uploads, np.ndarray]:
    """The uploads of a whole round's choice, and the device index of each uploader."""
    tl = round_timeline(problem, x, relay)
    idx = np.flatnonzero(tl.uploader)
    return Uploads(problem.device_edge[idx], tl.start[idx], tl.bits[idx], problem.snr_hz[idx],
                   problem.tx_power_w[idx], problem.edge_bandwidth_hz), idx


def plan_bandwidth(problem: RoundProblem, x: np.ndarray, relay: np.ndarray, hint: float | None = None) -> np.ndarray:
    """The exact bandwidth of fixed discrete choices for T + lambda E (min-max latency when lambda = 0)."""
    up, idx = round_uploads(problem, x, relay)
    _, b_up = best_deadline(up, problem.lam, hint=hint)
    b = np.zeros(problem.num_devices)
    b[idx] = b_up
    return b


def edge_latency(problem: RoundProblem, choices: list[tuple[np.ndarray, np.ndarray]],
                 rtol: float = 1e-7) -> list[np.ndarray]:
    """Exact min-max latency per edge of several whole-round choices, in one vectorized bisection."""
    p, ne = problem, problem.num_edges
    grp, st, bits, a = [], [], [], []
    for c, (x, relay) in enumerate(choices):
        tl = round_timeline(p, x, relay)
        idx = np.flatnonzero(tl.uploader)
        grp.append(p.device_edge[idx] + c * ne)
        st.append(tl.start[idx])
        bits.append(tl.bits[idx])
        a.append(p.snr_hz[idx])
    t, _ = minmax_bandwidth(np.concatenate(grp), np.concatenate(st), np.concatenate(bits), np.concatenate(a),
                            np.tile(p.edge_bandwidth_hz, len(choices)), rtol=rtol)
    return [t[c * ne:(c + 1) * ne] for c in range(len(choices))]
