"""The subset LP with its pair rows, one solve an edge, its dual evaluated at every latency (lambda > 0, large rounds).

solvers/subset_energy.py solves its LP (columns: device, subset, route; rows: one column a device, coverage, and
the one-hop pair rows: a route via relay j of class k counts against j's own columns of that class) once per edge,
band price and latency: at 1,000 devices within 2 s it reaches few edges. Here each edge's LP is solved once, at
unlimited latency (every column that can finish at all is usable), and its row multipliers price every latency:
beta >= 0 on the coverage rows, mu >= 0 on the pair rows. By weak duality, with the device rows kept (at most one
column a device), every plan of latency <= T spends on edge e at least

    sum_r beta_r d_r - nu_e B_e + sum_i min(0, min over device i's columns k usable by T of c_k(T) - a_k . (beta, -mu))

(c_k(T): the column's cost at T, `EdgeEnergy.costs`; a_k its coverage and pair entries). With the LP's optimal
multipliers this is the LP's value at T = inf. At T < inf a column costs at least its cost at inf (a plan of latency
<= T also has latency <= inf), and fewer columns are usable, so the value only rises from there: only the columns
whose reduced cost at inf is negative can enter the minimum, and later latencies price those alone (a few per
device). The value comes from the multipliers, never from HiGHS's objective, so it is valid whatever the LP returned.

What it gives over the subset columns' Lagrangian (solvers/subset_dual.py): a relay must upload (its own column's
class pays its upload), priced by the LP's exact multipliers rather than subgradient steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from solvers.clock import Clock, now, set_limits
from solvers.energy_bound import EdgeFloor, EnergyBound
from solvers.highs import highs, highs_lp, run
from solvers.instance import RoundProblem
from solvers.pair_rows import PairRows
from solvers.subset_dual import knapsack_beta
from solvers.subset_energy import EdgeEnergy

PAIR_DUAL = True
"""Clocked rounds over SUBSET_CLOCKED_DEVICES (solvers/bounds.py) get this bound on the edges its LPs reach."""
NU_FACTOR = 1.5
"""The LP's band price: this times the knapsack's best price at T = inf (any price is valid). The knapsack's is best
for the knapsack, not for the LP, which sees each device's concave upload cost in its whole payload: at 1.5 the LP's
value summed over edges is 1.0-1.4 % higher than at 1 on five 500- and 1,000-device rounds, within 0.1 % of the
best of 1-2 (experiments/solver_pair_dual_nu.py)."""
CLASSES = 1
"""Payload classes of a relay's own columns in the LP (solvers/relay_price.py): a relayed bit is priced by the secant
of its relay's upload from the largest own payload of the class. 2 lifts the LPs' sum at T = inf on 1,000-device seed
0 at lambda 0.5 from 5,088 to 5,239 J (plan 6,778 J) for 1.6x their CPU: within the 2 s it paid only where the LPs
reach every edge (experiments/results/solver_scale_gap/s24/NOTES.md)."""
LEVELS = 2
"""Load levels per relay (solvers/relay_levels.py) in an edge's LP where the clock allows (`PairDual.levels`): 2 lift
the LPs' sum at T = inf on 1,000-device rounds at lambda 0.5 by 2.9-3.0 % for 2.2-2.4x their CPU."""
LEVEL_COST = 2.5
"""An edge's LP with LEVELS over its flat LP, in clock seconds, until both are measured."""
ROUNDS = 30
"""Most rounds of column generation an edge (each a warm re-solve of the restricted LP and one pricing pass)."""
LP_SHARE = 0.75
"""Part of the bound's time left that the edges' LPs may take (the latency-energy search needs the rest)."""


@dataclass
class EdgeDual:
    """One edge's multipliers, reduced to the columns that can enter the minimum (negative reduced cost at inf)."""

    sub: EdgeEnergy  # the edge's columns restricted to those (and the direct columns their routes hang on)
    pick: np.ndarray  # positions of those columns in `sub.costs`' output
    owner: np.ndarray  # [len(pick)] their device
    shift: np.ndarray  # [len(pick)] a_k . (beta, -mu)
    at_inf: np.ndarray  # [len(pick)] their costs at T = inf
    const: float  # sum_r beta_r d_r - nu B_e, in J
    nu: float

    def value(self, t: float) -> float:
        """The module doc's lower bound on the edge's energy of plans of latency <= t (J; inf: none finishes)."""
        cost = self.sub.costs(t, self.nu, 0.0)[self.pick]
        cost = np.where(np.isfinite(cost), np.maximum(cost, self.at_inf), np.inf)
        reduced = cost - self.shift
        best = np.zeros(int(self.owner.max(initial=-1)) + 1)
        np.minimum.at(best, self.owner, np.where(np.isfinite(reduced), reduced, 0.0))
        val = self.const + float(best.sum())
        return val - 1e-9 * abs(val)


