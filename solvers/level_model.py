"""Compression levels chosen jointly with placement and relays by column MILPs at trial latencies.

The columns of solvers/latency_model.py (device, module subset, route) get one more dimension, the level l: the
payload is phi_l P, a relayed column's D2D hop takes phi_l P / r (a relay forwards each payload at its sender's
level), and the column carries the level's distortion d_l (0 for a subset of no bytes: a device that sends nothing
adds none). At a trial latency T each column's least band at T is a number (as in latency_model.py), so per edge

    D_e(T) = min  sum_c d_c v_c   s.t.  sum_c band_c(T) v_c (+ pair excesses) <= B_e,  the choice rows

is the least distortion with which edge e finishes by T (a column MILP: solvers/column_milp.py). At lambda = 0 the
edges share only the round's clock and the distortion budget, so the round finishes by T within the budget iff
F(T) = sum_e D_e(T) <= D: the budget needs no split over edges. F never increases with T, so HiGHS's dual bounds
give F_lb(T) <= F(T) and, for tested T_1 < ... < T_K (T_0: the relaxed round's latency bound, below every plan),

    lower bound = min( incumbent,  min_k  T_k + mu F_lb(T_{k+1}) )      over k with F_lb(T_{k+1}) <= D

(a plan of latency in [T_k, T_{k+1}] pays at least T_k + mu F(T_{k+1})): valid for the round's program over
placement, relays, levels and bandwidth. Relayed columns under-estimate a relay group's band (R^-1 is
superadditive; the pair excesses of latency_model.py are added up front, the group cuts are not), which keeps the
bound valid; a MILP plan is costed exactly and kept only when it beats the incumbent.

lambda > 0: the edges share T and the energy, so at each trial T one MILP over the modelled edges gives G_lb(T), a
lower bound on the least lambda E + mu D of a plan finishing by T within the budget (solvers/level_energy.py:
upload energy by tangents, valid at any time limit), and the bound is min_k T_k + G_lb(T_(k+1)) as above (G(T) in
place of mu F(T)); the search is that of mu > 0.
Applies to one-hop rounds (relays that aggregate only without D2D links: a relay's union goes at its own level,
which no column prices; `refusal` says why a round is not taken), on the edges of at most MODEL_MAX_DEVICES devices
and MAX_COLUMNS columns; the other edges keep the incumbent's choice and count as free in the bound: `applies` says
whether any edge is modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from solvers.clock import now
from solvers.column_milp import INF, Extra, Row, choice_rows, minimal_covers, run_milp
from solvers.energy import plan_bandwidth
from solvers.evaluate import evaluate
from solvers.instance import RoundProblem
from solvers.latency_model import PAIR_MIN, EdgeColumns
from solvers.level_energy import least_cost
from solvers.parallel import restrict

MESSAGE = "levels, placement and relays by the joint level model (solvers/level_model.py)"
"""How a plan of this model's search begins its message (hffm logs plan/level_model from it)."""
MODEL_MAX_DEVICES = 16
MAX_COLUMNS = 20000
"""Most (device, subset, route, level) columns of one edge (subsets between the forced and the useful modules); a
larger edge is not modelled: it keeps the incumbent's choice, and the bound counts it as free (no latency, no
distortion), which keeps it valid."""
MAX_JOINT_COLUMNS = 40000
"""lambda > 0: most columns of the one MILP over the edges (solvers/level_energy.py); the edges past it are not
modelled (they keep the incumbent's choice and count as free in the bound)."""
TRIAL = 0.9
DISTORTION_GAP = 1e-3
"""Each edge's least distortion is solved to this relative gap, and to this share of the largest level distortion
as an absolute gap (its dual bound enters the round's bound, so a gap costs tightness, never validity; without the
absolute gap HiGHS spent seconds separating int8 from fp16 at 1e-6 on the 40-device preset). HiGHS's presolve is
off: on those edges it took 1.1 of 1.45 s (its feasibility jump is off, as in every MILP of solvers/highs.py)."""
STEPS = (0.02, 0.05, 0.1, 0.2, 0.35)
"""mu > 0: after the incumbent's objective and latency, T = (1 - step) x its latency: the ladder of latencies whose
least distortion is priced (each settled point tightens the bound); then the interval that sets the bound is split,
up to MAX_POINTS settled latencies."""
MAX_POINTS = 16
MAX_POINTS_ENERGY = 48
"""lambda > 0: one MILP a point, and the pieces between them set the bound (16 left 3-5-device rounds at 1.2-2.9 %
unproven with their optimum found)."""
SEARCH_SHARE = 0.4
"""mu = 0: the share of the time left for the search (the ladder gets the rest)."""
LADDER = (0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.035, 0.025, 0.018, 0.013)
"""mu = 0, where the search stops unproven: T = (1 - step) x the incumbent's latency, coarse first (as
solvers/latency_search.py)."""


