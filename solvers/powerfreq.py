"""Uplink power and CPU frequency as decisions (instances with p_max / f_min / f_max), for fixed discrete choices.

At lambda = 0 the largest power and frequency are optimal (T falls with both), so the plan takes p_max, f_max.
At lambda > 0, for a common deadline T: an uploader j with band b_j and upload window t_j = T - S_j sends its
U_j bits at the least power that finishes in time, p_j = (N0 b_j / g_j)(2^(U_j / (b_j t_j)) - 1), so its energy
is (N0 / g_j) w (exp(k_j / w) - 1) with w = b_j t_j, k_j = U_j ln2: the perspective of exp, jointly convex in
(b_j, t_j) (README). p_j <= p_max is b_j >= h_j(t_j) (the price at p_max). The members of j's group (j and the
devices relaying to j, each with D2D delay d_k) compute in tau_k = clip(S_j - d_k, c_k / f_max, c_k / f_min)
for energy kappa c_k^3 / tau_k^2, convex and nonincreasing in S_j. The whole program is convex in (b, S, T);
we solve it by golden section on T and, at each T, alternating exact blocks: (a) the bands at fixed starts, a
water-filling on the marginal saving (N0 / g) t K(k / (b t)), K(x) = 1 + e^x (x - 1) (at fixed t this block is
DCP, see `power_bandwidth_cvxpy`); (b) each group's start S_j at fixed band, by golden section.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers.bandwidth import min_bandwidth, minmax_bandwidth
from solvers.energy import GOLD
from solvers.evaluate import LN2, round_timeline
from solvers.instance import RoundProblem


def _log_k(x: np.ndarray) -> np.ndarray:
    """log K(x), K(x) = 1 + e^x (x - 1) (series below 1e-2, asymptotic form above 1)."""
    x = np.asarray(x, dtype=float)
    xs = np.where(x < 1e-2, x, 0.0)
    series = xs * xs * (0.5 + xs / 3 + xs * xs / 8 + xs ** 3 / 30)
    mid = np.where((x >= 1e-2) & (x <= 1), 1 + np.exp(np.minimum(x, 1.0)) * (np.minimum(x, 1.0) - 1), 1.0)
    big = np.maximum(x, 1.0)
    return np.where(x < 1e-2, np.log(np.maximum(series, 1e-300)),
                    np.where(x <= 1, np.log(mid), big + np.log(big - 1 + np.exp(-big))))


_LX = np.linspace(np.log(1e-9), np.log(2000.0), 4001)
_LKX = _log_k(np.exp(_LX))


def inv_k(log_c: np.ndarray) -> np.ndarray:
    """x > 0 with log K(x) = log_c (monotone table; asymptotes outside it)."""
    lx = np.interp(log_c, _LKX, _LX)
    lx = np.where(log_c < _LKX[0], 0.5 * (log_c + np.log(2.0)), lx)  # K ~ x^2 / 2
    big = np.maximum(log_c, 1.0)
    lx = np.where(log_c > _LKX[-1], np.log(big - np.log(big)), lx)  # K ~ x e^x
    return np.exp(lx)


def upload_energy(b: np.ndarray, t: np.ndarray, k: np.ndarray, n0g: np.ndarray) -> np.ndarray:
    """(N0 / g) w (exp(k / w) - 1), w = b t: least energy to send k / ln2 bits in time t over band b."""
    w = b * t
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        e = n0g * w * np.expm1(k / w)
    return np.where((b > 0) & (t > 0), e, np.inf)


@dataclass(frozen=True)
class Groups:
    """Uploaders of one discrete choice (bits, SNR at p_max, band) and the members computing for each."""

    up: np.ndarray  # device index of each uploader
    edge: np.ndarray
    k: np.ndarray  # U ln2
    n0g: np.ndarray  # N0 / g
    a_max: np.ndarray
    member: np.ndarray  # device index of each member
    owner: np.ndarray  # its uploader (index into up)
    delay: np.ndarray  # D2D delay before its uploader can start
    cycles: np.ndarray
    tau_min: np.ndarray
    tau_max: np.ndarray
    kappa: float
    fixed: float  # D2D energy

    @classmethod
    def of(cls, p: RoundProblem, x: np.ndarray, relay: np.ndarray) -> Groups:
        tl = round_timeline(p, x, relay, p.freq_max)
        up = np.flatnonzero(tl.uploader)
        pos = np.full(p.num_devices, -1)
        pos[up] = np.arange(up.size)
        member = np.flatnonzero(pos[relay] >= 0)
        owner = pos[relay[member]]
        lr = p.link_rate(member, relay[member])
        relayed = relay[member] != member
        delay = np.where(relayed, tl.payload_bits[member] / np.where(relayed, lr, 1.0), 0.0)
        cycles = p.samples[member] * (x[member].astype(float) @ p.module_cycles)
        d2d = float(np.sum(np.where(relayed, p.d2d_power_w[member] * delay, 0.0)))
        return cls(up, p.device_edge[up], tl.bits[up] * LN2, p.noise_w_per_hz / p.uplink_gain[up],
                   p.power_max[up] * p.uplink_gain[up] / p.noise_w_per_hz, member, owner, delay, cycles,
                   cycles / p.freq_max[member], cycles / p.freq_min[member], p.kappa, d2d)

    def start_min(self) -> np.ndarray:
        s = np.zeros(self.up.size)
        np.maximum.at(s, self.owner, self.tau_min + self.delay)
        return s

    def compute_energy(self, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per uploader group compute energy, tau per member) when each group starts uploading at `start`."""
        tau = np.clip(start[self.owner] - self.delay, self.tau_min, self.tau_max)
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(self.cycles > 0, self.kappa * self.cycles ** 3 / np.where(tau > 0, tau, 1.0) ** 2, 0.0)
        return np.bincount(self.owner, weights=e, minlength=self.up.size), tau