def edge_dual(p: RoundProblem, e: int, demand: np.ndarray, nu: float, beta: np.ndarray | None = None,
              clock: Clock | None = None, levels: int = 1) -> EdgeDual | None:
    """Edge e's LP at T = inf and band price nu by column generation (`generate`), and its best multipliers; None
    where the edge has no columns or no LP gave multipliers. beta [M]: J per sample of each module, to choose the
    first columns (the knapsack's critical ratios); levels: load levels per relay (solvers/relay_levels.py)."""
    ee = EdgeEnergy.of(p, e, demand, classes=int(CLASSES), levels=levels, lp=False)
    if ee is None:
        return None
    cost = ee.costs(math.inf, nu, 0.0)
    usable = np.isfinite(cost)
    if not usable.any():
        return None
    lp = PairRows(ee.dev, ee.mbits, p.samples, demand, ee.lcol, ee.ldst, ee.lcls, ee.ccls)
    worth = (ee.mbits @ (np.zeros(p.num_modules) if beta is None else beta)) * p.samples[ee.dev]
    score = cost[: ee.dev.size] - worth  # the direct columns' (the first ones)
    got = generate(lp, cost, usable, score, clock)
    if got is None:
        return None
    lam, const, shift = got
    k = ee.dev.size
    neg = np.flatnonzero(usable & (cost - shift < 0))
    direct, route = neg[neg < k], neg[neg >= k] - k
    held = np.zeros(k, dtype=bool)  # direct columns, and those the kept routes hang on
    held[direct] = True
    held[ee.lcol[route]] = True
    keep = np.flatnonzero(held)
    sub = replace(ee, dev=ee.dev[keep], mbits=ee.mbits[keep], pay=ee.pay[keep], cycles=ee.cycles[keep],
                  lcol=np.searchsorted(keep, ee.lcol[route]), ldst=ee.ldst[route], lrate=ee.lrate[route],
                  lcls=ee.lcls[route], ltop=ee.ltop[route], lmin=ee.lmin[route], llead=ee.llead[route])
    if ee.clvl.size:  # load levels (solvers/relay_levels.py)
        sub = replace(sub, clvl=ee.clvl[keep], cends=ee.cends[keep], ctop=ee.ctop[keep], lends=ee.lends[route])
    pick = np.concatenate([np.searchsorted(keep, direct), keep.size + np.arange(route.size)])
    who = np.concatenate([ee.dev[direct], ee.dev[ee.lcol[route]]])  # their devices, numbered from 0 in order
    rank = np.zeros(p.num_devices, dtype=np.int64)
    rank[who] = 1
    return EdgeDual(sub, pick, (np.cumsum(rank) - 1)[who], shift[neg], cost[neg],
                    const - nu * float(p.edge_bandwidth_hz[e]), nu)