def applies(p: RoundProblem) -> bool:
    """Whether the joint level model covers some edge of this round (see the module doc)."""
    if p.level_factor is None or p.tree_aggregation or p.has_power_frequency:
        return False
    if p.relay_aggregates and p.d2d_src.size > 0:
        return False
    return any(_fits(restrict(p, np.array([e]))[0], len(p.level_factor)) for e in range(p.num_edges))


def refusal(p: RoundProblem) -> str:
    """Why the joint level model does not take this round (empty if it does): the plan's message says so."""
    if p.level_factor is None:
        return "no levels offered"
    if p.tree_aggregation or p.has_power_frequency:
        return "the joint level model does not take trees or power / frequency decisions"
    if p.relay_aggregates and p.d2d_src.size > 0:
        return ("the joint level model does not take relays that aggregate (a relay's union goes at its own "
                "level: no column prices it); relay_aggregates=false or no D2D links")
    if not applies(p):
        return (f"the joint level model takes no edge here (each has over {MODEL_MAX_DEVICES} devices or "
                f"{MAX_COLUMNS} columns)")
    return ""


def _reduced(sub: RoundProblem) -> tuple[np.ndarray, np.ndarray]:
    """[n, M] of one edge: `forced` (the device is in every minimal cover of the module's demand, so every feasible
    plan has it train the module) and `useful` (eligible, with samples, the module's demand > 0: a plan that trains
    anything else is no better than the same plan without it)."""
    dem = sub.coverage_demand()[0]
    useful = sub.eligible & (dem > 0)[None, :] & (sub.samples > 0)[:, None]
    forced = np.zeros_like(useful)
    for m in np.flatnonzero(dem > 0):
        holders, covers = minimal_covers(sub, int(m), float(dem[m]))
        if covers.shape[0]:
            forced[holders[covers.all(axis=0)], m] = True
    return forced, useful


def column_count(sub: RoundProblem, levels: int) -> float:
    """How many columns one edge has at most: subsets between forced and useful, times routes and levels."""
    forced, useful = _reduced(sub)
    routes = 1 + np.bincount(sub.d2d_src, minlength=sub.num_devices)
    free = (useful & ~forced).sum(axis=1)
    return float(np.sum(2.0 ** free * routes) * levels)


def _fits(sub: RoundProblem, levels: int) -> bool:
    """The edge is modelled: at most MODEL_MAX_DEVICES devices and MAX_COLUMNS columns."""
    if sub.num_devices == 0 or sub.num_devices > MODEL_MAX_DEVICES:
        return False
    return column_count(sub, levels) <= MAX_COLUMNS