def band_block(g: Groups, t: np.ndarray, budget: np.ndarray, iters: int = 48) -> np.ndarray:
    """Block (a): least upload energy bands for windows t (inf-free; b = 0 for all of an infeasible edge)."""
    ne = budget.size
    h = min_bandwidth(g.k / LN2 / np.where(t > 0, t, 1e-300), g.a_max)
    h = np.where(t > 0, h, np.inf)
    need = np.bincount(g.edge, weights=np.where(np.isfinite(h), h, 1e300), minlength=ne)
    ok = need <= budget * (1 + 1e-12)
    okj = ok[g.edge]
    hj = np.where(okj, h, 0.0)
    scale = np.log(g.n0g * np.maximum(t, 1e-300))  # saving of band b: exp(scale) K(k / (b t))
    lm_full = scale + _log_k(g.k / (budget[g.edge] * np.maximum(t, 1e-300)))
    lm_h = scale + _log_k(g.k / (np.where(hj > 0, hj, budget[g.edge]) * np.maximum(t, 1e-300)))
    lo = np.full(ne, np.inf)
    np.minimum.at(lo, g.edge, lm_full)
    hi = np.full(ne, -np.inf)
    np.maximum.at(hi, g.edge, lm_h)
    lo = np.where(ok, lo - 1.0, 0.0)
    hi = np.where(ok, np.maximum(hi, lo) + 1.0, 0.0)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        b = np.maximum(hj, g.k / (np.maximum(t, 1e-300) * inv_k(mid[g.edge] - scale)))
        over = np.bincount(g.edge, weights=b, minlength=ne) > budget
        lo, hi = np.where(over, mid, lo), np.where(over, hi, mid)
    b = np.maximum(hj, g.k / (np.maximum(t, 1e-300) * inv_k(hi[g.edge] - scale)))
    tot = np.bincount(g.edge, weights=b, minlength=ne)
    return np.where(okj, b * (budget / np.where(tot > 0, tot, 1.0))[g.edge], 0.0)


def start_block(g: Groups, b: np.ndarray, t_round: float, iters: int = 40) -> np.ndarray:
    """Block (b): each group's upload start at fixed band, minimizing its compute + upload energy."""
    lo = g.start_min()
    t_need = (g.k / LN2) / np.maximum(np.where(b > 0, b * np.log1p(g.a_max / np.maximum(b, 1e-300)) / LN2, 0), 1e-300)
    hi = np.maximum(t_round - t_need, lo)

    def cost(s: np.ndarray) -> np.ndarray:
        return g.compute_energy(s)[0] + upload_energy(b, t_round - s, g.k, g.n0g)

    x1, x2 = hi - GOLD * (hi - lo), lo + GOLD * (hi - lo)
    f1, f2 = cost(x1), cost(x2)
    for _ in range(iters):  # golden section: the kept inner point is reused, one new cost a step
        left = f1 <= f2
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        new = np.where(left, hi - GOLD * (hi - lo), lo + GOLD * (hi - lo))
        fn = cost(new)
        x1, f1, x2, f2 = (np.where(left, new, x2), np.where(left, fn, f2), np.where(left, x1, new),
                          np.where(left, f1, fn))
    return np.where(f1 <= f2, x1, x2)


def energy_at(g: Groups, t_round: float, budget: np.ndarray, rounds: int = 3) -> tuple[float, np.ndarray, np.ndarray]:
    """(least energy found, band per uploader, start per uploader) for deadline t_round."""
    s = g.start_min()
    best = (np.inf, np.zeros(g.up.size), s)
    for _ in range(rounds):
        b = band_block(g, t_round - s, budget)
        if not np.all(b[g.k > 0] > 0):
            return best
        e = float(g.compute_energy(s)[0].sum() + upload_energy(b, t_round - s, g.k, g.n0g).sum()) + g.fixed
        if e < best[0]:
            best = (e, b, s)
        s = start_block(g, b, t_round)
        e = float(g.compute_energy(s)[0].sum() + upload_energy(b, t_round - s, g.k, g.n0g).sum()) + g.fixed
        if e < best[0]:
            best = (e, b, s)
    return best


