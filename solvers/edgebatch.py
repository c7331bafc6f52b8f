"""Exact min-max latency of many candidate (placement, relay) choices for the devices of one edge at once.

For lambda = 0 the round separates by edge (T = max_e T_e and every edge owns its band, devices, coverage
and D2D links), so the exact reference and the local search compare candidates edge by edge. A batch of K
candidates is K independent bandwidth problems, solved together by the vectorized bisection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers.bandwidth import min_bandwidth, minmax_bandwidth
from solvers.evaluate import timeline
from solvers.instance import RoundProblem


@dataclass(frozen=True)
class EdgeView:
    """The devices of edge e (global indices `dev`) with their dense local D2D rate matrix."""

    problem: RoundProblem
    edge: int
    dev: np.ndarray
    rate: np.ndarray  # [n, n], 0 where no link
    demand: np.ndarray  # [M] coverage demand of this edge

    @classmethod
    def of(cls, problem: RoundProblem, edge: int) -> EdgeView:
        p = problem
        dev = p.edge_devices(edge)  # sorted
        # the edge's links straight into a dense matrix (slicing the round's sparse matrix cost 3.6 ms an edge,
        # 0.36 s of a 10,000-device lambda > 0 round); links are unique (validated)
        on = np.flatnonzero((p.device_edge[p.d2d_src] == edge) & (p.device_edge[p.d2d_dst] == edge))
        rate = np.zeros((dev.size, dev.size))
        rate[np.searchsorted(dev, p.d2d_src[on]), np.searchsorted(dev, p.d2d_dst[on])] = p.d2d_rate_bps[on]
        return cls(p, edge, dev, rate, p.coverage_demand()[edge])

    @property
    def n(self) -> int:
        return int(self.dev.size)

    def feasible(self, x: np.ndarray) -> np.ndarray:
        """[K] memory and coverage of candidate placements x [K, n, M] (eligibility assumed)."""
        p = self.problem
        mem = x.astype(float) @ p.module_memory_bytes <= p.memory_bytes[self.dev] * (1 + 1e-12)
        cov = np.einsum("knm,n->km", x.astype(float), p.samples[self.dev]) >= self.demand * (1 - 1e-12)
        return mem.all(axis=1) & cov.all(axis=1)

    def latency(self, x: np.ndarray, relay: np.ndarray, below: float | None = None) -> np.ndarray:
        """[K] exact min-max latency of candidates x [K, n, M], relay [K, n] (local indices, one hop). below: only
        the candidates whose least bands at that latency fit the edge's band (so their latency is at most it) are
        solved, the others get inf (their latency exceeds it): one pricing instead of a search for most neighbours
        of a local search's choice."""
        p, k, n = self.problem, x.shape[0], self.n
        d = self.dev
        lr = self.rate[np.arange(n)[None, :], relay]
        lr = np.where(relay == np.arange(n), np.inf, lr)
        tl = timeline(x, relay, lr, p.samples[d], p.cpu_hz[d], p.module_cycles, p.module_bytes,
                      p.relay_aggregates)
        kk, jj = np.nonzero(tl.uploader)
        start, bits, a = tl.start[kk, jj], tl.bits[kk, jj], p.snr_hz[d][jj]
        budget = p.edge_bandwidth_hz[self.edge]
        out = np.full(k, np.inf)
        keep = np.ones(k, dtype=bool)
        if below is not None:
            slack = below - start
            with np.errstate(divide="ignore"):
                need = min_bandwidth(np.where(slack > 0, bits / np.where(slack > 0, slack, 1.0), np.inf), a)
            keep = np.bincount(kk, weights=np.where(np.isfinite(need), need, 1e300), minlength=k) <= budget
            on = keep[kk]
            kk, start, bits, a = np.cumsum(keep)[kk[on]] - 1, start[on], bits[on], a[on]
        out[keep] = minmax_bandwidth(kk, start, bits, a, np.full(int(keep.sum()), budget), rtol=1e-9)[0]
        return out

    def relay_ok(self, relay: np.ndarray) -> np.ndarray:
        """[K] one hop, links exist, capacity respected."""
        n = self.n
        own = relay == np.arange(n)
        linked = own | (self.rate[np.arange(n)[None, :], relay] > 0)
        one_hop = np.take_along_axis(own, relay, axis=1)
        ok = linked.all(axis=1) & one_hop.all(axis=1)
        cap = self.problem.relay_capacity
        if cap is not None:
            served = np.zeros(relay.shape, dtype=int)
            for j in range(n):
                served[:, j] = np.sum((relay == j) & ~own, axis=1)
            ok &= (served <= cap).all(axis=1)
        return ok
