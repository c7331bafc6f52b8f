"""Is the plan side of the lambda > 0 gap at scale cheaply improvable? The pair-row subset LP (solvers/subset_energy.py
`EdgeEnergy`, every column, solved per edge) rounded into a plan, against `joint`'s plan, on the rounds of
experiments/solver_scale_gap.py.

Per round and trial latency T (x the joint plan's latency): every edge's LP at T and the knapsack's band price; each
device takes its heaviest column (direct, or via a D2D relay; a relay that itself routes is sent direct, a device
relaying through a relay that is not uploading is too), coverage is repaired by the knapsack's weights per sample
(solvers/energy_bound.py `priced_weights`) within memory, then the exact band for T + lambda E
(solvers/energy.py `plan_bandwidth`) and `check_plan`. Reported: the rounded plan's objective, latency, energy against
the joint plan's, the LP's fractional share, and a per-edge mix (an edge takes the rounded choice where the whole
round's objective falls).

Run: python experiments/solver_pair_round_probe.py --out experiments/results/solver_scale_gap/s23/pair_round_probe.json
[--devices 1000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from solver_grid import scale_round, write_results

from solvers import check_plan, solve
from solvers.energy import plan_bandwidth
from solvers.energy_bound import EnergyBound
from solvers.evaluate import evaluate
from solvers.subset_energy import EdgeEnergy

TRIALS = (0.6, 1.0, math.inf)


def rounded(p, x0: np.ndarray, relay0: np.ndarray, lps: dict, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The whole round's placement and relays from every edge's LP solution (module doc)."""
    x, relay = x0.copy(), relay0.copy()
    for e, (ee, val) in lps.items():
        k = ee.dev.size
        owner = np.concatenate([ee.dev, ee.dev[ee.lcol]])
        bits = np.concatenate([ee.mbits, ee.mbits[ee.lcol]]) > 0
        via = np.concatenate([ee.dev, ee.ldst])
        members = p.edge_devices(e)
        x[members] = False
        relay[members] = members
        order = np.lexsort((-val, owner))
        first = order[np.unique(owner[order], return_index=True)[1]]
        mass = np.bincount(owner, weights=val, minlength=p.num_devices)
        for c in first[mass[owner[first]] >= 0.5]:
            x[owner[c]] = bits[c]
            relay[owner[c]] = via[c] if c >= k else owner[c]
    sender = relay != np.arange(p.num_devices)
    for i in np.flatnonzero(sender):  # one hop: a relay uploads itself
        if sender[relay[i]]:
            relay[i] = i
    demand = p.coverage_demand()
    ok = p.eligible & (p.samples[:, None] > 0)
    for e in range(p.num_edges):
        members = p.edge_devices(e)
        for m in np.flatnonzero(demand[e] > 0):
            have = float(p.samples[members][x[members, m]].sum())
            for i in members[np.argsort(weights[members, m] / np.maximum(p.samples[members], 1))]:
                if have >= demand[e, m] * (1 - 1e-9):
                    break
                if not ok[i, m] or x[i, m]:
                    continue
                if (x[i] @ p.module_memory_bytes) + p.module_memory_bytes[m] > p.memory_bytes[i] * (1 + 1e-12):
                    continue
                x[i, m] = True
                have += float(p.samples[i])
    for i in np.flatnonzero(~x.any(axis=1) & (relay != np.arange(p.num_devices))):
        relay[i] = i  # nothing to send
    return x, relay


def cost_of(p, x: np.ndarray, relay: np.ndarray) -> tuple[object, bool]:
    b = plan_bandwidth(p, x, relay)
    c = evaluate(p, x, relay, b)
    from solvers.plan import RoundPlan

    plan = RoundPlan(placement=x, relay=relay, bandwidth_hz=b, latency_s=c.latency_s, energy_j=c.energy_j,
                     objective=c.objective, solver="probe", status="solved", solve_seconds=0.0, lower_bound=0.0)
    return c, check_plan(p, plan) == []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    load, rows = os.getloadavg()[0], []
    for s in range(a.seeds):
        n, seed = a.devices, 1000 * a.devices + s
        p = scale_round(n, seed, lam=0.5)
        modules = p.num_modules
        plan = solve(p, "joint")
        x0, r0 = np.asarray(plan.placement, dtype=bool), np.asarray(plan.relay, dtype=int)
        eb = EnergyBound.of(p)
        for f in TRIALS:
            t = f * plan.latency_s
            c0 = time.process_time()
            _, nu = eb.prices(t)
            weights = eb.priced_weights(t)
            lps, frac, nonzero = {}, 0, 0
            for e in range(p.num_edges):
                ee = EdgeEnergy.of(p, e, eb.demand[e])
                if ee is None or ee.value(t, float(nu[e]), 0.0) in (math.inf, -math.inf):
                    continue
                val = ee.lp.primal()
                lps[e] = (ee, val)
                frac += int(np.sum((val > 1e-6) & (val < 1 - 1e-6)))
                nonzero += int(np.sum(val > 1e-6))
            x, relay = rounded(p, x0, r0, lps, weights)
            c, feasible = cost_of(p, x, relay)
            mix_x, mix_r, mix = x0.copy(), r0.copy(), plan.objective
            for e in lps:  # per edge, the rounded choice where the round's objective falls
                members = p.edge_devices(e)
                tx, tr = mix_x.copy(), mix_r.copy()
                tx[members], tr[members] = x[members], relay[members]
                tc, ok = cost_of(p, tx, tr)
                if ok and tc.objective < mix:
                    mix_x, mix_r, mix = tx, tr, tc.objective
            row = {"devices": n, "seed": seed, "modules": modules, "trial": f, "T": t,
                   "plan": {"objective": plan.objective, "latency_s": plan.latency_s, "energy_j": plan.energy_j,
                            "lower_bound": plan.lower_bound},
                   "rounded": {"objective": c.objective, "latency_s": c.latency_s, "energy_j": c.energy_j,
                               "feasible": feasible},
                   "mixed_objective": mix, "lp_fractional": frac, "lp_nonzero": nonzero,
                   "cpu_s": time.process_time() - c0}
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_results(a.out, rows, {"load_1min_at_start": load})


if __name__ == "__main__":
    main()
