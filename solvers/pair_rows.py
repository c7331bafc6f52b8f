"""The rows of solvers/pair_dual.py's LP without its matrix: A^T lambda and a few columns' entries on demand.

The LP is solvers/route_lp.py's `RouteLP` without covers, union or band rows: rows (device: at most one column;
coverage: samples per module >= demand, scaled by the largest demand; pair: a route via relay j of class k counts
against j's direct columns of class k), columns (device, subset) then routes. Column generation adds a few thousand
of an edge's 10^4-10^5 columns to HiGHS, and prices all of them by A^T lambda: both come from the columns' own
arrays here (a column's coverage, its device, its pair rows), so the edge's whole sparse matrix (what `RouteLP`
builds, 40 % of an edge's CPU at 1,000 devices) is never assembled. The same rows, bounds and entries as `RouteLP`
(tests/test_solver_pair_dual.py compares them).
"""

from __future__ import annotations

import numpy as np

from solvers.highs import require_bare_highs
from solvers.subset_energy import runs


class PairRows:
    """Rows and columns of the pair-row LP (module doc) over columns (dev, mbits) and routes (lcol, ldst, lcls),
    the relays' direct columns of class ccls."""

    def __init__(
        self,
        dev: np.ndarray,
        mbits: np.ndarray,
        samples: np.ndarray,
        demand: np.ndarray,
        lcol: np.ndarray,
        ldst: np.ndarray,
        lcls: np.ndarray,
        ccls: np.ndarray,
    ) -> None:
        self.highspy, self.bare = require_bare_highs("the pair-row LP")
        need = demand > 0
        scale = demand[need].max()
        devs, self.local = np.unique(dev, return_inverse=True)
        k, nl = dev.size, lcol.size
        self.k, self.lcol = k, lcol
        self.nd, self.nc = devs.size, int(need.sum())
        self.cov = mbits[:, need] * (samples[dev] / scale)[:, None]  # [K, need]
        kind, at = lcls.astype(np.int64), ccls.astype(np.int64)
        ncls = int(max(kind.max(initial=0), at.max(initial=0))) + 1
        # routes come in runs of one (link, class) (subset_energy.routes): the ids of the runs' keys, repeated
        sender = dev[lcol].astype(np.int64)
        first, length = runs(sender, ldst, kind)
        link_id = np.unique(sender[first] * (int(dev.max()) + 1) + ldst[first], return_inverse=True)[1]
        run_id = np.unique(link_id * ncls + kind[first], return_inverse=True)[1]
        self.pair_id = np.repeat(run_id, length)
        once = first[np.unique(run_id, return_index=True)[1]]  # a pair id fixes its relay and class
        npair = once.size
        self.npair0 = self.nd + self.nc  # the first pair row
        self.n, self.m = k + nl, self.npair0 + npair
        # the relays' direct columns: -1 in each pair row of their (device, class) key
        pair_key = ldst[once].astype(np.int64) * ncls + kind[once]  # [pairs], pair id order
        by_key = np.argsort(pair_key, kind="stable")  # pair ids ascending within a key
        self.key_sorted, self.pair_by_key = pair_key[by_key], by_key
        col_key = dev.astype(np.int64) * ncls + at
        self.key_lo = np.searchsorted(self.key_sorted, col_key)
        self.key_n = np.searchsorted(self.key_sorted, col_key, side="right") - self.key_lo  # [K] pair rows of each
        inf = self.highspy.kHighsInf
        self.row_lo = np.concatenate([np.full(self.nd, -inf), demand[need] / scale, np.full(npair, -inf)])
        self.row_hi = np.concatenate([np.ones(self.nd), np.full(self.nc, inf), np.zeros(npair)])
        self.devrow = np.concatenate([self.local, self.local[lcol]])  # a column's device row
        # its last row (as RouteLP's entries end): a route's pair row; a direct column's largest pair row, or -1
        top = by_key[np.clip(self.key_lo + self.key_n - 1, 0, None)] if by_key.size else np.zeros(k, dtype=np.int64)
        last_direct = np.where(self.key_n > 0, self.npair0 + top, -1)
        self.group = np.concatenate([last_direct, self.npair0 + self.pair_id])
        nz = self.cov[self.cov > 0]
        self.min_coef = min(1.0, float(nz.min(initial=1.0)))
        self._nz: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def shift(self, lam: np.ndarray) -> np.ndarray:
        """[K + L] A^T lam (lam [m], HiGHS's row order)."""
        cov = self.cov @ lam[self.nd : self.npair0]
        pair = lam[self.npair0 :]
        per_key = np.concatenate([[0.0], np.cumsum(pair[self.pair_by_key])])  # prefix sums in key order
        minus = per_key[self.key_lo + self.key_n] - per_key[self.key_lo]
        base = lam[self.local] + cov
        out = np.empty(self.n)
        np.subtract(base, minus, out=out[: self.k])
        np.add(base[self.lcol], pair[self.pair_id], out=out[self.k :])
        return out

    def entries(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start [len(cols) + 1], row index, value) of the columns `cols` (CSC, rows ascending in a column)."""
        if self._nz is None:
            ci, mj = np.nonzero(self.cov)
            cnt = np.bincount(ci, minlength=self.k)
            self._nz = (mj, self.cov[ci, mj], cnt, np.concatenate([[0], np.cumsum(cnt)[:-1]]))
        mj, cv, cnt, cstart = self._nz
        base = np.where(cols < self.k, cols, self.lcol[np.maximum(cols - self.k, 0)])
        is_route = cols >= self.k
        npr = np.where(is_route, 1, self.key_n[base])
        size = 1 + cnt[base] + npr
        start = np.concatenate([[0], np.cumsum(size)]).astype(np.int32)
        total = int(start[-1])
        index = np.empty(total, dtype=np.int32)
        value = np.empty(total)
        index[start[:-1]] = self.devrow[cols]
        value[start[:-1]] = 1.0
        c_rep = np.repeat(np.arange(cols.size), cnt[base])  # coverage entries
        within = np.arange(c_rep.size) - np.repeat(np.cumsum(cnt[base]) - cnt[base], cnt[base])
        src = cstart[base][c_rep] + within
        pos = start[:-1][c_rep] + 1 + within
        index[pos] = self.nd + mj[src]
        value[pos] = cv[src]
        p_rep = np.repeat(np.arange(cols.size), npr)  # pair entries
        within = np.arange(p_rep.size) - np.repeat(np.cumsum(npr) - npr, npr)
        pos = start[:-1][p_rep] + 1 + cnt[base][p_rep] + within
        route = is_route[p_rep]
        nearest = np.minimum(self.key_lo[base][p_rep] + within, max(self.pair_by_key.size - 1, 0))
        pid = np.where(route, self.pair_id[np.maximum(cols[p_rep] - self.k, 0)], self.pair_by_key[nearest])
        index[pos] = self.npair0 + pid
        value[pos] = np.where(route, 1.0, -1.0)
        return start, index, value
