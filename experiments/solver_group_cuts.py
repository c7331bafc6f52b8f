"""lambda > 0, one edge: how much of the subset program's gap is its relay groups' prices by parts? (no clock)

Per seeded instance (as in experiments/solver_lp_ceiling.py: a reference plan of --ref CPU s, latency T*, energy
E*), the subset-column program of solvers/subset_energy.py with integer columns at T* and the LP's best band price
nu, then a loop: each upload group of the program's answer (an uploader's own column and the routes into it) is
charged exactly (compute + D2D + min over b in [least band by T*, B_e] of p U / R(b) + nu b, its start after the
last arrival), and where that exceeds the sum of its columns' prices by delta a cut charges delta whenever exactly
those columns feed that uploader (z >= delta (sum of the group's x - sum of the uploader's other columns' x - |g| +
1), z >= 0 at cost 1; a group that cannot finish by T* is cut off). Every plan of latency <= T* keeps its
program value at most its exact Lagrangian value, so the MILP's value stays a lower bound on E_min(T*) at that
price (HiGHS's dual bound where a solve stops at --milp-s). Prints the value / E* after each round.

    python experiments/solver_group_cuts.py [--sizes 8,12] [--lams 0.5,5] [--seeds 2] [--ref 2] [--rounds 30]
        --out experiments/results/solver_model/s20/group_cuts.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_clock import cpu_deadlines  # noqa: E402
from solver_grid import add_grid, grid, write_results  # noqa: E402
from solver_lp_ceiling import best_price, group_exact, integer_lp  # noqa: E402
from solver_model_bench import instance  # noqa: E402

from solvers import solve  # noqa: E402
from solvers.evaluate import evaluate  # noqa: E402
from solvers.subset_energy import EdgeEnergy  # noqa: E402

BIG = 1e6
"""The charge of a group that cannot finish by T* (J; far above any edge's energy here)."""


def groups(ee: EdgeEnergy, val: np.ndarray) -> dict[int, list[int]]:
    """Per uploader, the program's chosen columns feeding it (its own direct column first, then routes)."""
    k = ee.dev.size
    out: dict[int, list[int]] = {}
    for c in np.flatnonzero(val[:k] > 0.5).tolist():
        out.setdefault(int(ee.dev[c]), []).insert(0, c)
    for li in np.flatnonzero(val[k:ee.lp.n] > 0.5).tolist():
        out.setdefault(int(ee.ldst[li]), []).append(k + li)
    return out


def plan_of(ee: EdgeEnergy, cols: list[int], n_dev: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    k = ee.dev.size
    x, relay = np.zeros((n_dev, m), dtype=bool), np.arange(n_dev)
    for c in cols:
        own = c if c < k else int(ee.lcol[c - k])
        x[ee.dev[own]] |= ee.mbits[own] > 0
        if c >= k:
            relay[ee.dev[own]] = ee.ldst[c - k]
    return x, relay


def row(n: int, lam: float, seed: int, ref: float, rounds: int, milp_s: float) -> dict:
    p = instance(n, "one-hop", lam, seed)
    with cpu_deadlines():
        plan = solve(p, "joint", time_limit_s=ref)
    ev = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz)
    t_star, e_star = ev.latency_s, ev.energy_j
    demand = p.coverage_demand()[0]
    ee = EdgeEnergy.of(p, 0, demand, covers=True, band_row=True)
    assert ee is not None
    lp_val, nu = best_price(ee, t_star)
    mi = EdgeEnergy.of(p, 0, demand, covers=True, band_row=True)
    assert mi is not None
    mi.lp._lp = lambda c, upper: integer_lp(mi.lp, c, upper)  # type: ignore[method-assign]
    band = float(p.edge_bandwidth_hz[0])
    cost = mi.costs(t_star, nu, 0.0)
    first = mi.value(t_star, nu, 0.0)
    h = mi.lp.h
    h.setOptionValue("time_limit", milp_s)
    k = mi.dev.size
    feeds = {int(j): np.concatenate([np.flatnonzero(mi.dev == j), k + np.flatnonzero(mi.ldst == j)])
             for j in np.unique(mi.dev)}
    trace, cuts, cpu = [first / e_star], 0, time.process_time()
    for _ in range(rounds):
        val = np.asarray(h.getSolution().col_value)
        added = 0
        for j, cols in groups(mi, val).items():
            x, relay = plan_of(mi, cols, p.num_devices, p.num_modules)
            exact = group_exact(p, x, relay, t_star, nu) + nu * band  # this group alone, + nu B_e back
            delta = (BIG if not math.isfinite(exact) else exact) - float(np.sum(cost[cols]))
            if delta <= 1e-6 * e_star:
                continue
            others = np.setdiff1d(feeds[j], cols)
            z = h.getNumCol()
            h.addCol(1.0, 0.0, math.inf, 0, np.zeros(0, dtype=np.int32), np.zeros(0))
            idx = np.concatenate([[z], cols, others]).astype(np.int32)
            vals = np.concatenate([[1.0], np.full(len(cols), -delta), np.full(others.size, delta)])
            h.addRow(delta * (1 - len(cols)), math.inf, idx.size, idx, vals)
            added += 1
        if added == 0:
            break
        cuts += added
        h.run()
        info = h.getInfo()
        status = h.getModelStatus()
        bound = float(info.mip_dual_bound) if status != mi.lp.highspy.HighsModelStatus.kOptimal else float(
            info.objective_function_value)
        trace.append((bound - nu * band) / e_star)
    return {"devices": n, "lambda": lam, "seed": seed, "objective": plan.objective, "T": t_star, "E": e_star,
            "nu": nu, "lp_at_T": lp_val / e_star, "trace": trace, "cuts": cuts,
            "cpu_s": time.process_time() - cpu, "load_1min": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.5,5", seeds=2, mode=None)
    ap.add_argument("--ref", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--milp-s", type=float, default=5.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for n, lam, seed in grid(a):
        r = row(n, lam, seed, a.ref, a.rounds, a.milp_s)
        rows.append(r)
        print(json.dumps({k: ([round(v, 4) for v in r[k]] if k == "trace" else
                              round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in r}), flush=True)
    write_results(a.out, rows, {"ref_cpu_s": a.ref, "milp_s": a.milp_s})


if __name__ == "__main__":
    main()
