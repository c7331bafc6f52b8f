"""lambda > 0, one edge: how high can the subset-column program of solvers/subset_energy.py certify at all?

Per seeded instance (`solver_model_bench.instance(n, mode, lam, seed)`, one edge x 6 modules) a reference plan is
`joint` given --ref CPU seconds (its latency T*, energy E*). Then, with no clock:
- `lp_at_T`: the LP's least energy by T* at its best band price (a grid of nu), over E*;
- `ideal`: min over a grid of T (0.6-2 x T*) of T + lambda E_lb(T), over the plan's objective: the most the
  piecewise bound of solvers/energy_bound.py can reach with this LP, however fine its pieces and long its clock;
- `milp_at_T`: the same program with integer columns, at the LP's best price, over E*;
- the integer program's own choice as a plan: `choice_priced` (what the program charges it) and `choice_exact`
  (its least energy by T*, exact band; inf: it cannot finish by T*), both over E*, and `choice_group_exact`: the
  program's Lagrangian with every relay group charged exactly (its start after the last arrival, its union of
  bits in one upload, b in [least band by T*, B_e]) at the same price, over E*.
`choice_priced` < `choice_group_exact` says the program's prices of a relay group by parts are what lose; the rest
(`choice_exact` - `choice_group_exact`) is the one band price's duality gap. `choice_objective`: that choice's exact
T + lambda E at its own best band over the plan's (below 1: a better plan than the reference). Writes a JSON.

    python experiments/solver_lp_ceiling.py [--sizes 8,12] [--lams 0.5,5] [--seeds 2] [--mode one-hop] [--ref 10]
        --out experiments/results/solver_model/s20/lp_ceiling.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_clock import cpu_deadlines  # noqa: E402
from solver_grid import add_grid, grid, show, write_results  # noqa: E402
from solver_model_bench import instance  # noqa: E402

from solvers import route_lp, solve  # noqa: E402
from solvers.bandwidth import min_bandwidth  # noqa: E402
from solvers.energy import plan_bandwidth, round_uploads  # noqa: E402
from solvers.evaluate import evaluate, round_timeline, uplink_rate  # noqa: E402
from solvers.model import feasible  # noqa: E402
from solvers.subset_energy import EdgeEnergy  # noqa: E402
from solvers.subset_plan import columns_plan  # noqa: E402

NUS = np.exp(np.linspace(-40.0, 5.0, 46))


def best_price(ee: EdgeEnergy, t: float) -> tuple[float, float]:
    """(max over the nu grid of LP(nu) - nu B_e, its nu); (inf, nan) where no plan finishes by t."""
    best, arg = -math.inf, math.nan
    for nu in NUS:
        v = ee.value(t, float(nu), 0.0)
        if v == math.inf:
            return math.inf, math.nan
        if v > best:
            best, arg = v, float(nu)
    return best, arg


def integer_lp(lp: route_lp.RouteLP, c: np.ndarray, upper: np.ndarray):  # noqa: ANN201
    """RouteLP's HiGHS model with the columns integer (the program as a MILP)."""
    out = route_lp.RouteLP._lp(lp, c, upper)
    hs = lp.highspy
    nc = lp.n + lp.ny + lp.nz + lp.nb
    out.integrality_ = [hs.HighsVarType.kInteger] * lp.n + [hs.HighsVarType.kContinuous] * (nc - lp.n)
    return out


def group_exact(p, x: np.ndarray, relay: np.ndarray, t: float, nu: float) -> float:  # noqa: ANN001
    """Compute + D2D energy of (x, relay) + per uploader min over b in [least band by t, B_e] of p U / R(b) + nu b,
    - nu B_e (one edge): the Lagrangian at price nu with each relay group charged exactly."""
    tl = round_timeline(p, x, relay)
    band = float(p.edge_bandwidth_hz[0])
    up = np.flatnonzero(tl.uploader & (tl.bits > 0))
    total = fixed_energy(p, x, relay) - nu * band
    for j in up.tolist():
        w = t - float(tl.start[j])
        need = float(min_bandwidth(np.array([tl.bits[j] / w]), np.array([p.snr_hz[j]]))[0]) if w > 0 else math.inf
        if need > band:
            return math.inf
        pw, bits, a = float(p.tx_power_w[j]), float(tl.bits[j]), float(p.snr_hz[j])

        def g(b: float, pw: float = pw, bits: float = bits, a: float = a) -> float:
            return pw * bits / float(uplink_rate(np.array([b]), np.array([a]))[0]) + nu * b

        r = minimize_scalar(g, bounds=(max(need, 1e-9 * band), band), method="bounded", options={"xatol": 1e-6 * band})
        total += min(float(r.fun), g(max(need, 1e-9 * band)), g(band))
    return total


