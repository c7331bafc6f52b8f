"""One edge, any lambda: T + lambda E as one MILP with the latency T a variable (no trial latencies, no pieces).

Columns as in solvers/latency_model.py (`EdgeColumns`: a device's module subset and route; its ready time a_c at
the uploader, payload q_c bits, compute + D2D energy F_c are numbers). Each column c gets a binary v_c, its own band
share b_c (0 <= b_c <= v_c, shares sum to at most 1) and upload time t_c >= q_c phi_j(b_c) (phi_j = 1 / R_j of the
uploader j, convex decreasing), entered by perspective tangents t_c >= q_c [(phi(s) - phi'(s) s) v_c + phi'(s) b_c]
(valid at v_c = 0, tight at v_c = 1); each device i: T >= sum of its columns' (a_c v_c + t_c) (at most one is
chosen). Forwarded relays (j sends its own payload and those of the devices relaying through it, from the
last arrival): parallel uploads with split shares are never slower than one upload of the sum (R^-1 is convex,
R^-1(0) = 0, so the shares b_c = R^-1(q_c / (T - a_c)) of j's columns fit in j's share), so this relaxes the
round. Energy: sum F_c v_c + per uploader j the upload p_j U_j phi_j(B_j) with B_j <= the sum of j's column shares.
Each column gets an energy share g_c (B_j when it is chosen: g_c <= v_c, g_c >= b_c, and the g of one device's
columns via j sum to at most B_j, since at most one is chosen), cut in perspective form e_c >= p_j q_c [(phi(s) -
phi'(s) s) v_c + phi'(s) g_c] (not p_j t_c, which would count a shared upload at each part's share; and not with
B_j in place of g_c: then every fractional column of a device could use all of B_j). Objective T + lambda E in units
of the incumbent's objective. HiGHS's
dual bound is a valid lower bound at any time limit; tangents are added at the answer's shares (outer
approximation) and the MILP re-solved until the bound certifies the best plan found within the gap.

Only plans better than the incumbent matter, so a column that alone costs more (a_c + q_c phi(1) + lambda (F_c +
p_j q_c phi(1)) >= upper) is dropped and each chosen column's share is at least what finishes it by `upper`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import now, set_limits
from solvers.column_milp import INF, Extra, Row, choice_rows, highs_model, run_milp
from solvers.energy import plan_bandwidth
from solvers.evaluate import LN2, evaluate, uplink_rate
from solvers.highs import run
from solvers.instance import RoundProblem
from solvers.latency_model import EdgeColumns
from solvers.model import exact_cost, feasible

GRID = 2
"""Tangents per column at the start, geometric from its least useful share to 1 (the LP relaxation's cutting loop,
`lp_bound`, adds more where its answers lie: with 3 the first LP of an 8-device edge took 0.9 s instead of 0.4 s;
with 12 it sits within 0.5 % of the 60-round loop's value but took 4 s)."""
LP_SPREAD = (0.25, 0.5, 1.0, 2.0, 4.0)
"""A column whose LP answer under-estimates its upload time or energy by more than LP_TOL gets tangents at its
answer's share s (b / v, its perspective point) times these (several per round: the loop needs 3-4x fewer rounds
than with s alone)."""
LP_TOL = 1e-5
LP_SCALE = 4
"""HiGHS's simplex_scale_strategy for the LP loop (4: scale by the largest value; the default 1 took 1.3-2.6x longer
on the first LP of 8-12-device edges, whose rows mix seconds, joules and shares)."""
LP_SHARE = 0.75
"""Part of the model's time for the LP relaxation's cutting loop (its value is the bound; the MILPs then get the
rest, with every tangent the loop added)."""
NEAR = 0.02
"""A refining tangent closer than this (relative) to an existing one is not added."""
REFINE_MILPS = 2
"""The first MILPs stop early (FIRST_SHARE of the time left, at least FIRST_S) so that tangents are added where
their answers' shares land before the last MILP gets all the time left."""
FIRST_SHARE = 0.35
FIRST_S = 0.15
SHORT_S = 2.0
"""With less time left than this, one MILP gets all of it (a root LP of an 8-device edge takes about 1 CPU s)."""
SAVED = 4
"""The last improving solutions of each MILP that are priced exactly and refined at."""
INCUMBENT_TANGENTS = True
"""Tangents also at the exact operating band shares of the incumbent and of every plan priced (outer approximation
at the plans, not only at the MILP's answer values)."""


def tangents(share: np.ndarray, snr: np.ndarray, band: float) -> tuple[np.ndarray, np.ndarray]:
    """Tangent (A, s) of phi(b) = 1 / R(b x band) (s per bit) at shares `share`: phi >= A + s b."""
    bw = share * band
    r = uplink_rate(bw, snr)
    y = snr / bw
    dr = (np.log1p(y) - y / (1 + y)) / LN2  # R'(b) in bit/s per Hz
    s = -dr * band / r ** 2
    return 1.0 / r - s * share, s


@dataclass(frozen=True)
class EdgeAnswer:
    """The model's answer on one edge: the best plan found (the incumbent if none better), its exact T + lambda E,
    a certified lower bound on the optimum, the MILPs run, and whether the bound proved the gap."""

    x: np.ndarray
    relay: np.ndarray
    objective: float
    lower_bound: float
    milps: int
    proven: bool


class EdgeModel:
    """The one-edge MILP with T as a variable (see the module doc); `solve` improves and certifies an incumbent."""

    def __init__(self, p: RoundProblem, t_floor: float = 0.0) -> None:
        """t_floor: a latency no plan beats (s; solvers/bounds.py's latency bound), 0 if none is known."""
        self.p = p
        self.t_floor = float(t_floor)
        c = self.c = EdgeColumns.of(p)
        self.fixed = c.fixed_energy(p)
        self.power = p.tx_power_w[c.up]
        self.snr = p.snr_hz[c.up]
        self.phi1 = 1.0 / uplink_rate(np.full(c.dev.size, c.band), self.snr)  # s per bit at the whole band
        self.cuts: list[list[float]] = [[] for _ in range(c.dev.size)]  # refining shares per column
        self.milps = 0
        self.lp_overran = False  # the LP relaxation stopped at its iteration limit (work budget)

    def _rows(self, upper: float) -> tuple[list[Row], np.ndarray, np.ndarray, Extra, dict[str, dict[int, int]]]:
        """The MILP for plans of objective below `upper`: rows, binary costs, usable columns, the continuous
        variables and their indices."""
        p, c, lam = self.p, self.c, self.p.lam
        k = c.dev.size
        alone = c.ready + c.pay * self.phi1 + lam * (self.fixed + self.power * c.pay * self.phi1)
        slack = upper - c.ready
        with np.errstate(divide="ignore", invalid="ignore"):
            least = min_bandwidth(np.where(slack > 0, c.pay / np.where(slack > 0, slack, 1.0), np.inf), self.snr)
        least = least / c.band
        usable = (alone < upper) & (least <= 1.0)
        extra = Extra(k)
        rows: list[Row] = choice_rows(p, c, extra)
        t_var = extra.add(1.0 / upper)
        idx = np.flatnonzero(usable)
        share = {int(j): extra.add(0.0, 1.0) for j in idx}
        upload = {int(j): extra.add(0.0) for j in idx}
        big = {int(u): extra.add(0.0, 1.0) for u in np.unique(c.up[idx])}
        gshare = {int(j): extra.add(0.0, 1.0) for j in idx}  # B_j when column j is chosen, else 0
        for i, u in {(int(c.dev[j]), int(c.up[j])) for j in idx}:  # one of device i's columns via u
            mine = idx[(c.dev[idx] == i) & (c.up[idx] == u)]
            rows.append(({big[u]: -1.0, **{gshare[int(j)]: 1.0 for j in mine}}, -INF, 0.0))
        rows.append(({share[j]: 1.0 for j in share}, -INF, 1.0))
        for u, bu in big.items():
            rows.append(({bu: 1.0, **{share[int(j)]: -1.0 for j in idx[c.up[idx] == u]}}, -INF, 0.0))
        lo = np.maximum(least, 1e-9)
        energy: dict[int, int] = {}  # column -> its upload-energy variable e_c
        for j in idx.tolist():
            grid = np.geomspace(lo[j], 1.0, GRID) if lo[j] < 1.0 else np.array([1.0])
            pts = np.concatenate([grid, np.array(self.cuts[j])])
            a_, s_ = tangents(pts, np.full(pts.size, self.snr[j]), c.band)
            q, pw = float(c.pay[j]), float(self.power[j])
            b, t = share[j], upload[j]
            e, g = extra.add(lam / upper), gshare[j]
            energy[j] = e
            rows.append(({b: 1.0, j: -1.0}, -INF, 0.0))  # b <= v
            rows.append(({b: 1.0, j: -float(lo[j])}, 0.0, INF))  # b >= least v
            rows.append(({g: 1.0, j: -1.0}, -INF, 0.0))  # g <= v
            rows.append(({g: 1.0, b: -1.0}, 0.0, INF))  # g = B_j >= b when chosen
            for a1, s1 in zip(a_, s_, strict=True):  # perspective tangents of the time and of the energy
                rows.append(({t: 1.0, j: -q * float(a1), b: -q * float(s1)}, 0.0, INF))
                rows.append(({e: 1.0, j: -pw * q * float(a1), g: -pw * q * float(s1)}, 0.0, INF))
        t_lo = self.t_floor  # T >= sum of the device's (a_c v_c + t_c) + T_lo (1 - sum v_c): see _floor_rows
        for i in np.unique(c.dev[idx]):  # T >= a_c v_c + t_c of the device's one chosen column
            mine = idx[c.dev[idx] == i]
            coefs = {t_var: 1.0}
            coefs.update({int(j): -(float(c.ready[j]) - t_lo) for j in mine})
            coefs.update({upload[int(j)]: -1.0 for j in mine})
            rows.append((coefs, t_lo, INF))
        rows.extend(self._group_rows(idx, t_var, energy))
        rows.extend(self._floor_rows(idx, t_var, upload))
        return rows, self.fixed * lam / upper, usable, extra, {"share": share, "big": big, "g": gshare,
                                                              "t": upload, "e": energy}

    def _floor_rows(self, idx: np.ndarray, t_var: int, upload: dict[int, int]) -> list[Row]:
        """With a latency floor T_lo <= T: T >= T_lo, and per column T >= a_c v_c + t_c + T_lo (1 - v_c), from
        the McCormick over-estimator T v_c <= T - T_lo (1 - v_c) of T v_c >= a_c v_c + t_c (a chosen column
        finishes by T); per device the same with V = the sum of its v_c (at most one is chosen), in the device rows.
        Without them a fractional column finishes in v_c of its time; exact at integer points."""
        lo = self.t_floor
        if lo <= 0:
            return []
        rows: list[Row] = [({t_var: 1.0}, lo, INF)]
        for j in idx.tolist():
            rows.append(({t_var: 1.0, j: -(float(self.c.ready[j]) - lo), upload[j]: -1.0}, lo, INF))
        return rows

    def _group_rows(self, idx: np.ndarray, t_var: int, energy: dict[int, int]) -> list[Row]:
        """Each uploader j's group as one upload: T >= a_c v_c (one member's start, summed over that member's
        columns via j: at most one is chosen) + sum over all of j's columns of e_c / p_j (each e_c >= p_j q_c
        phi_j(B_j) by its tangents at g_c = B_j: the group's whole payload at j's band). Valid: the group starts
        no earlier than any member's arrival and sends every member's payload at B_j; one row per member, so their
        max is the last arrival's, exact at integer points up to the tangents."""
        c = self.c
        rows: list[Row] = []
        for u in np.unique(c.up[idx]):
            group = idx[c.up[idx] == u]
            pw = float(self.p.tx_power_w[u])
            if pw <= 0 or not np.any(c.relayed[group]):
                continue
            total = {energy[int(j)]: -1.0 / pw for j in group}
            for i in np.unique(c.dev[group]):
                rows.append(({t_var: 1.0, **total, **{int(j): -float(c.ready[j]) for j in group[c.dev[group] == i]}},
                             0.0, INF))
        return rows

    def _refine(self, val: np.ndarray, cols: np.ndarray, var: dict[str, dict[int, int]]) -> int:
        """Tangents at the answer's shares (its own, its energy share, its uploader's) for the chosen columns; how
        many were added."""
        share, big, gs = var["share"], var["big"], var["g"]
        added = 0
        for j in cols.tolist():
            if j not in share:
                continue
            for s in (float(val[share[j]]), float(val[big[int(self.c.up[j])]]), float(val[gs[j]])):
                if s <= 1e-9:
                    continue
                have = self.cuts[j]
                if all(abs(s / h - 1) > NEAR for h in have):
                    have.append(min(s, 1.0))
                    added += 1
        return added

    def _operating(self, x: np.ndarray, relay: np.ndarray) -> tuple[float, int]:
        """A plan's exact T + lambda E, and tangents added at its operating point: each of its columns at its
        uploader's exact band share (the answer's own values may lie elsewhere; these make the model exact at
        this plan up to the tangents' other terms). Any tangent of a convex function is a valid under-estimator."""
        b = plan_bandwidth(self.p, x, relay)
        cost = evaluate(self.p, x, relay, b).objective
        added = 0
        for j in self.columns(x, relay).tolist():
            s = float(b[int(self.c.up[j])]) / self.c.band
            have = self.cuts[j]
            if s > 1e-9 and all(abs(s / h - 1) > NEAR for h in have):
                have.append(min(s, 1.0))
                added += 1
        return cost, added

    def lp_bound(self, upper: float, deadline: float) -> float:
        """The LP relaxation of the MILP for plans below `upper`, tightened by a cutting loop (Kelley): where the
        answer's upload time t_c (energy e_c) of a column with v_c > 0 lies below its perspective q v phi(b / v)
        (p q v phi(g / v)), tangents at that share are added and the LP re-solved from its basis, until no column
        is under-estimated or `deadline` passes. Returns the last optimal LP value x upper (0 if none): every
        plan of objective below `upper` costs at least that (the rows relax them all; more tangents only raise
        the value), so min(upper, it) is a certified bound. The added shares stay in `cuts` for the MILPs."""
        c = self.c
        left = deadline - now()
        if left <= 0.02:
            return 0.0
        rows, cost, usable, extra, var = self._rows(upper)
        highspy, h = highs_model(rows, cost, usable, extra, integer=False)
        h.setOptionValue("simplex_scale_strategy", int(LP_SCALE))
        k = c.dev.size
        lower = 0.0
        lo = self._least(upper)
        while True:
            left = deadline - now()
            if left <= 0.02:
                break
            set_limits(h, left)
            run(h)
            if h.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
                return upper  # no plan below the incumbent
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                self.lp_overran = h.getModelStatus() == highspy.HighsModelStatus.kIterationLimit
                break
            lower = max(lower, float(h.getInfo().objective_function_value) * (1 - 1e-7) * upper)
            val = np.asarray(h.getSolution().col_value)
            starts: list[int] = []
            index: list[int] = []
            value: list[float] = []
            for j in np.flatnonzero(val[:k] > 1e-7).tolist():
                if j not in var["share"]:
                    continue
                q, pw, v = float(c.pay[j]), float(self.power[j]), float(val[j])
                pts: list[float] = []
                for share, above, coef in ((var["share"][j], var["t"][j], q), (var["g"][j], var["e"][j], pw * q)):
                    s_ = min(max(float(val[share]) / v, float(lo[j])), 1.0)
                    a1, s1 = tangents(np.array([s_]), np.array([self.snr[j]]), c.band)
                    if float(val[above]) >= coef * (a1[0] * v + s1[0] * float(val[share])) * (1 - LP_TOL):
                        continue
                    pts.extend(np.minimum(s_ * np.array(LP_SPREAD), 1.0).tolist())
                if not pts:
                    continue
                pts_a = np.unique(np.maximum(np.array(pts), float(lo[j])))
                self.cuts[j].extend(pts_a.tolist())
                a_, s_all = tangents(pts_a, np.full(pts_a.size, self.snr[j]), c.band)
                for share, above, coef in ((var["share"][j], var["t"][j], q), (var["g"][j], var["e"][j], pw * q)):
                    for a1, s1 in zip(a_, s_all, strict=True):
                        starts.append(len(index))
                        index.extend((above, j, share))
                        value.extend((1.0, -coef * float(a1), -coef * float(s1)))
            if not starts:
                break  # no column under-estimated: the relaxation's value at these cuts is its value
            n = len(starts)
            h.addRows(n, np.zeros(n), np.full(n, highspy.kHighsInf), len(index), np.array(starts, dtype=np.int32),
                      np.array(index, dtype=np.int32), np.array(value))
        return min(lower, upper)

    def _least(self, upper: float) -> np.ndarray:
        """[C] each column's least band share that finishes it by `upper` (units of B_e; inf: it cannot)."""
        c = self.c
        slack = upper - c.ready
        with np.errstate(divide="ignore", invalid="ignore"):
            least = min_bandwidth(np.where(slack > 0, c.pay / np.where(slack > 0, slack, 1.0), np.inf), self.snr)
        return np.maximum(least / c.band, 1e-9)

    def solve(self, x0: np.ndarray, relay0: np.ndarray, upper: float, deadline: float,
              gap: float = 0.01) -> EdgeAnswer:
        """Improve and certify the incumbent (x0, relay0) of objective `upper` until the bound is within `gap` of
        the best plan found or `deadline` (solvers/clock.py `now`) passes."""
        p = self.p
        best_x, best_r, best = np.asarray(x0, dtype=bool), np.asarray(relay0, dtype=int), float(upper)
        if INCUMBENT_TANGENTS:
            self._operating(best_x, best_r)
        lower = 0.0
        if LP_SHARE > 0:
            t = now()
            lower = self.lp_bound(best, t + LP_SHARE * max(deadline - t, 0.0))
        # the MILP's root solves this relaxation first: where it alone ran past its work (budget="work"), the MILP
        # would too (a 12-device power / frequency edge: 3,884 root iterations given 407, into the backstop)
        while lower < (1 - gap) * best and not self.lp_overran:
            left = deadline - now()
            if left <= 0.02:
                break
            rows, cost, usable, extra, var = self._rows(best)
            left = deadline - now()  # building the rows took its share (0.1-0.3 s at 12 devices)
            if left <= 0.02:
                break
            saved: list[np.ndarray] = []
            limit = left if self.milps >= REFINE_MILPS or left < SHORT_S else max(FIRST_S, FIRST_SHARE * left)
            status, val, bound = run_milp(rows, cost, usable, extra, min(limit, left), 0.3 * gap, 1.0,
                                          start=self.columns(best_x, best_r), saved=saved)
            self.milps += 1
            if status == "infeasible":  # no plan below the incumbent (the rows relax every such plan)
                lower = best
                break
            lower = max(lower, bound * best)
            if val is None:
                break
            added = 0
            for v in saved[-SAVED:] if saved else [val]:  # HiGHS's improving solutions: each a plan, priced exactly
                cols = np.flatnonzero(v[: self.c.dev.size] > 0.5)
                x, relay = self.c.plan(p.num_devices, cols)
                if feasible(p, x, relay):
                    got, more = self._operating(x, relay)
                    added += more if INCUMBENT_TANGENTS else 0
                    if got < best:
                        best_x, best_r, best = x, relay, got
                added += self._refine(v, cols, var)
            if added == 0 and status == "solved" and bound >= (1 - 0.3 * gap) * float(cost @ val[: cost.size]):
                break  # the answer is priced at its own tangents: its bound is as tight as this model gets
        lower = min(lower, best)
        return EdgeAnswer(best_x, best_r, best, lower, self.milps, lower >= (1 - gap) * best)

    def columns(self, x: np.ndarray, relay: np.ndarray) -> np.ndarray:
        """The columns of plan (x, relay): per device that trains, the one with its subset and uploader."""
        c = self.c
        out = []
        for i in np.flatnonzero(x.any(axis=1)):
            hit = np.flatnonzero((c.dev == i) & (c.up == relay[i]) & np.all((c.mask > 0) == x[i], axis=1))
            out.extend(hit[:1].tolist())
        return np.array(out, dtype=int)


def solve_edge(p: RoundProblem, x0: np.ndarray, relay0: np.ndarray, deadline: float, gap: float = 0.01,
               upper: float | None = None) -> EdgeAnswer:
    """`EdgeModel(p).solve` from the incumbent (x0, relay0) (its exact objective when `upper` is None)."""
    if upper is None:
        upper = exact_cost(p, x0, relay0)
    if not math.isfinite(upper):
        raise ValueError("upper: the incumbent must have a finite objective (a feasible plan)")
    return EdgeModel(p).solve(x0, relay0, upper, deadline, gap)
