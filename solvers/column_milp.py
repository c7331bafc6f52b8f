"""The parts every per-edge column MILP shares (solvers/latency_model.py, solvers/union_model.py): the rows of the
choice itself (at most one column per device, coverage with each module's minimal covers, one hop, relay capacity)
and one HiGHS run through highspy's bare solver (no banner on stdout).

Columns 0..k-1 are the binary columns (device, module subset, route) of `EdgeColumns`; continuous helper variables
follow, each with its cost and upper bound. A row is ({variable: coefficient}, lower, upper).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from solvers.covers import cover_sets
from solvers.highs import cutoff_bound, highs, highs_lp, require_bare_highs, run
from solvers.instance import RoundProblem

if TYPE_CHECKING:
    from solvers.latency_model import EdgeColumns

INF = math.inf
Row = tuple[dict[int, float], float, float]


class Sparse:
    """Rows kept as coordinate arrays (numpy-built rows need no dict per row): `add` appends rows at once,
    `rows` appends dict rows; `csr` gives HiGHS's row-wise matrix."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.m = 0

    def add(self, row: np.ndarray, col: np.ndarray, val: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Rows m .. m + len(lo) - 1: entries (row (relative), col, val) and the bounds of each new row."""
        lo, hi = np.atleast_1d(np.asarray(lo, dtype=float)), np.atleast_1d(np.asarray(hi, dtype=float))
        self.r.append(np.asarray(row, dtype=np.int64) + self.m)
        self.c.append(np.asarray(col, dtype=np.int64))
        self.v.append(np.asarray(val, dtype=float))
        self.lo.append(lo)
        self.hi.append(hi)
        self.m += lo.size

    def rows(self, rows: list[Row]) -> None:
        if not rows:
            return
        lens = [len(r[0]) for r in rows]
        self.add(np.repeat(np.arange(len(rows)), lens), np.fromiter((j for r in rows for j in r[0]), np.int64),
                 np.fromiter((v for r in rows for v in r[0].values()), float), np.array([r[1] for r in rows]),
                 np.array([r[2] for r in rows]))

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(starts, index, value, lower, upper) of the rows, entries sorted by row."""
        r, c, v = (np.concatenate(a) if a else np.zeros(0) for a in (self.r, self.c, self.v))
        order = np.argsort(r, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(r.astype(np.int64), minlength=self.m))])
        lo = np.concatenate(self.lo) if self.lo else np.zeros(0)
        hi = np.concatenate(self.hi) if self.hi else np.zeros(0)
        return starts, c[order].astype(np.int32), v[order], lo, hi