@dataclass
class LevelColumns:
    """One edge's columns with levels: `c` as EdgeColumns (so the choice rows and band costs apply as they are),
    with the level and the distortion of each column."""

    sub: RoundProblem
    dev: np.ndarray  # the edge's devices in the round
    c: EdgeColumns
    level: np.ndarray  # [C]
    distortion: np.ndarray  # [C]
    abs_gap: float  # DISTORTION_GAP x the largest distortion offered

    @classmethod
    def of(cls, p: RoundProblem, e: int) -> LevelColumns:
        assert p.level_factor is not None and p.level_distortion is not None
        sub, dev = restrict(p, np.array([e]))
        b = EdgeColumns.of(sub)
        forced, useful = _reduced(sub)
        on = b.mask.astype(bool)
        keep = ~(on & ~useful[b.dev]).any(axis=1) & ~(forced[b.dev] & ~on).any(axis=1)
        slot = np.full(b.dev.size, -1)
        slot[keep] = np.arange(int(keep.sum()))
        b = EdgeColumns(dev=b.dev[keep], mask=b.mask[keep], up=b.up[keep], ready=b.ready[keep], pay=b.pay[keep],
                        band=b.band, snr=b.snr, twin=slot[b.twin[keep]], union_bits=None)
        tau = sub.samples[b.dev] * (b.mask @ sub.module_cycles) / sub.cpu_hz[b.dev]
        hop = b.ready - tau
        n_l, k = len(p.level_factor), b.dev.size
        lv = np.repeat(np.arange(n_l), k)
        base = np.tile(np.arange(k), n_l)
        keep = (b.pay[base] > 0) | (lv == 0)  # a subset of no bytes sends nothing: one column, no distortion
        lv, base = lv[keep], base[keep]
        slot = np.full(n_l * k, -1)
        slot[np.flatnonzero(keep)] = np.arange(lv.size)
        f = p.level_factor[lv]
        c = EdgeColumns(dev=b.dev[base], mask=b.mask[base], up=b.up[base], ready=tau[base] + hop[base] * f,
                        pay=b.pay[base] * f, band=b.band, snr=b.snr, twin=slot[lv * k + b.twin[base]],
                        union_bits=None)
        dist = np.where(c.pay > 0, p.level_distortion[lv], 0.0)
        return cls(sub, dev, c, lv, dist, DISTORTION_GAP * max(float(p.level_distortion.max()), 1e-12))

    def at(self, t: float, time_limit: float, cutoff: float, objective: bool = True
           ) -> tuple[str, np.ndarray | None, float]:
        """The MILP at latency t: (status, chosen columns, dual bound on the least distortion); "infeasible" when
        no choice finishes by t with distortion <= cutoff."""
        c, p = self.c, self.sub
        cost = c.cost(t)
        usable = cost <= 1.0 + 1e-9  # a column that needs more than the edge's band alone never fits
        k = c.dev.size
        extra = Extra(k)
        rows = choice_rows(p, c, extra)
        band: dict[int, float] = {int(j): float(cost[j]) for j in np.flatnonzero(usable)}
        pair_rows, excess = self.pairs(t, usable, extra)
        rows += pair_rows
        band.update({var: 1.0 for _, var in excess})
        rows.append((band, -INF, 1.0 + 1e-9))
        obj = self.distortion if objective else np.zeros(k)
        status, val, bound = run_milp(rows, obj, usable, extra, time_limit, DISTORTION_GAP, cutoff,
                                      {"presolve": "off", "mip_abs_gap": self.abs_gap})
        if status != "solved" or val is None:
            return status, None, bound
        sol = np.flatnonzero(val[:k] > 0.5)
        return "solved", sol, min(bound, float(self.distortion[sol].sum())) if objective else 0.0

    def pairs(self, t: float, usable: np.ndarray, extra: Extra) -> tuple[list[Row], list[tuple[int, int]]]:
        """The pair excesses of latency_model.py on every D2D link: their rows and (relay, excess variable) of each
        (the variables belong in the band that the relay's upload takes)."""
        c, p = self.c, self.sub
        rows: list[Row] = []
        out: list[tuple[int, int]] = []
        for i, j in sorted({(int(a), int(b)) for a, b in zip(p.d2d_src, p.d2d_dst, strict=True)}):
            own, rel, excess = c.pair_extra(i, j, t)
            if own.size == 0 or rel.size == 0:
                continue
            var = extra.add(0.0)
            out.append((j, var))
            for a, o in enumerate(own):
                if not usable[o]:
                    continue
                row = excess[a]
                for q in np.flatnonzero(usable[rel] & ~np.isfinite(row)):  # never together
                    rows.append(({int(o): 1.0, int(rel[q]): 1.0}, -INF, 1.0))
                fin = usable[rel] & np.isfinite(row) & (row > PAIR_MIN)
                if fin.any():
                    big = float(row[fin].max())
                    coefs = {var: 1.0, int(o): -big}
                    coefs.update({int(r): -float(v) for r, v in zip(rel[fin], row[fin], strict=True)})
                    rows.append((coefs, -big, INF))
        return rows, out


