"""Relay groups as columns with exact prices: a certified lower bound on E_lb(T), the least energy of any plan of
one edge that finishes by T (lambda > 0, one-hop relays, fixed power and frequency).

A *group* is an uploader j with its own module subset (possibly empty) and the devices that relay through it, each
with its subset. Its price at latency T is exact (solvers/group_price.py): compute, the D2D hops, and one upload of
U bits (the sum of the parts, or with `relay_aggregates` the union of their modules) starting at S = the last ready
time (j's compute, each member's arrival), at a band b in [h_j(U / (T - S)), B_e]. The subset LP of
solvers/subset_energy.py prices a group by its parts and cannot see that it starts after its last member; here
nothing is split.

The master LP over groups g (solved by HiGHS, columns added as they are priced):
    min sum_g E_g x_g   s.t.   sum_g cov_gm x_g >= 1 (coverage, per module in units of its demand),
    sum_{g ∋ i} x_g <= 1 (each device in at most one group), sum_g b_g x_g / B_e <= 1 (the band as a row),
    x >= 0.
For any multipliers pi >= 0 (coverage), mu >= 0 (devices), nu >= 0 (band) and every feasible plan (a set of
disjoint groups, each uploader in one group),

    E >= sum_m pi_m - sum_i mu_i - nu + sum_j min(0, rc_j),

rc_j a lower bound on the least reduced cost E_g - pi cov_g + mu(g) + nu b_g / B_e over every group uploaded by j
and every band b it may use (a Lagrangian / Farley bound: valid at any multipliers, optimal or not, so HiGHS's
numbers are only ever clipped to their signs); `GroupPricing.price` computes rc_j, and its argmin group, priced
exactly, is the next column. The loop stops when no group has a negative reduced cost (then the bound is the
master's optimum) or after `iters` rounds. solvers/group_bound.py turns these bounds into one on T + lambda E.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock
from solvers.covers import LP_COVER_HOLDERS, cover_sets
from solvers.evaluate import LN2
from solvers.group_batch import UnionLayout, price_union_all, union_layout
from solvers.group_parts import Parts
from solvers.group_price import GroupPricing
from solvers.highs import bare_highs, run
from solvers.instance import RoundProblem

PENALTY = 100.0
"""Cost of a unit of uncovered demand or of band beyond B_e in the master (units of the energy scale): keeps the
master feasible at any latency; the multipliers it bounds still give a valid bound."""
ITERS = 60
"""Pricing rounds per latency."""
SMOOTH = 0.5
"""Pricing first at SMOOTH x the best multipliers so far + the rest x the master's (dual stabilization); at the
master's alone where that finds no column."""
COLUMNS = 3
"""Most columns an uploader adds per pricing pass (its least reduced costs)."""
TOL = 1e-3
"""Pricing stops once the bound is within TOL of the master's value."""
BATCH = True
"""Relays that aggregate: every uploader priced in one batched pass (solvers/group_batch.py); False: one call each."""


@dataclass
class Duals:
    """Multipliers of one master (J units): the constant sum_m pi_m + sum alpha - sum_i mu_i - nu (+ the covers'
    y terms), each part's reduced cost before device and band terms, each device's mu, and nu (J per B_e)."""

    const: float
    red: np.ndarray
    mu: np.ndarray
    nu: float
    memo: dict = field(default_factory=dict)  # pricing's work for these multipliers at any latency (`lagrangian`)


