"""The subset-column LP of solvers/subset_energy.py: columns (device, subset, route), one per device, coverage with
each module's minimal covers, one-hop pair rows (per class of the relay's own column: it trains nothing, or its
payload bucket), and with
`relay_aggregates` union rows; re-solved from its basis as the costs change (HiGHS through highspy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from solvers.covers import LP_COVER_HOLDERS, cover_sets
from solvers.highs import highs, highs_lp, require_bare_highs, run, run_settled


class RouteLP:
    """min c x over columns (device, subset, route): at most one per device, samples per module >= demand, and
    one hop: the columns of device i via relay j of class k (lcls) sum to at most j's direct columns of class k
    (ccls: 0 its empty column, others by payload, solvers/relay_price.py; default one class), 0 <= x <= 1.
    Between calls only the costs (and which columns are usable) change: HiGHS re-solves from its basis."""

    def __init__(self, dev: np.ndarray, mbits: np.ndarray, samples: np.ndarray, demand: np.ndarray,
                 lcol: np.ndarray, ldst: np.ndarray, covers: bool = False, union: bool = False,
                 lcls: np.ndarray | None = None, ccls: np.ndarray | None = None, band_row: bool = False) -> None:
        self.highspy, self.bare = require_bare_highs("the subset energy LP")
        need = demand > 0
        scale = demand[need].max()
        devs, local = np.unique(dev, return_inverse=True)
        k, nl = dev.size, lcol.size
        cov = mbits[:, need] * (samples[dev] / scale)[:, None]  # [K, need]
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []

        def add(r_: np.ndarray, c_: np.ndarray, v_: np.ndarray) -> None:
            rows.append(r_)
            cols.append(c_)
            vals.append(v_)

        add(local, np.arange(k), np.ones(k))  # direct columns: device row, coverage rows
        ci, mj = np.nonzero(cov)
        add(devs.size + mj, ci, cov[ci, mj])
        add(local[lcol], k + np.arange(nl), np.ones(nl))  # route columns k + l: device row, coverage rows
        li, lm = np.nonzero(cov[lcol])
        add(devs.size + lm, k + li, cov[lcol][li, lm])
        npair = devs.size + int(need.sum())
        link_id = np.unique(dev[lcol] * (int(dev.max()) + 1) + ldst, return_inverse=True)[1]
        kind = np.zeros(nl, dtype=np.int64) if lcls is None else lcls.astype(np.int64)
        at = np.zeros(k, dtype=np.int64) if ccls is None else ccls.astype(np.int64)
        pair_id = np.unique(link_id * (int(max(kind.max(initial=0), at.max(initial=0))) + 1) + kind,
                            return_inverse=True)[1]
        add(npair + pair_id, k + np.arange(nl), np.ones(nl))  # +1 in its (link, relay's class) pair row
        once = np.unique(pair_id, return_index=True)[1]  # a pair id fixes its relay and class
        pairs = np.stack([pair_id[once], ldst[once], kind[once]], axis=1).astype(np.int64)
        if pairs.shape[0]:  # the relay's direct columns of that class: -1 in the pair row (grouped by (relay, class))
            ncls = int(max(kind.max(initial=0), at.max(initial=0))) + 1
            col_key = dev.astype(np.int64) * ncls + at
            by_key = np.argsort(col_key, kind="stable")
            sorted_key = col_key[by_key]
            pair_key = pairs[:, 1] * ncls + pairs[:, 2]
            lo_, hi_ = np.searchsorted(sorted_key, pair_key), np.searchsorted(sorted_key, pair_key, side="right")
            size = hi_ - lo_
            step = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
            mine = by_key[np.repeat(lo_, size) + step]
            add(npair + np.repeat(pairs[:, 0], size), mine, -np.ones(mine.size))
        self.n, self.m = k + nl, npair + pairs.shape[0]
        inf = self.highspy.kHighsInf
        row_lo = [np.full(devs.size, -inf), demand[need] / scale, np.full(pairs.shape[0], -inf)]
        row_hi = [np.ones(devs.size), np.full(int(need.sum()), inf), np.zeros(pairs.shape[0])]
        self.ny = 0  # cover variables after the n columns (cost 0, in [0, 1])
        if covers:  # each module's minimal covers: the convex hull of its knapsack (as in solvers/column_milp.py)
            col_dev = np.concatenate([dev, dev[lcol]])
            col_bits = np.concatenate([mbits, mbits[lcol]])
            for m in np.flatnonzero(need):
                holders = np.unique(dev[mbits[:, m] > 0])
                found = cover_sets(samples[holders], float(demand[m]), LP_COVER_HOLDERS)
                if found.shape[0] == 0:
                    continue
                y = self.n + self.ny + np.arange(found.shape[0])
                self.ny += found.shape[0]
                add(np.full(y.size, self.m), y, np.ones(y.size))  # the module's covers sum to >= 1
                for a_, i in enumerate(holders):  # device i trains m at least as often as the covers use it
                    mine = np.flatnonzero((col_dev == i) & (col_bits[:, m] > 0))
                    use = y[found[:, a_]]
                    add(np.full(mine.size + use.size, self.m + 1 + a_), np.concatenate([mine, use]),
                        np.concatenate([np.ones(mine.size), -np.ones(use.size)]))
                row_lo.append(np.concatenate([[1.0], np.zeros(holders.size)]))
                row_hi.append(np.full(1 + holders.size, inf))
                self.m += 1 + holders.size
        self.nz = self.nb = 0  # union variables z_j, then band variables y_j (relay_aggregates with the band row)

        def group_rows(first_var: int) -> int:
            """Per uploader j (variables first_var + local j): an own row v_j - sum_o w_o x_o >= 0 over j's direct
            columns and a row v_j - sum_r w_r x_r >= 0 per link into j (a device has one column: v_j >= each
            member's w alone); the w are set per solve. Returns the entry offset of the -w entries ([K + L])."""
            v = first_var + np.arange(devs.size)
            nrow = devs.size + int(link_id.max(initial=-1)) + 1
            add(self.m + np.arange(devs.size), v, np.ones(devs.size))
            if nl:
                dst_local = np.searchsorted(devs, ldst)
                first = np.unique(link_id, return_index=True)[1]
                add(self.m + devs.size + np.arange(first.size), v[dst_local[first]], np.ones(first.size))
            offset = sum(x.size for x in rows)
            add(self.m + local, np.arange(k), -np.ones(k))
            add(self.m + devs.size + link_id, k + np.arange(nl), -np.ones(nl))
            row_lo.append(np.zeros(nrow))
            row_hi.append(np.full(nrow, inf))
            self.m += nrow
            return offset

        union_first = band_first = -1
        if union:  # z_j >= each member's upload alone (its cost 1 in the objective)
            self.nz = devs.size
            union_first = group_rows(self.n + self.ny)
        self.band_row = band_row  # the columns' least bands (units of B_e, set per solve) sum to at most 1
        if band_row and union:  # relays that aggregate: y_j >= each member's band alone, sum_j y_j <= 1
            self.nb = devs.size
            band_first = group_rows(self.n + self.ny + self.nz)
            add(np.full(devs.size, self.m), self.n + self.ny + self.nz + np.arange(devs.size), np.ones(devs.size))
            row_lo.append(np.array([-inf]))
            row_hi.append(np.ones(1))
            self.m += 1
        elif band_row:  # relays that forward: sum over columns of their bands <= 1 (an uploader's >= its parts' sum)
            band_first = sum(x.size for x in rows)
            add(np.full(self.n, self.m), np.arange(self.n), np.ones(self.n))
            row_lo.append(np.array([-inf]))
            row_hi.append(np.ones(1))
            self.m += 1
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        # by column, then row: the blocks above add each column's entries in ascending rows (device, coverage, pair,
        # cover, union and band rows, in that order), so a stable sort by column alone keeps them so (blocks of
        # ascending columns: a merge of runs, several times faster than sorting (column, row) keys)
        order = np.argsort(c, kind="stable")
        r, c, v = r[order], c[order], v[order]
        where = np.empty_like(order)  # an entry's position after the sort
        where[order] = np.arange(order.size)
        self.union_pos = where[union_first + np.arange(self.n)] if union else np.zeros(0, dtype=np.int64)
        self.band_pos = where[band_first + np.arange(self.n)] if band_row else np.zeros(0, dtype=np.int64)
        nc = self.n + self.ny + self.nz + self.nb
        self.start = np.concatenate([[0], np.cumsum(np.bincount(c, minlength=nc))]).astype(np.int32)
        self.index, self.value = r.astype(np.int32), v
        self.row_lo, self.row_hi = np.concatenate(row_lo), np.concatenate(row_hi)
        self.h: Any = None

    def _lp(self, c: np.ndarray, upper: np.ndarray, integer: list[bool] | None = None) -> Any:
        nc, inf = self.n + self.ny + self.nz + self.nb, self.highspy.kHighsInf
        return highs_lp(self.highspy, np.concatenate([c, np.zeros(self.ny), np.ones(self.nz), np.zeros(self.nb)]),
                        np.zeros(nc), np.concatenate([upper, np.ones(self.ny), np.full(self.nz + self.nb, inf)]),
                        self.row_lo, self.row_hi, self.start, self.index, self.value, integer=integer)

    def integer(self, cost: np.ndarray, time_limit: float, gap: float = 0.01,
                slack: float | None = None) -> np.ndarray | None:
        """[K + L] an integer solution (each device one column) of the program at costs [K + L] (inf: unusable),
        HiGHS's best within `time_limit` s of the solve's clock (its limits: clock.set_limits; a raw HiGHS time
        limit made the plan depend on load under budget="work") and relative `gap`; None where it found none.
        Forwarding relays only (no union or band rows). A fresh solver: the LP's own keeps its basis. slack: only
        the columns whose LP reduced cost is at most this part of the LP's value (a heuristic: a smaller program, not
        the optimum)."""
        if self.nz or self.band_row:
            raise ValueError("integer: forwarding relays without the band row only")
        usable = np.isfinite(cost)
        if slack is not None:
            status, value = self.solve(cost)
            if status != "optimal":
                return None
            reduced = np.asarray(self.h.getSolution().col_dual, dtype=float)[:self.n]
            usable &= reduced <= slack * abs(value)
        lp = self._lp(np.where(usable, cost, 0.0), usable.astype(float), integer=[True] * self.n + [False] * self.ny)
        h = run(highs(self.bare, lp, max(float(time_limit), 1e-3), mip_rel_gap=gap))
        if h.getInfo().primal_solution_status != 2:  # kSolutionStatusFeasible
            return None
        return np.asarray(h.getSolution().col_value, dtype=float)[:self.n]

    def primal(self) -> np.ndarray:
        """[K + L] the columns' values at the last solve."""
        return np.asarray(self.h.getSolution().col_value, dtype=float)[:self.n]

    def solve(self, cost: np.ndarray, member: np.ndarray | None = None,
              band: np.ndarray | None = None) -> tuple[str, float]:
        """(optimal | infeasible | other, value) at costs [K + L] (inf: the column cannot be used); with union rows,
        member [K + L]: each column's upload alone at its uploader (its coefficient in the uploader's row); with the
        band row, band [K + L]: each column's least band alone in units of B_e (its coefficient there)."""
        hs = self.highspy
        usable = np.isfinite(cost)
        c, upper = np.where(usable, cost, 0.0), usable.astype(float)
        if self.nz:
            if member is None:
                raise ValueError("member: the union rows need each column's upload alone")
            self.value[self.union_pos] = -np.where(usable & np.isfinite(member), member, 0.0)
        if self.band_row:
            if band is None:
                raise ValueError("band: the band row needs each column's least band")
            w = np.where(usable & np.isfinite(band), band, 0.0)
            self.value[self.band_pos] = -w if self.nb else w
        if self.h is None:
            self.h = highs(self.bare, self._lp(c, upper))
        elif self.nz or self.band_row:  # new coefficients: the model again, from the last basis (same rows and columns)
            basis = self.h.getBasis()
            self.h.passModel(self._lp(c, upper))
            self.h.setBasis(basis)
        else:
            idx = np.arange(self.n, dtype=np.int32)
            self.h.changeColsCost(self.n, idx, c)
            self.h.changeColsBounds(self.n, idx, np.zeros(self.n), upper)
        status = run_settled(self.h, hs)
        kind = {hs.HighsModelStatus.kOptimal: "optimal", hs.HighsModelStatus.kInfeasible: "infeasible"}.get(
            status, "other")
        return kind, float(self.h.getInfo().objective_function_value)
