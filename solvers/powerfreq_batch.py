"""solvers/powerfreq.py's power / frequency step for many discrete choices of one round at once.

Each choice (placement, relays) becomes a copy of the round's groups with its own edges (edge e of choice c is
virtual edge c E + e, with e's band) and its own deadline T_c; the blocks of solvers/powerfreq.py (the bands'
water-filling, each group's start) then run on the stacked arrays, and the golden section over T runs on every
choice's bracket at once. The numpy calls are the same in number as one choice's step, so pricing 50-100
neighbours of a plan costs about what one step costs (solvers/powerfreq_moves.py). Every value returned is the cost
of a feasible point of its choice (bands that sum to the edge's band with p <= p_max, starts after the members'
compute and D2D), so it is an upper bound on that choice's optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers.bandwidth import minmax_bandwidth
from solvers.energy import GOLD
from solvers.evaluate import LN2, timeline
from solvers.instance import RoundProblem
from solvers.powerfreq import Groups, band_block, start_block, upload_energy


@dataclass(frozen=True)
class Batch:
    """The stacked groups of K choices: `g` with virtual edges, the choice of each uploader / member."""

    g: Groups
    k: int
    cand: np.ndarray  # choice of each uploader
    mcand: np.ndarray  # choice of each member
    budget: np.ndarray  # band of each virtual edge
    fixed: np.ndarray  # D2D energy of each choice
    floor: np.ndarray  # each choice's least energy (T -> inf)

    @classmethod
    def of(cls, p: RoundProblem, xs: np.ndarray, relays: np.ndarray) -> Batch:
        """xs [K, n, M] bool placements, relays [K, n] (one hop each)."""
        k, n = relays.shape
        relays = np.asarray(relays, dtype=int)
        own = np.arange(n)
        moved = relays != own
        rate = np.full((k, n), np.inf)
        if moved.any():
            rate[moved] = p.link_rate(np.broadcast_to(own, (k, n))[moved], relays[moved])
        factor = None if p.level is None else p.byte_factor
        tl = timeline(
            xs, relays, rate, p.samples, p.freq_max, p.module_cycles, p.module_bytes, p.relay_aggregates, factor
        )
        up_flat = np.flatnonzero(tl.uploader.ravel())
        pos = np.full(k * n, -1)
        pos[up_flat] = np.arange(up_flat.size)
        target = (relays + n * np.arange(k)[:, None]).ravel()
        mem_flat = np.flatnonzero(pos[target] >= 0)
        owner = pos[target[mem_flat]]
        up, mem = up_flat % n, mem_flat % n
        relayed = moved.ravel()[mem_flat]
        lr = rate.ravel()[mem_flat]
        delay = np.where(relayed, tl.payload_bits.ravel()[mem_flat] / np.where(relayed, lr, 1.0), 0.0)
        cycles = p.samples[mem] * (xs.reshape(k * n, -1)[mem_flat].astype(float) @ p.module_cycles)
        mcand = mem_flat // n
        cand = up_flat // n
        ne = p.num_edges
        g = Groups(
            up,
            p.device_edge[up] + ne * cand,
            tl.bits.ravel()[up_flat] * LN2,
            p.noise_w_per_hz / p.uplink_gain[up],
            p.power_max[up] * p.uplink_gain[up] / p.noise_w_per_hz,
            mem,
            owner,
            delay,
            cycles,
            cycles / p.freq_max[mem],
            cycles / p.freq_min[mem],
            p.kappa,
            0.0,
        )
        fixed = np.bincount(mcand, weights=np.where(relayed, p.d2d_power_w[mem] * delay, 0.0), minlength=k)
        floor = (
            fixed
            + np.bincount(mcand, weights=p.kappa * cycles * p.freq_min[mem] ** 2, minlength=k)
            + np.bincount(cand, weights=g.n0g * g.k, minlength=k)
        )
        return cls(g, k, cand, mcand, np.tile(p.edge_bandwidth_hz, k), fixed, floor)

    def energy(self, s: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Each choice's energy at starts s and bands b per uploader, deadline t per choice."""
        g = self.g
        per = g.compute_energy(s)[0] + upload_energy(b, t[self.cand] - s, g.k, g.n0g)
        return np.bincount(self.cand, weights=per, minlength=self.k) + self.fixed

    def energy_at(
        self, t: np.ndarray, rounds: int = 3, inner: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(least energy found per choice, band and start per uploader) at deadline t[c] (inf: none feasible);
        `inner`: the blocks' steps (None: solvers/powerfreq.py's 48 bisection steps of the bands, 40 of the starts)."""
        g = self.g
        tu = t[self.cand]
        s = g.start_min()
        best_e, best_b, best_s = np.full(self.k, np.inf), np.zeros(g.up.size), s
        alive = np.ones(self.k, dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for _ in range(rounds):
                b = band_block(g, tu - s, self.budget, inner or 48)
                alive &= np.bincount(self.cand, weights=(g.k > 0) & ~(b > 0), minlength=self.k) == 0
                for step in range(2):
                    if step:
                        s = start_block(g, b, tu, inner or 40)
                    e = np.where(alive, self.energy(s, b, t), np.inf)
                    better = e < best_e
                    best_e = np.where(better, e, best_e)
                    best_b, best_s = np.where(better[self.cand], b, best_b), np.where(better[self.cand], s, best_s)
        return best_e, best_b, best_s

    def t_least(self) -> np.ndarray:
        """Each choice's least deadline (every member at f_max, every uploader at p_max), a hair above."""
        g = self.g
        t_e, _ = minmax_bandwidth(g.edge, g.start_min(), g.k / LN2, g.a_max, self.budget, rtol=1e-12)
        t = np.zeros(self.k)
        np.maximum.at(t, np.arange(self.budget.size) // (self.budget.size // self.k), t_e)
        return t * (1 + 1e-9)


def batch_objectives(
    p: RoundProblem, xs: np.ndarray, relays: np.ndarray, iters: int = 12, rounds: int = 3, inner: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(T + lambda E, T) per choice: solvers/powerfreq.py's golden section over T, `iters` steps (`rounds` and
    `inner` as in Batch.energy_at), on every choice at once; each value is a feasible point's cost (module doc), inf
    where none was found."""
    bt = Batch.of(p, xs, relays)
    lam = p.lam
    t_lo = bt.t_least()
    e_lo = bt.energy_at(t_lo, rounds, inner)[0]
    best, best_t = t_lo + lam * e_lo, t_lo.copy()
    a = t_lo
    c = np.where(np.isfinite(e_lo), np.maximum(t_lo + lam * (e_lo - bt.floor), t_lo), t_lo)
    x1, x2 = c - GOLD * (c - a), a + GOLD * (c - a)
    e1, e2 = bt.energy_at(x1, rounds, inner)[0], bt.energy_at(x2, rounds, inner)[0]
    for _ in range(iters):
        f1, f2 = x1 + lam * e1, x2 + lam * e2
        for t, f in ((x1, f1), (x2, f2)):
            better = f < best
            best, best_t = np.where(better, f, best), np.where(better, t, best_t)
        left = f1 <= f2
        c, a = np.where(left, x2, c), np.where(left, a, x1)
        new = np.where(left, c - GOLD * (c - a), a + GOLD * (c - a))
        e_new = bt.energy_at(new, rounds, inner)[0]
        x1, e1, x2, e2 = (
            np.where(left, new, x2),
            np.where(left, e_new, e2),
            np.where(left, x1, new),
            np.where(left, e1, e_new),
        )
    f1, f2 = x1 + lam * e1, x2 + lam * e2
    for t, f in ((x1, f1), (x2, f2)):
        better = f < best
        best, best_t = np.where(better, f, best), np.where(better, t, best_t)
    return best, best_t
