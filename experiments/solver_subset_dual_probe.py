"""Which energy bound sees what at scale (lambda > 0): the knapsack of solvers/energy_bound.py, the subset columns'
Lagrangian of solvers/subset_dual.py (every edge at once), the pair-row LP's dual of solvers/pair_dual.py (one LP an
edge at T = inf, unclocked: every edge) and the per-edge subset LP of solvers/subset_energy.py (HiGHS, with its pair
rows), on one round of experiments/solver_scale_gap.py, at several latencies T.

Per T: the sum over edges of each bound on E_lb(T) (J) at the knapsack's best band prices (the LP: one solve per
edge at that price, no search, so below what its own search reaches), their CPU seconds, and how fractional the LP's
answer is (columns strictly between 0 and 1 against those at 1). Also the Lagrangian with no D2D links (the same
round, `d2d_neighbours=0`) at unlimited latency, where only the concavity of one device's upload cost in its payload
separates it from the knapsack. And the round's plan (`solve(p, "joint")`, its latency and energy) for scale.

Run: python experiments/solver_subset_dual_probe.py [--devices 1000] [--seed 0] [--lps]
(--lps: the HiGHS LPs too, about 0.4 CPU s an edge and latency; writes
experiments/results/solver_scale_gap/s21/subset_dual_probe.json)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from code_version import CODE_PATHS, commit
from solver_grid import scale_round

from solvers import solve
from solvers.energy_bound import EnergyBound
from solvers.pair_dual import PairDual
from solvers.subset_dual import SubsetDual
from solvers.subset_energy import SubsetEnergy

OUT = Path(__file__).resolve().parent / "results" / "solver_scale_gap" / "s21" / "subset_dual_probe.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lps", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    n, seed = a.devices, 1000 * a.devices + a.seed
    p = scale_round(n, seed, lam=0.5)
    modules = p.num_modules
    code, load = commit(CODE_PATHS), os.getloadavg()[0]
    plan = solve(p, "joint")
    out: dict = {"commit": code, "load_1min": load, "devices": n, "seed": seed, "modules": modules,
                 "plan": {"objective": plan.objective, "latency_s": plan.latency_s, "energy_j": plan.energy_j,
                          "lower_bound": plan.lower_bound}, "rows": []}
    print(json.dumps(out["plan"]), flush=True)
    eb, sd = EnergyBound.of(p), SubsetDual.of(p)
    assert sd is not None
    c = time.process_time()
    pairs = PairDual(p)
    pairs.solve()
    out["pair_dual_lps"] = {"edges": len(pairs.duals), "cpu_s": time.process_time() - c}
    print(json.dumps(out["pair_dual_lps"]), flush=True)
    se = SubsetEnergy(p) if a.lps else None
    for t in (15.0, 20.0, 30.0, 50.0, plan.latency_s, math.inf):
        c = time.process_time()
        knap, nu = eb.prices(t)
        c_knap = time.process_time() - c
        c = time.process_time()
        dual = sd.energy_edges(t, nu, np.zeros(p.num_edges))
        row = {"T": t, "knapsack_j": float(np.sum(knap)), "knapsack_cpu_s": c_knap, "dual_j": float(np.sum(dual)),
               "dual_cpu_s": time.process_time() - c}
        c = time.process_time()
        row["pair_dual_j"] = float(np.sum(pairs.energy_edges(t, nu, knap)))
        row["pair_dual_cpu_s"] = time.process_time() - c
        if se is not None and math.isfinite(t):
            c, total, frac, ones = time.process_time(), 0.0, 0, 0
            for e in range(p.num_edges):
                ee = se.edge(e)
                v = -math.inf if ee is None else ee.value(t, float(nu[e]), 0.0)
                total += max(v, float(knap[e]))
                if ee is not None and math.isfinite(v):
                    x = ee.lp.primal()
                    frac += int(np.sum((x > 1e-6) & (x < 1 - 1e-6)))
                    ones += int(np.sum(x >= 1 - 1e-6))
            row |= {"lp_j": total, "lp_cpu_s": time.process_time() - c, "lp_fractional": frac, "lp_ones": ones}
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
    bare = scale_round(n, seed, lam=0.5, d2d_neighbours=0)
    eb0, sd0 = EnergyBound.of(bare), SubsetDual.of(bare, iterations=60)
    assert sd0 is not None
    knap0, nu0 = eb0.prices(math.inf)
    out["no_d2d_inf"] = {"knapsack_j": float(np.sum(knap0)),
                         "dual_j": float(np.sum(sd0.energy_edges(math.inf, nu0, np.zeros(p.num_edges))))}
    print(json.dumps(out["no_d2d_inf"]), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
