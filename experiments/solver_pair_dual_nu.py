"""Which band price for the pair-row LP at T = inf (solvers/pair_dual.py)? Its value (the edge's E_lb at every T,
summed over edges) at the knapsack's best price at T = inf times each factor, on the rounds of
experiments/solver_scale_gap.py at lambda 0.5 (unclocked: every edge). Any price gives a valid bound; the knapsack's
is best for the knapsack, not for the LP, which sees each device's concave upload cost in its whole payload.

Run: python experiments/solver_pair_dual_nu.py --out experiments/results/solver_scale_gap/s23/pair_dual_nu.json
[--devices 1000] [--seeds 3] [--factors 0.5,0.7,1,1.2,1.4,1.6,1.8,2]
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

from solvers.energy_bound import EnergyBound
from solvers.pair_dual import edge_dual
from solvers.subset_dual import knapsack_beta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--factors", default="0.5,0.7,1,1.2,1.4,1.6,1.8,2")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    factors = [float(f) for f in a.factors.split(",")]
    load, rows = os.getloadavg()[0], []
    for s in range(a.seeds):
        n, seed = a.devices, 1000 * a.devices + s
        p = scale_round(n, seed, lam=0.5)
        modules = p.num_modules
        eb = EnergyBound.of(p)
        knap, nu = eb.prices(math.inf)
        beta = knapsack_beta(eb, nu, math.inf)
        row: dict = {"devices": n, "seed": seed, "modules": modules, "knapsack_j": float(np.sum(knap)), "lp_j": {},
                     "cpu_s": {}}
        for f in factors:
            c, total = time.process_time(), 0.0
            for e in range(p.num_edges):
                d = edge_dual(p, e, eb.demand[e], float(nu[e]) * f, beta[e])
                total += max(float(knap[e]), d.value(math.inf) if d is not None else -math.inf)
            row["lp_j"][f], row["cpu_s"][f] = total, time.process_time() - c
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_results(a.out, rows, {"load_1min_at_start": load})


if __name__ == "__main__":
    main()