def fixed_energy(p, x: np.ndarray, relay: np.ndarray) -> float:  # noqa: ANN001
    """Compute + D2D energy of (x, relay): evaluate's energy at some band less its uploads' energy there."""
    tl = round_timeline(p, x, relay)
    up = np.flatnonzero(tl.uploader & (tl.bits > 0))
    b = np.zeros(p.num_devices)
    b[up] = float(p.edge_bandwidth_hz[0]) / max(up.size, 1)
    upload = float(np.sum(p.tx_power_w[up] * tl.bits[up] / uplink_rate(b[up], p.snr_hz[up])))
    return evaluate(p, x, relay, b).energy_j - upload


def choice_objective(p, x: np.ndarray, relay: np.ndarray) -> float:  # noqa: ANN001
    """The integer answer's exact T + lambda E at its own best band (inf where it breaks memory or coverage)."""
    if not feasible(p, x, relay):
        return math.inf
    return evaluate(p, x, relay, plan_bandwidth(p, x, relay)).objective


def row(n: int, mode: str, lam: float, seed: int, ref: float) -> dict:
    p = instance(n, mode, lam, seed)
    with cpu_deadlines():  # the reference plan's deadlines in CPU s
        plan = solve(p, "joint", time_limit_s=ref)
    ev = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz)
    t_star, e_star = ev.latency_s, ev.energy_j
    demand = p.coverage_demand()[0]
    ee = EdgeEnergy.of(p, 0, demand, covers=True, union=p.relay_aggregates, band_row=True)
    assert ee is not None
    lp_t, nu = best_price(ee, t_star)
    env = [t + lam * best_price(ee, t)[0] for t in t_star * np.geomspace(0.6, 2.0, 25)]
    mi = EdgeEnergy.of(p, 0, demand, covers=True, union=p.relay_aggregates, band_row=True)
    assert mi is not None
    mi.lp._lp = lambda c, upper: integer_lp(mi.lp, c, upper)  # type: ignore[method-assign]
    c0 = time.process_time()
    milp_nu = mi.value(t_star, nu, 0.0)
    milp_s = time.process_time() - c0
    val = np.asarray(mi.lp.h.getSolution().col_value)
    x, relay = columns_plan(mi, val, p.num_devices, p.num_modules)
    up, _ = round_uploads(p, x, relay)
    exact_upload, _ = up.energy_at(t_star)
    fixed = fixed_energy(p, x, relay)
    return {"devices": n, "mode": mode, "lambda": lam, "seed": seed, "objective": plan.objective,
            "plan_lower_bound": plan.lower_bound, "T": t_star, "E": e_star, "nu": nu,
            "lp_at_T": lp_t / e_star, "ideal": min(env) / plan.objective,
            "milp_at_T": milp_nu / e_star, "milp_cpu_s": milp_s,
            "choice_priced": milp_nu / e_star, "choice_group_exact": group_exact(p, x, relay, t_star, nu) / e_star,
            "choice_exact": (fixed + exact_upload) / e_star,
            "choice_objective": choice_objective(p, x, relay) / plan.objective,
            "choice_relayed": int(np.sum((relay != np.arange(p.num_devices)) & x.any(axis=1))),
            "plan_relayed": int(np.sum((plan.relay != np.arange(p.num_devices)) & plan.placement.any(axis=1))),
            "load_1min": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.5,5", seeds=2, mode="one-hop")
    ap.add_argument("--ref", type=float, default=10.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for n, lam, seed in grid(a):
        r = row(n, a.mode, lam, seed, a.ref)
        rows.append(r)
        show(r)
    write_results(a.out, rows, {"ref_cpu_s": a.ref})


if __name__ == "__main__":
    main()