@dataclass(frozen=True)
class LevelPlan:
    """The level model's answer: placement, relays and levels, the certified lower bound, the MILPs run."""

    x: np.ndarray
    relay: np.ndarray
    level: np.ndarray
    objective: float
    lower_bound: float
    milps: int
    settled: int  # trial latencies settled (every edge's MILP finished)


def solve_levels(p: RoundProblem, x0: np.ndarray, relay0: np.ndarray, level0: np.ndarray, t_floor: float,
                 deadline: float, gap: float = 0.01) -> LevelPlan:
    """Improve and certify the incumbent (x0, relay0, level0) of the round p (`applies(p)`); t_floor: a valid lower
    bound on the round's latency (the relaxed round's)."""
    assert p.level_factor is not None
    cols = [LevelColumns.of(p, e) for e in range(p.num_edges)
            if _fits(restrict(p, np.array([e]))[0], len(p.level_factor))]
    budget = math.inf if p.distortion_budget is None else float(p.distortion_budget) * (1 + 1e-9)
    mu, lam = p.distortion_penalty, p.lam
    priced = mu > 0 or lam > 0  # the objective has more than the latency: G(T) is priced at each trial T
    best = (np.asarray(x0, dtype=bool), np.asarray(relay0, dtype=int), np.asarray(level0, dtype=int))
    best_cost = _cost(p, *best)
    if lam > 0:  # one MILP over the edges: the slowest edges first, up to MAX_JOINT_COLUMNS columns in all
        order = np.argsort([-best_cost.edge_latency_s[int(p.device_edge[lc.dev[0]])] for lc in cols], kind="stable")
        sizes = np.array([cols[i].c.dev.size for i in order])
        cols = [cols[i] for i in order[: max(1, int(np.sum(np.cumsum(sizes) <= MAX_JOINT_COLUMNS)))]]
    tested: list[tuple[float, float]] = []  # (T, G_lb(T)): a lower bound on lambda E + mu D by T; inf: no plan
    milps = settled = 0

    def bound() -> tuple[float, float, float]:
        """The lower bound and the interval [left, right] of tested latencies that sets it."""
        lb, left, at = best_cost.objective, t_floor, (t_floor, t_floor)
        for t, g in sorted(tested):  # a plan of latency in [left, t] pays at least left + G(t); none if G(t) = inf
            if t <= left:
                continue
            if left + g < lb:
                lb, at = left + g, (left, t)
            left = t
        if left < lb:  # a plan slower than every tested latency pays at least the last
            lb, at = left, (left, left)
        return lb, *at

    def point(t: float, until: float) -> tuple[float, list[np.ndarray | None]]:
        """G_lb(t) (inf: no plan finishes by t within the budget) and the edges' columns (None: not solved).
        lambda = 0: the edges' least distortions, the slowest edges first (they decide whether t is reachable; an
        edge not solved in time counts 0); lambda > 0: one MILP over the edges (solvers/level_energy.py)."""
        nonlocal milps, settled
        if lam > 0:
            if until - now() <= 0.05:  # too little left to build and solve the MILP
                return 0.0, [None] * len(cols)
            _, picked, g = least_cost(p, cols, t, until - now(), best_cost.objective, budget,
                                      max(best_cost.objective - t_floor, 0.0) * (1 + 1e-9), shares)
            milps += 1
            settled += 1
            tested.append((t, g))
            return g, picked
        order = np.argsort([-best_cost.edge_latency_s[int(p.device_edge[lc.dev[0]])] for lc in cols], kind="stable")
        total, chosen = 0.0, [None] * len(cols)  # type: tuple[float, list[np.ndarray | None]]
        for i in order.tolist():
            left = until - now()
            if left <= 0.02:
                break
            status, sol, lb = cols[i].at(t, left, budget, objective=math.isfinite(budget) or mu > 0)
            milps += 1
            if status == "infeasible":
                total = math.inf
                break
            total += lb
            chosen[i] = sol
            if total > budget:
                break
        settled += 1
        g = mu * total if total <= budget else math.inf
        tested.append((t, g))
        return g, chosen

    shares = _shares(p, cols, best)
    # priced: first the incumbent's objective U (plans slower than U cost more), then its latency, then the ladder;
    # lambda > 0: its latency and the ladder first, U after them (at U the least-energy MILP is the hardest: on 8
    # devices it took the whole second the model had)
    t = best_cost.latency_s * (1 - TRIAL * gap) if not priced else best_cost.latency_s if lam > 0 else \
        best_cost.objective
    steps = (0.0, *STEPS)
    search = deadline if priced else now() + SEARCH_SHARE * (deadline - now())
    while now() < search and t > t_floor:  # (no plan is faster than t_floor)
        g, chosen = point(t, search)
        if not math.isfinite(g):
            if not priced:
                break  # no plan finishes by t: t is the bound
        elif any(sol is not None for sol in chosen):
            got = _assemble(best, cols, chosen)  # edges not solved keep the incumbent's choice
            cost = _cost(p, *got)
            # (with edges not modelled the plan may break the budget; with relays it may not finish by t)
            fits = p.with_levels(got[2]).distortion(got[0]) <= budget
            if fits and cost.objective < best_cost.objective * (1 - 1e-12):
                best, best_cost = got, cost
                if lam > 0:
                    shares = _shares(p, cols, best)
            elif not priced:
                break  # the MILP's plan is no better: stop searching
        elif not priced:
            break
        lb, left, right = bound()
        if lb >= (1 - gap) * best_cost.objective:
            break
        if not priced:
            t = best_cost.latency_s * (1 - TRIAL * gap)
            continue
        floor = max([t_floor] + [a for a, g in tested if not math.isfinite(g)])
        seen = [a for a, _ in tested]
        below = [c for c in (best_cost.latency_s * (1 - s) for s in steps)
                 if floor < c and not any(abs(c - a) <= 1e-9 * c for a in seen)]
        if below:  # the next step of the ladder below the incumbent's latency
            t = below[0]
        elif max(seen) < best_cost.objective * (1 - 1e-9):  # (lambda > 0) then U
            t = best_cost.objective
        elif right > left and settled < (MAX_POINTS_ENERGY if lam > 0 else MAX_POINTS):  # then split the interval
            t = 0.5 * (left + right)
        else:
            break
    if not priced:  # not proven: a ladder of coarser latencies, coarse first, each one no plan reaches is a bound
        for step in LADDER:
            t = best_cost.latency_s * (1 - step)
            if t <= bound()[0] or now() >= deadline:
                continue
            g, _ = point(t, deadline)
            if math.isfinite(g):
                break
    return LevelPlan(*best, best_cost.objective, bound()[0], milps, settled)