class Extra:
    """The continuous variables after the k binary columns: `add` returns a new one's index."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.cost: list[float] = []
        self.upper: list[float] = []

    def add(self, cost: float = 0.0, upper: float = INF) -> int:
        self.cost.append(cost)
        self.upper.append(upper)
        return self.k + len(self.cost) - 1


def minimal_covers(p: RoundProblem, m: int, demand: float) -> tuple[np.ndarray, np.ndarray]:
    """The devices that can train module m (one edge) and every minimal cover of its demand among them (rows of
    0/1 over those devices): a set whose samples meet the demand and lose it without any one member."""
    fits = p.eligible[:, m] & (p.samples > 0) & (p.module_memory_bytes[m] <= p.memory_bytes * (1 + 1e-12))
    holders = np.flatnonzero(fits)
    return holders, cover_sets(p.samples[holders], demand)


def choice_rows(p: RoundProblem, c: EdgeColumns, extra: Extra) -> list[Row]:
    """At most one column per device; coverage per module, with its minimal covers as extra columns (the convex
    hull of its knapsack: a device trains m at least as often as the covers use it); one hop (s -> d only if d
    sends direct); relay capacity."""
    rows: list[Row] = []
    for i in range(p.num_devices):
        rows.append(({int(j): 1.0 for j in np.flatnonzero(c.dev == i)}, -INF, 1.0))
    demand = p.coverage_demand()[0]
    scale = max(float(demand.max()), 1.0)
    for m in np.flatnonzero(demand > 0):
        on = np.flatnonzero(c.mask[:, m] > 0)
        rows.append(({int(j): float(p.samples[c.dev[j]]) / scale for j in on}, demand[m] / scale * (1 - 1e-9), INF))
        holders, covers = minimal_covers(p, int(m), float(demand[m]))
        if covers.shape[0] == 0:
            continue
        w = [extra.add() for _ in range(covers.shape[0])]
        rows.append(({q: 1.0 for q in w}, 1.0, INF))
        for a, i in enumerate(holders):
            coefs = {int(j): 1.0 for j in np.flatnonzero((c.mask[:, m] > 0) & (c.dev == i))}
            coefs.update({w[int(q)]: -1.0 for q in np.flatnonzero(covers[:, a])})
            rows.append((coefs, 0.0, INF))
    relayed = c.relayed
    for s_, d_ in zip(p.d2d_src, p.d2d_dst, strict=True):
        frm = np.flatnonzero((c.dev == s_) & (c.up == d_))
        via = np.flatnonzero((c.dev == d_) & relayed)
        if frm.size and via.size:
            rows.append(({**{int(j): 1.0 for j in frm}, **{int(j): 1.0 for j in via}}, -INF, 1.0))
    if p.relay_capacity is not None:
        for u in np.unique(c.up[relayed]):
            rows.append(({int(j): 1.0 for j in np.flatnonzero(relayed & (c.up == u))}, -INF,
                         float(p.relay_capacity)))
    return rows


def highs_model(rows: list[Row] | Sparse, cost: np.ndarray, usable: np.ndarray, extra: Extra,
                integer: bool = True, seconds: float | None = None, **options: Any) -> tuple[Any, Any]:
    """(highspy, a bare HiGHS object holding the model): binary columns (unusable ones fixed at 0), or with
    integer=False its LP relaxation (they lie in [0, 1]); no output; seconds and options as solvers/highs.py's
    `highs`."""
    highspy, bare = require_bare_highs("the column models")
    k, ne = cost.size, len(extra.cost)
    nv = k + ne
    inf = highspy.kHighsInf
    if not isinstance(rows, Sparse):
        s = Sparse()
        s.rows(rows)
        rows = s
    starts, index, value, lo, hi = rows.csr()
    lp = highs_lp(highspy, np.concatenate([np.where(usable, cost, 0.0), np.array(extra.cost)]), np.zeros(nv),
                  np.concatenate([usable.astype(float), np.minimum(np.array(extra.upper), inf)]),
                  np.maximum(lo, -inf), np.minimum(hi, inf), starts.astype(np.int32), index, value, rowwise=True,
                  integer=[True] * k + [False] * ne if integer else None)
    return highspy, highs(bare, lp, seconds, **options)


def run_milp(rows: list[Row] | Sparse, cost: np.ndarray, usable: np.ndarray, extra: Extra, time_limit: float,
             gap: float, cutoff: float, options: dict[str, Any] | None = None, start: np.ndarray | None = None,
             saved: list[np.ndarray] | None = None) -> tuple[str, np.ndarray | None, float]:
    """min cost . v + extra costs over the rows, v binary (unusable columns fixed at 0), pruned above `cutoff`:
    (infeasible | solved | unknown, all variable values or None, HiGHS's dual bound). options: more HiGHS options.
    start: the binary columns of a warm start (the others 0; HiGHS completes the continuous part, and drops the
    start if it is infeasible). saved: when given, every improving solution HiGHS found is appended (values of
    all variables, first found first): each is a plan to price exactly, not only the last."""
    # objective_bound: prune every choice that cannot fit the band
    opts = {"mip_rel_gap": float(gap), "objective_bound": float(cutoff), **(options or {})}
    if saved is not None:
        opts["mip_improving_solution_save"] = True
    _, h = highs_model(rows, cost, usable, extra, seconds=time_limit, **opts)
    k = cost.size
    if start is not None:
        ones = np.asarray(start, dtype=np.int32)
        idx = np.arange(k, dtype=np.int32)
        h.setSolution(k, idx, np.isin(idx, ones).astype(float))
    run(h)
    if saved is not None:
        saved.extend(np.asarray(s.col_value) for s in h.getSavedMipSolutions())
    bound = cutoff_bound(h, cutoff)
    if bound == math.inf:  # nothing below the cutoff
        return "infeasible", None, math.inf
    if h.getInfo().primal_solution_status != 2:  # no feasible point
        return "unknown", None, bound
    return "solved", np.asarray(h.getSolution().col_value), bound