def plan_power_frequency(p: RoundProblem, x: np.ndarray, relay: np.ndarray,
                         iters: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bandwidth, uplink power, CPU frequency) per device minimizing T + lambda E for fixed (x, relay)."""
    g = Groups.of(p, x, relay)
    power, freq = p.power_max.copy(), p.freq_max.copy()
    b_all = np.zeros(p.num_devices)
    if g.up.size == 0:
        return b_all, power, freq
    s0 = g.start_min()
    t_edges, b0 = minmax_bandwidth(g.edge, s0, g.k / LN2, g.a_max, p.edge_bandwidth_hz, rtol=1e-12)
    t_lo = float(t_edges.max()) * (1 + 1e-9)
    if p.lam == 0:
        b_all[g.up] = b0
        return b_all, power, freq
    comp_min = float(np.sum(g.kappa * g.cycles * p.freq_min[g.member] ** 2))
    e_floor = comp_min + g.fixed + float(np.sum(g.n0g * g.k))  # t -> inf: w (e^(k/w) - 1) -> k
    e_lo = energy_at(g, t_lo, p.edge_bandwidth_hz)
    best = (t_lo + p.lam * e_lo[0], t_lo, e_lo)
    a, c = t_lo, max(t_lo + p.lam * (e_lo[0] - e_floor), t_lo)
    x1, x2 = c - GOLD * (c - a), a + GOLD * (c - a)
    r1, r2 = energy_at(g, x1, p.edge_bandwidth_hz), energy_at(g, x2, p.edge_bandwidth_hz)
    for _ in range(iters):
        for t, r in ((x1, r1), (x2, r2)):
            if t + p.lam * r[0] < best[0]:
                best = (t + p.lam * r[0], t, r)
        if x1 + p.lam * r1[0] <= x2 + p.lam * r2[0]:
            c, x2, r2 = x2, x1, r1
            x1 = c - GOLD * (c - a)
            r1 = energy_at(g, x1, p.edge_bandwidth_hz)
        else:
            a, x1, r1 = x1, x2, r2
            x2 = a + GOLD * (c - a)
            r2 = energy_at(g, x2, p.edge_bandwidth_hz)
    _, t_round, (_, b, s) = best
    return decisions(p, g, t_round, b, s)


def decisions(p: RoundProblem, g: Groups, t_round: float, b: np.ndarray,
              s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bandwidth, uplink power, CPU frequency) per device of `g`'s choice from deadline t_round and each
    uploader's band b and start s: the least power that sends by t_round, the least frequency that computes by
    the start (members that compute)."""
    power, freq = p.power_max.copy(), p.freq_max.copy()
    b_all = np.zeros(p.num_devices)
    _, tau = g.compute_energy(s)
    b_all[g.up] = b
    t = t_round - s
    need = p.noise_w_per_hz * b / p.uplink_gain[g.up] * np.expm1(g.k / (b * t))
    power[g.up] = np.minimum(need, p.power_max[g.up])
    busy = g.cycles > 0
    freq[g.member[busy]] = np.clip(g.cycles[busy] / tau[busy], p.freq_min[g.member[busy]],
                                   p.freq_max[g.member[busy]])
    return b_all, power, freq


def power_bandwidth_cvxpy(t: np.ndarray, bits: np.ndarray, n0g: np.ndarray, a_max: np.ndarray,
                          budget: float) -> np.ndarray:
    """Block (a) as a DCP program (cross-check): min sum (N0/g) (w e^(k/w) - w), w = b t affine at fixed t,
    w e^(k/w) <= z + w is the exponential cone; p <= p_max is b log(1 + a_max / b) >= U ln2 / t (concave)."""
    import cvxpy as cp

    n = t.size
    v = cp.Variable(n, nonneg=True)  # b / budget
    z = cp.Variable(n)
    k = bits * LN2
    scale = k  # energy in units of (N0/g) k
    w = cp.multiply(v, budget * t / k)  # w / k
    cons = [cp.sum(v) <= 1, cp.constraints.ExpCone(np.ones(n), w, z + w),
            -cp.rel_entr(v, v + a_max / budget) >= bits * LN2 / (budget * t)]
    prob = cp.Problem(cp.Minimize(cp.sum(cp.multiply(n0g * scale / np.max(n0g * scale), z))), cons)
    prob.solve(solver="CLARABEL")
    if v.value is None:
        raise RuntimeError(f"power/bandwidth program: cvxpy status {prob.status}")
    return np.maximum(np.asarray(v.value), 0.0) * budget