class GroupBound(GroupPricing):
    """E_lb(T) of one edge by column generation over exact relay groups (module doc)."""

    def __init__(self, p: RoundProblem, e: int, parts: Parts) -> None:
        super().__init__(p, e, parts)
        demand = p.coverage_demand()[e]
        self.part_of = {(int(d), int(m)): k for k, (d, m) in enumerate(zip(parts.dev, parts.mask, strict=True))}
        self.duals: list[Duals] = []  # the multipliers of each latency's best bound (J units)
        self.layout: UnionLayout | None = None  # relays that aggregate: the batched pricing's parts (group_batch.py)
        self.known: dict[tuple, float] = {}  # every relay group priced so far, with its band: the next master's start
        # each module's minimal covers (the knapsack's convex hull, as in solvers/route_lp.py): rows "the module's
        # covers sum to >= 1" and per holder i "i trains m in its group >= the covers that use i"
        self.cover_rows: list[tuple[int, np.ndarray, np.ndarray]] = []  # (module, holders, covers [C, holders])
        link_of: dict[tuple[int, int], int] = {}
        for m in self.need:
            holders = np.unique(parts.dev[parts.mbits[:, m] > 0])
            found = cover_sets(p.samples[holders], float(demand[m]), LP_COVER_HOLDERS)
            if found.shape[0] == 0:
                continue
            for i in holders:
                link_of[(int(m), int(i))] = len(link_of)
            self.cover_rows.append((int(m), holders, found))
        self.nlink = len(link_of)
        self.part_link: list[np.ndarray] = []  # per part: its link rows (modules it trains that have covers)
        for k in range(parts.dev.size):
            ms = np.flatnonzero(parts.mbits[k])
            self.part_link.append(np.array([link_of[(int(m), int(parts.dev[k]))] for m in ms
                                            if (int(m), int(parts.dev[k])) in link_of], dtype=np.int64))
        plr = np.concatenate([np.full(x.size, k) for k, x in enumerate(self.part_link)] + [np.zeros(0, dtype=int)])
        plc = np.concatenate(self.part_link + [np.zeros(0, dtype=np.int64)])
        self.link_mat = np.zeros((parts.dev.size, max(self.nlink, 1)))
        self.link_mat[plr.astype(int), plc] = 1.0

    def plan_groups(self, x: np.ndarray, relay: np.ndarray, band: np.ndarray) -> list[tuple]:
        """The relay groups of a plan (placement x [N, M], one-hop relay [N], bandwidth [N] Hz) on this edge, as
        master columns with their bands."""
        masks = np.asarray(x, dtype=np.int64) @ (1 << np.arange(self.p.num_modules))
        out = []
        for j in self.devices:
            if relay[j] != j:
                continue
            group = [(int(j), self.part_of.get((int(j), int(masks[j])), -1))]
            for i, _ in self.into[int(j)]:
                if relay[i] == j and masks[i] and (i, int(masks[i])) in self.part_of:
                    group.append((i, self.part_of[(i, int(masks[i]))]))
            if len(group) > 1 or group[0][1] >= 0:
                out.append(((int(j), tuple(group)), float(band[j])))
        return out

    # ---- the bound ---------------------------------------------------------------------------------------------
    def energy(self, t: float, scale: float, iters: int = ITERS, clock: Clock | None = None,
               seed: list | None = None, target: float | None = None) -> float:
        """Certified lower bound on the edge's energy of plans finishing by t (J; scale: the energy unit, e.g. a
        plan's energy; seed: (group, band Hz) columns to start from, e.g. `plan_groups`; target: stop once the
        bound reaches it)."""
        fast = bare_highs()
        if fast is None:
            return -math.inf
        hs, bare = fast
        self.scale = scale
        nd, nm = self.devices.size, self.need.size
        h = bare()
        h.setOptionValue("output_flag", False)
        inf = hs.kHighsInf
        none = np.zeros(0, dtype=np.int32)
        # rows: coverage (>= 1) [0, nm), devices (<= 1) [nm, nm + nd), band (<= 1) nm + nd, then per module with
        # covers its cover row (>= 1) and its holders' link rows (>= 0)
        h.addRows(nm, np.ones(nm), np.full(nm, inf), 0, none, none, np.zeros(0))
        h.addRows(nd + 1, np.full(nd + 1, -inf), np.ones(nd + 1), 0, none, none, np.zeros(0))
        base = nm + nd + 1
        ncr = len(self.cover_rows)
        h.addRows(ncr, np.ones(ncr), np.full(ncr, inf), 0, none, none, np.zeros(0))
        h.addRows(self.nlink, np.zeros(self.nlink), np.full(self.nlink, inf), 0, none, none, np.zeros(0))
        link0 = base + ncr
        ycols = []  # (cover row, link rows) of every cover variable y in [0, 1]
        first = 0
        for c, (_, holders, found) in enumerate(self.cover_rows):
            for cov in found:
                links = link0 + first + np.flatnonzero(cov)
                idx = np.concatenate([[base + c], links]).astype(np.int32)
                h.addCol(0.0, 0.0, 1.0, idx.size, idx, np.concatenate([[1.0], -np.ones(links.size)]))
                ycols.append((base + c, links))
            first += holders.size
        ycover = _cover_index(ycols)
        for m in range(nm):  # slack: uncovered demand
            h.addCol(PENALTY, 0.0, inf, 1, np.array([m], dtype=np.int32), np.array([1.0]))
        for c in range(ncr):
            h.addCol(PENALTY, 0.0, inf, 1, np.array([base + c], dtype=np.int32), np.array([1.0]))
        h.addCol(PENALTY, 0.0, inf, 1, np.array([nm + nd], dtype=np.int32), np.array([-1.0]))  # band beyond B_e
        self.link0 = link0
        best = -math.inf
        seen: set = set()
        self._add_singles(h, t, seen)
        for g, b in list(self.known.items()) + list(seed or []):
            self._add(h, g, t, 0.0, seen, b)
        center: np.ndarray | None = None
        for _ in range(iters):
            run(h)
            obj = float(h.getInfo().objective_function_value)
            raw = np.asarray(h.getSolution().row_dual, dtype=float)
            for weight in ((SMOOTH, 0.0) if center is not None else (0.0,)):  # Wentges: toward the best multipliers
                dual = raw if center is None or weight == 0.0 else weight * center + (1 - weight) * raw
                pos = np.maximum(dual, 0.0)
                pi, alpha, sigma = pos[:nm], pos[base:link0], pos[link0:]
                mu = np.maximum(-dual[nm:nm + nd], 0.0)
                nu = max(-float(dual[nm + nd]), 0.0)
                const = float(pi.sum() + alpha.sum() - mu.sum() - nu)
                const += _cover_terms(pos, *ycover)  # y in [0, 1]
                red = self.parts.energy / scale - self.cov @ pi - self.link_mat[:, :self.nlink] @ sigma
                added = 0
                lb = const
                for j, (rc, groups) in zip(self.devices.tolist(), self.price_all(t, red, mu, nu, many=COLUMNS),
                                           strict=True):
                    lb += min(rc, 0.0)
                    if rc < -1e-9:
                        for group in groups:
                            added += self._add(h, (int(j), tuple(group)), t, nu * self.scale / self.band, seen)
                if lb > best:
                    best, center = lb, dual
                    self.duals.append(Duals(const * scale, red * scale, mu * scale, nu * scale))
                if added:
                    break
            if added == 0 or best >= obj - TOL * abs(obj) or (target is not None and best * scale >= target) or (
                    clock is not None and clock.expired()):
                break
        return best * scale

    def lagrangian(self, t: float, d: Duals) -> float:
        """The bound of multipliers d at latency t (J): one pricing pass, no LP; valid at any t (module doc)."""
        keep, self.scale = self.scale, 1.0
        lb = d.const
        for rc, _ in self.price_all(t, d.red, d.mu, d.nu, d.memo, groups=False):
            lb += min(rc, 0.0)
        self.scale = keep
        return lb

    def price_all(self, t: float, red: np.ndarray, mu: np.ndarray, nu: float, memo: dict | None = None,
                  many: int = 1, groups: bool = True) -> list[tuple[float, list]]:
        """`price` for every uploader, in `devices` order: one batched pass with relays that aggregate
        (solvers/group_batch.py, the same cells and least), else one call each."""
        if self.p.relay_aggregates and BATCH:
            if self.layout is None:
                self.layout = union_layout(self)
            return price_union_all(self, self.layout, t, red, mu, nu, many, groups)
        return [self.price(j, t, red, mu, nu, memo, many) for j in self.devices.tolist()]

    def _add_singles(self, h, t: float, seen: set) -> None:  # noqa: ANN001
        """Every part alone, uploaded directly, at its least band and at the whole band (one `addCols`; the same
        columns `_add` makes one at a time)."""
        pa, p, nm, nd = self.parts, self.p, self.need.size, self.devices.size
        a, pw = p.snr_hz[pa.dev], p.tx_power_w[pa.dev]
        w = t - pa.tau
        ok = w > 0
        need = np.full(pa.dev.size, np.inf)
        need[ok] = min_bandwidth(pa.bits[ok] / w[ok], a[ok])
        ok &= need <= self.band
        cols: list[tuple[float, np.ndarray, np.ndarray]] = []
        for k in np.flatnonzero(ok).tolist():
            i = int(pa.dev[k])
            base = np.concatenate([np.flatnonzero(self.cov[k] > 0), [nm + self.row_of[i]]])
            for b in (float(need[k]), self.band):
                key = (i, ((i, k),), round(b / self.band, 6))
                if key in seen:
                    continue
                seen.add(key)
                energy = pa.energy[k] + pw[k] * pa.bits[k] * LN2 / (b * math.log1p(a[k] / b))
                idx = np.concatenate([base, [nm + nd], self.link0 + self.part_link[k]])
                val = np.concatenate([self.cov[k][self.cov[k] > 0], [1.0, b / self.band],
                                      np.ones(self.part_link[k].size)])
                cols.append((energy / self.scale, idx, val))
        if not cols:
            return
        starts = np.cumsum([0] + [c[1].size for c in cols[:-1]]).astype(np.int32)
        idx = np.concatenate([c[1] for c in cols]).astype(np.int32)
        h.addCols(len(cols), np.array([c[0] for c in cols]), np.zeros(len(cols)), np.full(len(cols), np.inf),
                  idx.size, starts, idx, np.concatenate([c[2] for c in cols]))

    def _add(self, h, g: tuple, t: float, nu_hz: float, seen: set, band: float | None = None) -> int:  # noqa: ANN001
        j, group = g
        col = self.column(j, list(group), t, nu_hz, band)
        if col is None:
            return 0
        energy, rows, cov, b = col
        links = np.concatenate([self.part_link[k] for _, k in group if k >= 0] + [np.zeros(0, dtype=np.int64)])
        if len(group) > 1 or group[0][0] != j:
            self.known[g] = b
        key = (j, group, round(b / self.band, 6))
        if key in seen:
            return 0
        seen.add(key)
        nm = self.need.size
        idx = np.concatenate([np.arange(nm)[cov > 0], nm + rows, [nm + self.devices.size],
                              self.link0 + links]).astype(np.int32)
        val = np.concatenate([cov[cov > 0], np.ones(rows.size), [b / self.band], np.ones(links.size)])
        h.addCol(energy / self.scale, 0.0, np.inf, idx.size, idx, val)
        return 1


def _cover_index(ycols: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(each cover variable's cover row, their link rows in one array (and a last 0), where each one's start, whether
    it has any)."""
    sizes = np.array([x.size for _, x in ycols], dtype=np.int64)
    flat = np.concatenate([x for _, x in ycols] + [np.zeros(1, dtype=np.int64)]).astype(np.int64)
    return np.array([r for r, _ in ycols], dtype=np.int64), flat, np.cumsum(sizes) - sizes, sizes > 0


def _cover_terms(pos: np.ndarray, rows: np.ndarray, flat: np.ndarray, starts: np.ndarray, some: np.ndarray) -> float:
    """Sum over the cover variables y in [0, 1] of min(0, their link rows' multipliers less their cover row's), in
    order."""
    if rows.size == 0:
        return 0.0
    links = np.where(some, np.add.reduceat(pos[flat], starts), 0.0)  # the last one's run ends with flat's 0
    return float(np.cumsum(np.minimum(links - pos[rows], 0.0))[-1])