def generate(lp: PairRows, cost: np.ndarray, usable: np.ndarray, score: np.ndarray,
             clock: Clock | None = None) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Row multipliers of the LP `lp` at column costs `cost` (usable: the columns that can be used) by column
    generation: first, per device and group its direct column of least `score` ([K], the direct columns'; routes
    enter by their prices: with load levels 0.65x HiGHS's time, the same value within 1e-5), then per round
    the columns of negative reduced cost (the least per device and group) until none is left, the restricted LP's
    value is reached, ROUNDS pass or the clock runs out; coverage slacks at a large cost keep every restricted LP
    feasible. Each round's row duals y (HiGHS's signs: >= 0 on a >= row, <= 0 on a <= row), clipped to those signs
    with the device rows dropped, give the module doc's bound at T = inf,
    sum_r lam_r bound_r + sum_i min(0, min over i's usable columns of cost - A^T lam), valid whatever y is.
    Returns (lam, sum_r lam_r bound_r, A^T lam) of the round whose bound was largest."""
    hs = lp.highspy
    lo, hi = lp.row_lo, lp.row_hi
    ge, le = np.isfinite(lo) & ~np.isfinite(hi), ~np.isfinite(lo) & np.isfinite(hi)
    devrow, group = lp.devrow, lp.group  # a column's device row; its largest pair row (-1: none)
    ndev = lp.nd
    tag = devrow.astype(np.int64) * (lp.m + 2) + group + 1  # (device, group), in that order
    if ndev * (lp.m + 2) > 4 * lp.n + 1_000_000:  # numbered densely where the pairs would be too many
        tag = np.unique(tag, return_inverse=True)[1]
    ntag = int(tag.max()) + 1
    seg = np.flatnonzero(np.diff(devrow, prepend=-1))  # runs of one device's columns (a device's least: of its runs')
    seg_dev = devrow[seg]
    open_cost = np.where(usable, cost, np.inf)

    def least(cand: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Of the candidate columns, the one of least key per (device, group)."""
        low = np.full(ntag, np.inf)
        np.minimum.at(low, tag[cand], key[cand])
        hit = cand[key[cand] <= low[tag[cand]]]
        return hit[np.unique(tag[hit], return_index=True)[1]]

    def bound(y: np.ndarray) -> tuple[float, np.ndarray, float, np.ndarray, np.ndarray]:
        lam = np.where(ge, np.maximum(y, 0.0), np.where(le, np.minimum(y, 0.0), 0.0))
        lam[:ndev] = 0.0
        const = float(np.sum(lam[ge] * lo[ge]) + np.sum(lam[le] * hi[le]))
        shift = lp.shift(lam)
        open_reduced = open_cost - shift  # inf where unusable
        low = np.zeros(ndev)
        np.minimum.at(low, seg_dev, np.minimum.reduceat(open_reduced, seg))
        return const + float(low.sum()), lam, const, shift, open_reduced

    cov_rows = np.flatnonzero(ge)
    add = least(np.flatnonzero(usable[: lp.k]), score)  # direct columns first: routes enter by their prices
    big = 10.0 * float(np.sum(np.abs(cost[add]))) / max(lp.min_coef, 1e-12) + 1.0
    nc = cov_rows.size
    h = highs(lp.bare, highs_lp(hs, np.full(nc, big), np.zeros(nc), np.full(nc, hs.kHighsInf), lo, hi,
                                np.arange(nc + 1, dtype=np.int32), cov_rows.astype(np.int32), np.ones(nc)))
    inside = np.zeros(lp.n, dtype=bool)
    tol = 1e-9 * float(np.abs(cost[usable]).max(initial=1.0))
    best: tuple[float, np.ndarray, float, np.ndarray, np.ndarray] | None = None
    for _ in range(ROUNDS):
        if add.size == 0:
            break
        inside[add] = True
        begin, index, value = lp.entries(add)
        h.addCols(add.size, cost[add], np.zeros(add.size), np.ones(add.size), int(begin[-1]), begin[:-1], index,
                  value)
        if clock is not None and clock.bounded:
            set_limits(h, clock.left())
        run(h)
        if h.getModelStatus() != hs.HighsModelStatus.kOptimal:
            break
        y = np.asarray(h.getSolution().row_dual, dtype=float)
        got = bound(y)
        if best is None or got[0] > best[0]:
            best = got
        restricted = float(h.getInfo().objective_function_value)  # at least the LP's value
        if got[0] >= restricted - 1e-4 * abs(restricted) or (clock is not None and clock.expired()):
            break
        reduced = got[4] - np.minimum(y[:ndev], 0.0)[devrow]
        add = least(np.flatnonzero(~inside & (reduced < -tol)), reduced)
    if best is None:
        return None
    return best[1], best[2], best[3]


class PairDual:
    """E_lb per edge: the larger of the floor it is given (and of `then`'s, another EdgeFloor) and the edge's LP
    dual (module doc), for the edges `solve` reached."""

    def __init__(self, p: RoundProblem, then: EdgeFloor | None = None) -> None:
        self.p = p
        self.then = then
        self.duals: dict[int, EdgeDual] = {}

    def solve(self, clock: Clock | None = None, order: np.ndarray | None = None) -> None:
        """One LP an edge (at NU_FACTOR x the knapsack's best band price at T = inf), the edges in `order`
        (default: by the knapsack's energy, largest first) while the clock lasts."""
        p = self.p
        eb = EnergyBound.of(p)
        floor, nu = eb.prices(math.inf, clock=clock)
        demand = eb.demand
        beta = knapsack_beta(eb, nu, math.inf)
        if order is None:
            order = np.argsort(-np.where(np.isfinite(floor), floor, -np.inf))
        todo = [int(e) for e in order if np.any(demand[e] > 0)]
        spent = {1: [0.0, 0], LEVELS: [0.0, 0]}  # per level count: clock seconds and edges
        for k, e in enumerate(todo):
            if clock is not None and clock.expired():
                break
            levels = self.levels(clock, spent, len(todo) - k - 1)
            began = now()
            got = edge_dual(p, e, demand[e], NU_FACTOR * float(nu[e]), beta[e], clock, levels)
            spent[levels][0] += now() - began
            spent[levels][1] += 1
            if got is not None:
                self.duals[e] = got

    @staticmethod
    def levels(clock: Clock | None, spent: dict[int, list], after: int) -> int:
        """LEVELS for the next edge where the clock leaves, after its LP, the `after` edges left their flat LPs (the
        seconds an edge measured so far, else LEVEL_COST x the other's); 1 for the first edge (it measures them)."""
        if LEVELS <= 1 or clock is None or not clock.bounded:
            return LEVELS
        flat, lv = (s / n if n else 0.0 for s, n in (spent[1], spent[LEVELS]))
        if not flat and not lv:
            return 1
        flat = flat or lv / LEVEL_COST
        lv = lv or flat * LEVEL_COST
        return LEVELS if clock.left() - lv >= 1.2 * after * flat else 1

    def energy_edges(self, t: float, nu_ref: np.ndarray, floor: np.ndarray, clock: Clock | None = None) -> np.ndarray:
        """[E] per edge the larger of `floor`, `then`'s value and the edge's dual at latency <= t."""
        out = np.array(floor, dtype=float)
        if self.then is not None:
            out = self.then.energy_edges(t, nu_ref, out, clock)
        for e, d in self.duals.items():
            if math.isfinite(out[e]):  # an edge no cover fits keeps inf
                out[e] = max(out[e], d.value(t))
        return out

    def tangent_energy(self, a: float, b: float) -> tuple[float, float] | None:
        """No tangents in T here (`EdgeFloor`: the latency-energy bound splits its pieces instead)."""
        return None
