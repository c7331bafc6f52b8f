"""relay_aggregates at scale (lambda = 0): one union LP's dual certifies a whole range of trial latencies.

The union LP of solvers/union_bound.py (each uploader's band at least its largest member's) refutes about 0.65 of
the plan's latency on 100-device edges, where the route LP with relayed subsets at 0 refutes about 0.55; but one LP
there has 50,000-70,000 routes and takes 1-2 CPU s, so bisecting the trial latency with it (as solvers/bounds.py
does on small edges) does not fit a 2 s round. Its dual does: for multipliers beta >= 0 (coverage rows), gamma >= 0
(pair rows, sum over an uploader's pairs <= 1), weak duality gives, at any trial latency t,

    LP(t) >= D(t) = sum_m beta_m d_m - sum_i max(0, max over device i's routes r finishing by t of
                                                  (sum_m cov_rm beta_m - gamma_pair(r) w_r(t)))

(the device rows' multipliers chosen as small as the routes allow; no other term depends on t). w_r(t) (the
route's least band) falls as t grows, so D is nonincreasing in t, and D(t) > 1 (units of B_e) proves that no plan
of the edge finishes by t. So one LP at a trial t0, and a bisection over D for free: the largest t it refutes (also
when that is below t0, where the LP itself refuted nothing).
Whatever the LP's status (optimal, or stopped by the clock), the multipliers are clipped to their signs and each
uploader's gamma scaled to sum at most 1, so the bound is valid for any numbers HiGHS returns. Under the wall clock
the LP goes to HiGHS's interior point method without crossover (one 68,918-route LP: 1.0 against 1.66 CPU s for
the dual simplex, the same value to 1e-9); under a work budget to the dual simplex, whose iterations the work meter
counts at their cost (an interior point iteration costs about 250 simplex iterations there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.bounds import EdgeRoutes
from solvers.clock import current_meter, highs_limits, now
from solvers.highs import bare_highs, highs, run
from solvers.instance import RoundProblem
from solvers.union_bound import union_lp

TRIAL = 0.66
"""The first LP's trial latency, x the edge's plan latency: on the slowest edges of four 1,000-device rounds not in
the benchmark (seeds 5-8) the LP's own threshold lay at 0.68-0.71 x, and one LP at 0.6 / 0.63 / 0.66 refuted up to
0.641-0.666 / 0.659-0.684 / 0.673-0.697 x."""
REFINE = 0.02
"""While time is left, the next LP's trial latency: 1 + REFINE x the largest refuted so far (halfway to the least
trial whose LP refuted nothing, if nearer)."""
STEPS = 16
"""Bisection steps over D (each a vectorized pass over the routes)."""
RESERVE = 1.5
"""The LP stops RESERVE x STEPS x one pass's time (about 4 ms on 68,918 routes) before the deadline, so the
bisection after it fits."""
MAX_ROUTES = 200_000
"""Edges of more routes are left out (building the LP alone would outlast a 2 s round)."""


def union_dual_bound(p: RoundProblem, e: int, upper: float, by: float, trial: float = TRIAL) -> float:
    """Largest latency of edge e refuted by the duals of union LPs at trial latencies (the first trial x upper,
    upper: a latency the edge achieves), solved until `by` on the solve's clock (solvers/clock.now); 0: none."""
    need = p.coverage_demand()[e]
    if not (need > 0).any() or p.num_modules > 12:  # 2^M subsets per device (as solvers/bounds.py)
        return 0.0
    routes = EdgeRoutes.of(p, e, [0])
    if routes.col.size > MAX_ROUTES:
        return 0.0
    best, t, fail = 0.0, trial * upper, upper  # fail: the least trial whose own LP refuted nothing
    while now() < by:
        start = now()
        w = _band(p, routes, t)
        reserve = RESERVE * STEPS * (now() - start)  # the bisection over D after the LP: STEPS passes like this one
        if now() + reserve >= by:
            break
        got = _duals(p, routes, need, w, by - reserve - now())
        if got is None:
            break
        value = _dual_value(p, routes, need, *got)
        lo, hi = best, fail  # D bounds every latency: the largest it refutes, even below a trial it does not
        for _ in range(STEPS):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if value(mid) > 1 + 1e-6 else (lo, mid)
        best = lo
        if not value(t) > 1 + 1e-6:
            fail = t
        t = min(best * (1 + REFINE), 0.5 * (best + fail)) if best > 0 else 0.8 * t
        if t <= best * (1 + 1e-3) or t < 0.3 * upper:
            break
    return best


def _band(p: RoundProblem, r: EdgeRoutes, t: float) -> np.ndarray:
    """[routes] least band (units of B_e) to finish by t (inf: cannot)."""
    slack = t - r.ready
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(slack > 0, r.pay[r.col] / np.where(slack > 0, slack, 1.0), np.inf)
    return min_bandwidth(q, r.a) / p.edge_bandwidth_hz[r.edge]


def _duals(p: RoundProblem, r: EdgeRoutes, demand: np.ndarray, w: np.ndarray,
           seconds: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(beta [M] per unit of demand, gamma [routes]) of the union LP at route bands w, clipped to be dual feasible;
    None when HiGHS gives no duals."""
    fast = bare_highs()
    if fast is None:
        return None
    highspy, bare = fast
    lp, rows = union_lp(highspy, r.dev, r.mbits, p.samples, demand, r.col, r.up, w)
    if lp is None:
        return None
    # wall clock: the interior point method, no crossover (any duals serve)
    ipm: dict[str, Any] = {"solver": "ipm", "run_crossover": "off"} if current_meter() is None else {}
    sol = run(highs(bare, lp, **highs_limits(seconds), **ipm)).getSolution()  # limits as set before the model
    if not sol.dual_valid:
        return None
    dual = np.asarray(sol.row_dual, dtype=float)
    nd, need, pair_of_route, pair_up = rows
    m = p.num_modules
    beta = np.zeros(m)
    beta[np.flatnonzero(need)] = np.maximum(dual[nd:nd + int(need.sum())], 0.0)
    gam_pair = np.maximum(-dual[nd + int(need.sum()):], 0.0)  # <= rows: HiGHS's duals are <= 0 at the bound
    tot = np.bincount(pair_up, weights=gam_pair, minlength=int(pair_up.max(initial=-1)) + 1)
    gam_pair = gam_pair / np.maximum(tot[pair_up], 1.0)  # sum over an uploader's pairs <= 1
    gamma = np.zeros(r.col.size)
    on = pair_of_route >= 0
    gamma[on] = gam_pair[pair_of_route[on]]
    return beta, gamma


def _dual_value(p: RoundProblem, r: EdgeRoutes, demand: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> Any:
    """t -> D(t) of the module doc (units of B_e)."""
    need = demand > 0
    scale = float(demand[need].max())
    base = float(np.sum(beta[need] * demand[need] / scale * (1 - 1e-9)))
    cover = (r.mbits * (p.samples[r.dev] / scale)[:, None]) @ beta  # [columns] sum_m cov beta
    order = np.argsort(r.dev[r.col], kind="stable")  # routes grouped by device: a max per group by reduceat
    first = np.flatnonzero(np.concatenate([[True], np.diff(r.dev[r.col][order]) != 0]))
    gain, gam = cover[r.col][order], gamma[order]

    def value(t: float) -> float:
        w = _band(p, r, t)[order]
        ok = np.isfinite(w)
        c = np.where(ok, gain - gam * np.where(ok, w, 0.0), -np.inf)
        alpha = np.maximum(np.maximum.reduceat(c, first), 0.0) if c.size else np.zeros(0)
        return base - float(alpha.sum())

    return value