def _shares(p: RoundProblem, cols: list[LevelColumns], plan: tuple[np.ndarray, np.ndarray, np.ndarray]
            ) -> list[dict[int, list[float]]]:
    """Per modelled edge, per local uploader: its band share in the plan's T + lambda E band (tangents there price
    the plan's own upload energy exactly)."""
    if p.lam <= 0:
        return [{} for _ in cols]
    x, relay, level = plan
    q = p.with_levels(level)
    b = plan_bandwidth(q, x, relay)
    return [{j: [float(b[d]) / float(lc.sub.edge_bandwidth_hz[0])] for j, d in enumerate(lc.dev) if b[d] > 0}
            for lc in cols]


def _assemble(best: tuple[np.ndarray, np.ndarray, np.ndarray], cols: list[LevelColumns],
              chosen: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The incumbent with the chosen columns of the edges solved in place."""
    x, relay, level = best[0].copy(), best[1].copy(), best[2].copy()
    for lc, sol in zip(cols, chosen, strict=True):
        if sol is None:
            continue
        xs, rs = lc.c.plan(lc.dev.size, sol)
        x[lc.dev] = xs
        relay[lc.dev] = lc.dev[rs]
        level[lc.dev] = 0
        level[lc.dev[lc.c.dev[sol]]] = lc.level[sol]
    return x, relay, level


def _cost(p: RoundProblem, x: np.ndarray, relay: np.ndarray, level: np.ndarray):  # noqa: ANN202
    q = p.with_levels(level)
    return evaluate(q, x, relay, plan_bandwidth(q, x, relay))
