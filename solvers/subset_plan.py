"""lambda > 0, one edge whose relays forward: a candidate plan read off the subset-column program as a MILP.

The subset program of solvers/subset_energy.py (columns: a device's module subset and route; coverage with minimal
covers, one hop, the band row; each column priced with its least energy by a latency T at a band price nu) is
solved with integer columns at the incumbent's latency T and the band price whose LP value is largest on a fixed
grid. Its answer is a plan (x, relay); `evaluate` prices it at its own best band, and it replaces the incumbent only
where that exact objective is lower. The program charges a relay group by parts, so its answer may not finish by T
at all (experiments/solver_lp_ceiling.py); but on 4 of 8 seeded 8-12-device edges (lambda 0.5 and 5) its answer was
a plan 1.1-5.8 % better than joint's 2 s plan (`choice_objective` there). HiGHS stops at the time given (its best
integer answer so far is used) and is charged on the work meter, so under budget="work" the answer is deterministic.
"""

from __future__ import annotations

import math

import numpy as np

from solvers.clock import highs_limits, now
from solvers.energy import plan_bandwidth
from solvers.evaluate import evaluate
from solvers.highs import highs, run
from solvers.instance import RoundProblem
from solvers.model import feasible
from solvers.subset_energy import EdgeEnergy

LOG_NU = np.linspace(-24.0, -6.0, 19)
"""ln of the band prices (J per Hz) tried with the LP; the best is the MILP's (on the seeded 8-12-device edges of
experiments/solver_lp_ceiling.py the best lay at e^-15 to e^-12)."""
PRICE_SHARE = 0.3
"""Part of the time given for the price search (LPs); the MILP gets the rest."""


def subset_plan(p: RoundProblem, latency: float, deadline: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(x, relay, exact objective) of the subset MILP's answer at `latency`, or None where none was found in time
    (or it breaks memory, coverage or one hop)."""
    start = now()
    if p.num_edges != 1 or p.relay_aggregates or p.has_power_frequency or deadline - start <= 0.05:
        return None
    ee = EdgeEnergy.of(p, 0, p.coverage_demand()[0], covers=True, band_row=True)
    if ee is None:
        return None
    best, nu = -math.inf, 0.0
    by = start + PRICE_SHARE * (deadline - start)
    for lnu in LOG_NU:
        if now() >= by:
            break
        v = ee.value(latency, math.exp(float(lnu)), 0.0)
        if v == math.inf:
            return None  # no plan finishes by the incumbent's latency: nothing to read off
        if v > best:
            best, nu = v, math.exp(float(lnu))
    left = deadline - now()
    if best == -math.inf or left <= 0.02:
        return None
    lp = ee.lp
    cost = ee.costs(latency, nu, 0.0)
    usable = np.isfinite(cost)
    nc = lp.n + lp.ny + lp.nz + lp.nb
    # the band row as the LP calls set it
    model = lp._lp(np.where(usable, cost, 0.0), usable.astype(float), integer=[True] * lp.n + [False] * (nc - lp.n))
    h = run(highs(lp.bare, model, **highs_limits(left)))  # its limits as set before the model: rows 0 in the node limit
    if h.getInfo().primal_solution_status != 2:  # no feasible integer answer
        return None
    val = np.asarray(h.getSolution().col_value)
    x, relay = columns_plan(ee, val, p.num_devices, p.num_modules)
    if not feasible(p, x, relay):
        return None
    return x, relay, float(evaluate(p, x, relay, plan_bandwidth(p, x, relay)).objective)


def columns_plan(ee: EdgeEnergy, val: np.ndarray, n_dev: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The subset program's integer answer (its column values `val`) as a plan (x, relay)."""
    k = ee.dev.size
    x, relay = np.zeros((n_dev, m), dtype=bool), np.arange(n_dev)
    for c in np.flatnonzero(val[:k] > 0.5):
        x[ee.dev[c]] |= ee.mbits[c] > 0
    for li in np.flatnonzero(val[k:ee.lp.n] > 0.5):
        c = ee.lcol[li]
        x[ee.dev[c]] |= ee.mbits[c] > 0
        relay[ee.dev[c]] = ee.ldst[li]
    return x, relay
