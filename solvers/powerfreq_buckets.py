"""Power and frequency as decisions: the subset LP (solvers/subset_energy.py) with one copy of each relay group's
columns per upload-start bucket, so a group's parts share one upload start as they do in a plan.

The LP of solvers/subset_energy.py prices a relay's own column with its upload starting when its compute ends, and
each route into it with its bits starting when they arrive; a plan's group uploads once, at one start S after both.
Here each relay's columns (its empty one too) and each route get one copy per bucket [s_a, s_b] of a partition of
[0, T] (per relay), a copy costing the least of its column's cost over starts S in its bucket, and a route's copy
pairs only with its relay's copies of the same bucket (RouteLP's class pair rows); the columns without copies stay
(a relay that relays nothing). Validity: a plan of latency <= T whose group starts at S (its upload energy + band
charge is sum over bits of at least k(T - S, nu) each, solvers/powerfreq_bound.py) maps to the copies of S's bucket,
each at most that part's energy, so the LP is a relaxation for every partition.
A copy's cost is exact per bucket, not a grid minimum: with compute time tau = S - hop, a column's cost
F(tau) = kappa C max(f_min, C / tau)^2 + P k(W - tau, nu) is convex in tau (k(t) is a partial minimum of a jointly
convex function of (x, t); tests/test_solver_powerfreq_buckets.py also checks it numerically), so its minimum over
the bucket is the same certified search as over the whole range, on the meet (solvers/powerfreq_column.py `span`).
The partition: `BUCKETS` equal parts at first; after each latency's band price search `BucketSubset.edge_value`
re-cuts each relay's into BUCKETS / 2 equal parts plus the one holding the LP's start split finer (`refine`) and
re-solves once at the best price (every partition gives a valid LP, so the better value is kept). Tangents in T
(solvers/powerfreq_price.py) take a latency b's cuts as absolute starts: a copy's least cost over fixed starts is
still convex and decreasing in T (a partial minimum of a jointly convex function of (S, T)), and its slope bound is
the column's (the envelope theorem at the bucket's minimizer). Only the relays the plain LP's solutions or the plan
use get copies (`used_relays`; the others keep the plain routes, valid either way): half the CPU on 8-device edges.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from solvers.clock import Clock
from solvers.instance import RoundProblem
from solvers.powerfreq_column import column_energy
from solvers.relay_price import payload_classes
from solvers.route_lp import RouteLP
from solvers.subset_energy import EdgeEnergy, SubsetEnergy

BUCKETS = 8
"""Upload-start buckets per relay (copies of each relay column and route)."""


@dataclasses.dataclass
class BucketEdge(EdgeEnergy):
    """An EdgeEnergy (power and frequency as decisions) whose LP holds per-bucket copies of the relay groups'
    columns (module doc); `costs` prices them, the rest (`value`, the price search, the tangents) is unchanged."""

    q: int = BUCKETS
    rel: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # relay columns
    relays: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # relay devices
    cuts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))  # [R, q + 1] fractions of T
    nb: int = 0  # routes into the bucketed relays (the first nb of lcol; the rest stay as in EdgeEnergy)

    @classmethod
    def over(cls, ee: EdgeEnergy, demand: np.ndarray, covers: bool, q: int = BUCKETS,
             relays: np.ndarray | None = None) -> BucketEdge:
        """ee's columns plus q copies of the columns and routes of the relay groups of `relays` (default: every
        relay; the routes into the others stay as in ee, unpaired with buckets: valid for any choice, module doc).
        Kept from ee: its routes into the other relays (class 0, paired with those relays' columns as there)."""
        if not ee.p.has_power_frequency or ee.union or ee.band_row:
            raise ValueError("buckets: power and frequency as decisions, without union or band rows")
        fields = {f.name: getattr(ee, f.name) for f in dataclasses.fields(EdgeEnergy)}
        relays = np.unique(ee.ldst) if relays is None else np.intersect1d(relays, ee.ldst)
        # bucketed routes once per (column, relay) (ee has one per class of the relay's own column), first
        mine = np.flatnonzero(np.isin(ee.ldst, relays))
        mine = mine[np.unique(ee.lcol[mine] * (int(ee.ldst.max(initial=0)) + 1) + ee.ldst[mine], return_index=True)[1]]
        other = np.flatnonzero(~np.isin(ee.ldst, relays))
        for name in ("lcol", "ldst", "lrate", "lcls", "ltop", "lmin", "llead"):
            v = getattr(ee, name)
            fields[name] = np.concatenate([v[mine], v[other]])
        nb = mine.size
        rel = np.flatnonzero(np.isin(ee.dev, relays))
        k = ee.dev.size
        lcol, ldst = fields["lcol"], fields["ldst"]
        cols = np.concatenate([np.arange(k)] + [rel] * q)
        base_cls = payload_classes(ee.dev, ee.pay, np.unique(ee.ldst), 1)  # as ee's LP (0 empty, 1 the rest)
        ccls = np.concatenate([base_cls] + [np.full(rel.size, b + 2) for b in range(q)])
        lcls = np.concatenate([np.repeat(np.arange(2, q + 2), nb), ee.lcls[other]])
        fields["lp"] = RouteLP(ee.dev[cols], ee.mbits[cols], ee.p.samples, demand,
                               np.concatenate([np.tile(lcol[:nb], q), lcol[nb:]]),
                               np.concatenate([np.tile(ldst[:nb], q), ldst[nb:]]), covers, False, lcls, ccls)
        cuts = np.tile(np.linspace(0.0, 1.0, q + 1), (relays.size, 1))
        return cls(**fields, q=q, rel=rel, relays=relays, cuts=cuts, nb=nb)

    def costs(self, t: float, nu: float, theta: float) -> np.ndarray:
        """[K + (R + nb) q + L - nb]: the columns of solvers/subset_energy.py, per bucket the bucketed relays'
        columns (R) and routes (nb), each at its least cost with its upload start in the bucket, then the other
        routes as in solvers/subset_energy.py."""
        base = EdgeEnergy.costs(self, t, nu, theta)
        p, dev, pay, q, k, nb = self.p, self.dev, self.pay, self.q, self.dev.size, self.nb
        base_band, base_slope = self.band_at, self.slope_at
        c0 = p.noise_w_per_hz / p.uplink_gain
        c, j = self.lcol[:nb], self.ldst[:nb]
        hop = pay[c] / self.lrate[:nb]
        starts = self.cuts * t  # [R, q + 1]
        rel, nr = self.rel, self.rel.size
        at = np.searchsorted(self.relays, np.concatenate([dev[rel], j]))
        s_all = starts[at]  # [nr + nb, q + 1] each copy's relay's starts
        off = np.concatenate([np.zeros(nr), hop])
        lo, hi = s_all[:, :q] - off[:, None], s_all[:, 1:] - off[:, None]  # [nr + nb, q] the compute time's span
        who = np.concatenate([dev[rel], dev[c]])
        each = [self.cycles[rel], self.cycles[c]], [pay[rel], np.zeros(nb) if p.relay_aggregates else pay[c]]
        cyc, up = (np.concatenate(v) for v in each)

        def tile(v: np.ndarray) -> np.ndarray:  # bucket-major copies
            return np.tile(v, q)

        out, band, slope = column_energy(p.kappa, tile(cyc), tile(p.freq_min[who]), tile(p.freq_max[who]),
                                         tile(np.concatenate([c0[dev[rel]], c0[j]])), tile(up), tile(t - off), nu,
                                         span=(lo.T.ravel(), hi.T.ravel()))
        n1 = nr + nb
        out, band, slope = (v.reshape(q, n1) for v in (out, band, slope))
        out = out + np.concatenate([np.zeros(nr), p.d2d_power_w[dev[c]] * hop])[None, :]
        empty = np.concatenate([self.empty[rel], np.zeros(nb, dtype=bool)])
        out[:, empty], slope[:, empty] = 0.0, 0.0
        parts = [(v[:k], w[:, :nr].ravel(), w[:, nr:].ravel(), v[k + nb:])
                 for v, w in ((base, out), (base_band, band), (base_slope, slope))]
        self.band_at, self.slope_at = np.concatenate(parts[1]), np.concatenate(parts[2])
        return np.concatenate(parts[0])

    def refine(self, x: np.ndarray) -> bool:
        """Two levels: q / 2 equal buckets, and the one holding the start each relay's copies use most in the LP
        solution `x` cut into q - q / 2 + 1 equal parts (the rest). False where nothing changed."""
        k, q, nr = self.dev.size, self.q, self.rel.size
        w = x[k:k + q * nr].reshape(q, nr)  # the relays' copies, bucket-major
        coarse = q // 2
        moved = False
        for r, j in enumerate(self.relays):
            use = w[:, self.dev[self.rel] == j].sum(axis=1)
            if use.max(initial=0.0) <= 1e-6:
                continue
            b = int(np.argmax(use))
            mid = 0.5 * (self.cuts[r][b] + self.cuts[r][b + 1])
            z = min(int(mid * coarse), coarse - 1)
            pts = np.unique(np.concatenate([np.linspace(0.0, 1.0, coarse + 1),
                                            np.linspace(z / coarse, (z + 1) / coarse, q - coarse + 2)]))
            if not np.array_equal(pts, self.cuts[r]):
                self.cuts[r], moved = pts, True
        return moved


class BucketSubset(SubsetEnergy):
    """SubsetEnergy whose edges with relay routes are `BucketEdge`s (power and frequency as decisions); relays: per
    edge the relays to bucket (default every relay; an edge with none keeps its plain LP)."""

    def __init__(self, p: RoundProblem, q: int = BUCKETS, steps: int = 6, covers: bool = False,
                 relays: dict[int, np.ndarray] | None = None) -> None:
        super().__init__(p, steps=steps, covers=covers)
        self.q = q
        self.relays = relays

    def edge(self, e: int) -> EdgeEnergy | None:
        if e not in self.edges:
            ee = EdgeEnergy.of(self.p, e, self.demand[e], self.covers)
            relays = None if self.relays is None else self.relays.get(e, np.zeros(0, dtype=np.int64))
            if ee is not None and ee.lcol.size and (relays is None or np.isin(relays, ee.ldst).any()):
                ee = BucketEdge.over(ee, self.demand[e], self.covers, self.q, relays)
            self.edges[e] = ee
        return self.edges[e]

    def edge_value(self, e: int, t: float, nu_ref: float, clock: Clock | None = None, scale: float = 0.0) -> float:
        """The band price search (solvers/powerfreq_price.py) at the current partitions, then, where
        `BucketEdge.refine` re-cuts them around the LP's relay starts, one more LP at the best price found; the
        better value (each is valid), its LP solution and tangents kept. The next latency starts from the new cuts."""
        v = super().edge_value(e, t, nu_ref, clock, scale)
        ee = self.edges.get(e)
        got = self.solutions.get(e, {}).get(t)
        if not isinstance(ee, BucketEdge) or got is None or not math.isfinite(v) or (clock is not None and
                                                                                      clock.expired()):
            return v
        if not ee.refine(got[1]):
            return v
        nu = self.nu[e]
        v2 = ee.value(t, nu, 0.0)
        if v2 > v:
            self.solutions[e][t] = (v2, ee.lp.primal())
            self.tangents[e][t] = (nu, ee.cost_at, ee.slope_at, v2)
            return v2
        return v


def used_relays(sub: SubsetEnergy, plan_relay: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """Per edge the relays the subset LP's stored solutions route bits into (weight > 1e-6), and the plan's."""
    out: dict[int, np.ndarray] = {}
    for e, sols in sub.solutions.items():
        ee = sub.edges.get(e)
        if ee is None or not ee.lcol.size:
            continue
        k = ee.dev.size
        got = [ee.ldst[x[k:k + ee.lcol.size] > 1e-6] for _, x in sols.values()]
        if plan_relay is not None:
            members = sub.p.edge_devices(e)
            r = plan_relay[members]
            got.append(r[r != members])
        out[e] = np.unique(np.concatenate(got)) if got else np.zeros(0, dtype=np.int64)
    return out


def bucket_bound(p: RoundProblem, sub: SubsetEnergy, plan_relay: np.ndarray, t_lb: float, upper: float,
                 budget: int, clock: Clock) -> float:
    """The latency-energy bound (solvers/energy_bound.py) with the bucketed LP on the relays `sub`'s LP solutions
    and the plan use (`used_relays`), its band prices started at `sub`'s; -inf where no edge has such a relay."""
    from solvers.energy_bound import tradeoff_lower_bound

    relays = used_relays(sub, plan_relay)
    if not any(r.size for r in relays.values()):
        return -math.inf
    bs = BucketSubset(p, BUCKETS, steps=sub.steps, covers=sub.covers, relays=relays)
    bs.nu, bs.nu_at = dict(sub.nu), {e: dict(v) for e, v in sub.nu_at.items()}
    return tradeoff_lower_bound(p, t_lb, upper, budget, clock=clock, subset=bs, cap=True, tangents_on=True)
