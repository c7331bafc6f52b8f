"""Candidate discrete choices of one edge, priced for lambda > 0; choosing one per edge and the round latency.

At a common deadline T the edges separate: edge e's choice c costs E_fix(c) + E_up(c, T) (compute and D2D
energy fixed by the choice, upload energy by solvers/energy.py), and the round costs T + lambda sum_e E_e(T).
`select_exact` finds the best choice per edge and T by branch and bound over T intervals: on [T_a, T_b] every
energy is nonincreasing in T, so T_a + lambda sum_e min_c E_{e,c}(T_b) is a lower bound, and T_b + the same sum
is achieved; intervals whose bound cannot beat the best value found are dropped, the others split.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from solvers.bandwidth import minmax_bandwidth
from solvers.clock import Clock
from solvers.edgebatch import EdgeView
from solvers.energy import deadline_energy
from solvers.evaluate import timeline


@dataclass(frozen=True)
class EdgeCandidates:
    """K choices (x [K, n, M], relay [K, n] local) of one edge with their fixed energy and least latency."""

    view: EdgeView
    x: np.ndarray
    relay: np.ndarray
    fixed: np.ndarray  # [K] compute + D2D energy (J)
    t_min: np.ndarray  # [K] least latency of the edge (lambda = 0 bandwidth)
    cand: np.ndarray  # per uploader: candidate index
    start: np.ndarray
    bits: np.ndarray
    a: np.ndarray
    power: np.ndarray

    @classmethod
    def of(cls, view: EdgeView, x: np.ndarray, relay: np.ndarray, factor: np.ndarray | None = None
           ) -> EdgeCandidates:
        """factor [K, n]: each device's bytes factor (compression levels; None: full size)."""
        p, d, n = view.problem, view.dev, view.n
        k = x.shape[0]
        lr = view.rate[np.arange(n)[None, :], relay]
        lr = np.where(relay == np.arange(n), np.inf, lr)
        tl = timeline(x, relay, lr, p.samples[d], p.cpu_hz[d], p.module_cycles, p.module_bytes, p.relay_aggregates,
                      factor)
        cycles = p.samples[d] * (x.astype(float) @ p.module_cycles)
        fixed = (p.kappa * cycles * p.cpu_hz[d] ** 2).sum(axis=1)
        with np.errstate(invalid="ignore"):
            d2d = np.where(tl.relayed, p.d2d_power_w[d] * tl.payload_bits / np.where(tl.relayed, lr, 1.0), 0.0)
        fixed = fixed + d2d.sum(axis=1)
        kk, jj = np.nonzero(tl.uploader)
        start, bits = tl.start[kk, jj], tl.bits[kk, jj]
        a, power = p.snr_hz[d][jj], p.tx_power_w[d][jj]
        t_min = minmax_bandwidth(kk, start, bits, a, np.full(k, p.edge_bandwidth_hz[view.edge]), rtol=1e-11)[0]
        return cls(view, x, relay, fixed, t_min, kk, start, bits, a, power)

    def subset(self, keep: np.ndarray) -> EdgeCandidates:
        """The candidates `keep` (indices or mask), renumbered."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=int)
        new = np.full(self.size, -1)
        new[idx] = np.arange(idx.size)
        sel = new[self.cand] >= 0
        return EdgeCandidates(self.view, self.x[idx], self.relay[idx], self.fixed[idx], self.t_min[idx],
                              new[self.cand[sel]], self.start[sel], self.bits[sel], self.a[sel], self.power[sel])

    def pareto(self, points: int = 24) -> EdgeCandidates:
        """The candidates of `pareto_mask`."""
        return self if self.size <= 1 else self.subset(self.pareto_mask(points))

    def pareto_mask(self, points: int = 24) -> np.ndarray:
        """[K] False for candidates that no deadline can make best: c is dominated when some candidate feasible at a
        deadline t <= T_min(c) already spends less at t than c ever can (E_c(inf)); energies fall with T."""
        finite = np.isfinite(self.t_min)
        if self.size <= 1 or not finite.any():
            return finite
        lo, hi = float(self.t_min[finite].min()), float(self.t_min[finite].max())
        ts = np.unique(np.geomspace(lo, max(hi, lo), points))
        e_inf = self.e_inf  # at 1e6 hi + 1e6
        best, _ = self.least(ts)  # [P]
        k = np.searchsorted(ts, self.t_min * (1 + 1e-12), side="right") - 1  # largest grid point <= T_min(c)
        dominated = (k >= 0) & (best[np.maximum(k, 0)] < e_inf * (1 - 1e-12))
        return ~dominated & finite

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    @cached_property
    def far(self) -> float:
        """A deadline past every T the searches try (1e6 x the slowest least latency + 1e6 s)."""
        finite = self.t_min[np.isfinite(self.t_min)]
        return 1e6 * (float(finite.max()) if finite.size else 1.0) + 1e6

    @cached_property
    def e_inf(self) -> np.ndarray:
        """[K] each candidate's energy at deadline `far`: E_c(T) >= e_inf for T <= far (energies fall with T), so
        a candidate whose e_inf exceeds some other's E(T) is not the best at T."""
        return self.energy(np.array([self.far]))[0]

    def least(self, ts: np.ndarray, probe: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """([P] least energy over the candidates at each deadline, [P] the first candidate reaching it): the min /
        argmin of `energy(ts)`, pricing only the candidates that can reach it (see `_total`)."""
        tot, arg = _total([self], np.asarray(ts, dtype=float), probe=probe)
        return tot, arg[0]

    def energy(self, ts: np.ndarray) -> np.ndarray:
        """[P, K] energy of every candidate at every deadline ts [P] (inf where it cannot finish)."""
        ts = np.asarray(ts, dtype=float)
        k, pts = self.size, ts.size
        if pts == 0:
            return np.zeros((0, k))
        group = (np.arange(pts)[:, None] * k + self.cand[None, :]).ravel()
        budget = np.full(pts * k, self.view.problem.edge_bandwidth_hz[self.view.edge])
        start, bits, a, power = (np.tile(v, pts) for v in (self.start, self.bits, self.a, self.power))
        e, _ = deadline_energy(group, start, bits, a, power, budget, np.repeat(ts, k))
        e = e.reshape(pts, k) + self.fixed[None, :]
        return np.where(self.t_min[None, :] <= ts[:, None] * (1 + 1e-12), e, np.inf)


@dataclass(frozen=True)
class Selection:
    """One candidate index per edge, the deadline that priced them, and a certified bound on the optimum."""

    choice: list[int]
    t: float
    value: float
    lower_bound: float


STACK_ROWS = 20_000
"""`_total` prices every deadline in one water-filling up to this many (deadline, uploader) rows (8-12-device
edges: a few thousand, where one call per deadline spent most of its time in numpy's per-call overhead); above it
one call per deadline (at 10,000 devices stacking them was 2.5x slower per deadline, out of cache)."""


def _total(cands: list[EdgeCandidates], ts: np.ndarray, iters: int = 36, probe: int = 8
           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """[P] sum over edges of the best candidate's energy at each deadline, and the argmins per edge: one
    water-filling per deadline over the (edge, candidate) groups of every edge at once (a Python call per edge cost
    100 calls a deadline at 10,000 devices; stacking the deadlines too was 2.5x slower per deadline, out of cache);
    each group's bisection is its own, so the numbers are those of one edge alone. iters: the water-filling's
    bisection steps on ln nu (solvers/energy.py).

    Exact pruning: E_c(T) >= e_inf_c (energies fall with T), so at each deadline the `probe` feasible candidates of
    least e_inf per edge give a cap on the edge's least energy, and only candidates with e_inf within it are priced
    (the min and argmin are those of pricing all; 8-device edges: 15.7 -> 0.2 CPU s a selection)."""
    ts = np.asarray(ts, dtype=float)
    pts = ts.size
    sizes = np.array([c.size for c in cands])
    offset = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    k_all = int(offset[-1])
    edge_of = np.repeat(np.arange(len(cands)), sizes)
    cand = np.concatenate([c.cand + offset[i] for i, c in enumerate(cands)])
    start, bits, a, power = (np.concatenate([getattr(c, f) for c in cands]) for f in ("start", "bits", "a", "power"))
    cap = np.concatenate([np.full(c.size, c.view.problem.edge_bandwidth_hz[c.view.edge]) for c in cands])
    fixed = np.concatenate([c.fixed for c in cands])
    t_min = np.concatenate([c.t_min for c in cands])
    rows_of = np.argsort(cand, kind="stable")
    lo, hi = np.searchsorted(cand[rows_of], np.arange(k_all), "left"), np.searchsorted(cand[rows_of],
                                                                                       np.arange(k_all), "right")

    def priced(on: np.ndarray) -> np.ndarray:  # [P, K] energy of the marked pairs, inf elsewhere
        out = np.full(on.shape, np.inf)
        ii, kk = np.nonzero(on)
        cnt = hi[kk] - lo[kk]
        if int(cnt.sum()) > STACK_ROWS:  # large rounds: one water-filling per deadline (stays in cache)
            for i in range(pts):
                sel = ii == i
                if sel.any():
                    out[i, kk[sel]] = _priced(kk[sel], np.full(int(sel.sum()), ts[i]))
            return out
        if kk.size:  # small rounds: every deadline in one water-filling (the per-call overhead dominated)
            out[ii, kk] = _priced(kk, ts[ii])
        return out

    def _priced(kk: np.ndarray, deadline: np.ndarray) -> np.ndarray:  # energy of candidates kk at their deadlines
        cnt = hi[kk] - lo[kk]
        group = np.repeat(np.arange(kk.size), cnt)
        rows = rows_of[np.repeat(lo[kk], cnt) + np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)]
        e, _ = deadline_energy(group, start[rows], bits[rows], a[rows], power[rows], cap[kk], deadline, iters)
        return e + fixed[kk]

    feas = t_min[None, :] <= ts[:, None] * (1 + 1e-12)
    if pts == 0 or k_all == 0:
        e = np.full((pts, k_all), np.inf)
    else:
        e_inf = np.concatenate([c.e_inf for c in cands])
        far = np.concatenate([np.full(c.size, c.far) for c in cands])
        order = np.lexsort((e_inf, edge_of))  # by edge, then e_inf
        rank = np.cumsum(feas[:, order], axis=1)
        before = np.concatenate([np.zeros((pts, 1), dtype=rank.dtype), rank], axis=1)[:, offset[edge_of[order]]]
        first = np.zeros_like(feas)
        first[:, order] = feas[:, order] & (rank - before <= probe)
        probed = priced(first)
        least = np.stack([probed[:, offset[i]:offset[i + 1]].min(axis=1, initial=np.inf)
                          for i in range(len(cands))], axis=1)  # [P, edges]
        bound = np.where(ts[:, None] <= far[None, :], least[:, edge_of], np.inf)
        on = feas & (e_inf[None, :] <= bound * (1 + 1e-12))
        # the probe's numbers where it priced them (each group's water level is its own)
        e = np.where(first & on, probed, priced(on & ~first))
    tot = np.zeros(pts)
    arg = []
    for i in range(len(cands)):
        block = e[:, offset[i]:offset[i + 1]]
        j = np.argmin(block, axis=1)
        tot += block[np.arange(pts), j]
        arg.append(j)
    return tot, arg


def select_exact(cands: list[EdgeCandidates], lam: float, rtol: float = 1e-7, grid: int = 33,
                 max_rounds: int = 60, iters: int = 36, clock: Clock | None = None) -> Selection:
    """min over T and one candidate per edge of T + lam sum_e E_e(T), to relative tolerance rtol (certified; when
    `clock` runs out first the refinement stops: the choice is the best deadline evaluated and the bound stays valid,
    the least over the open intervals). iters: bisection steps of each water-filling (fewer: a search step whose
    choice is judged exactly after)."""
    t_lo = max(float(c.t_min.min()) for c in cands) * (1 + 1e-10)
    if lam == 0:
        choice = [int(np.argmin(c.t_min)) for c in cands]
        return Selection(choice, t_lo, t_lo, t_lo / (1 + 1e-10))
    e_lo, _ = _total(cands, np.array([t_lo]), iters)
    e_inf, _ = _total(cands, np.array([1e6 * t_lo + 1e6]), iters)
    t_hi = max(t_lo + lam * (float(e_lo[0]) - float(e_inf[0])), t_lo * (1 + 1e-9))
    ts = np.unique(np.concatenate([np.geomspace(t_lo, t_hi, grid), [t_lo, t_hi]]))
    vals, _ = _total(cands, ts, iters)
    pts = dict(zip(ts.tolist(), vals.tolist(), strict=True))
    tail = t_hi + lam * float(e_inf[0])  # any T >= t_hi
    for _ in range(max_rounds):
        if clock is not None and clock.expired():
            break
        keys = sorted(pts)
        f = np.array([pts[t] for t in keys])
        tk = np.array(keys)
        best = float(np.min(tk + lam * f))
        lb = tk[:-1] + lam * f[1:]
        open_ = np.flatnonzero(lb < best - rtol * abs(best))
        if open_.size == 0:
            break
        mids = 0.5 * (tk[open_] + tk[open_ + 1])
        new, _ = _total(cands, mids, iters)
        pts.update(zip(mids.tolist(), new.tolist(), strict=True))
    keys = sorted(pts)
    tk = np.array(keys)
    f = np.array([pts[t] for t in keys])
    val = tk + lam * f
    i = int(np.argmin(val))
    lower = float(min(np.min(tk[:-1] + lam * f[1:], initial=np.inf), val[i], tail))
    _, arg = _total(cands, tk[i:i + 1], iters)
    return Selection([int(a[0]) for a in arg], float(tk[i]), float(val[i]), lower)
