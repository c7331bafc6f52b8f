"""Which side of the lambda > 0 certified gap is weak at scale (issue 18): on single 100-device edges at lambda = 0.5
(the edges of the scale study), split the plan's T + lambda E and its bound into latency and energy parts.

Per seed: the plan (`joint`, unbounded time), its certified bound, the latency bound T_lb (solvers/bounds.py), the
energy bound at the plan's own latency E_lb(T_plan) (solvers/energy_bound.py) against the plan's energy, and both
split into compute and upload (+ D2D): the fractional knapsack of compute alone against the plan's compute.

Run: python experiments/solver_bound_split.py [--seeds 1,2]
(writes experiments/results/solver_scale_gap/bound_split.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from code_version import CODE_PATHS, commit

from solvers import random_instance, solve
from solvers.bounds import subset_lower_bound
from solvers.energy_bound import EnergyBound, knapsack

OUT = Path(__file__).resolve().parent / "results" / "solver_scale_gap"


def split(seed: int) -> dict:
    m = int(np.random.default_rng(seed).integers(3, 11))
    p = random_instance(100, 1, m, seed, lam=0.5)
    plan = solve(p, "joint", time_limit_s=0)
    eb = EnergyBound.of(p)
    x = plan.placement
    compute = float((p.kappa * p.samples[:, None] * p.module_cycles[None, :] * p.cpu_hz[:, None] ** 2 * x).sum())
    return {"seed": seed, "modules": m, "objective": plan.objective, "latency_s": plan.latency_s,
            "energy_j": plan.energy_j, "lower_bound": plan.lower_bound,
            "t_lb": subset_lower_bound(p, np.array([plan.latency_s])),
            "e_lb_at_plan_latency": eb.energy(plan.latency_s), "e_lb_inf": eb.energy(np.inf),
            "plan_compute_j": compute, "plan_upload_d2d_j": plan.energy_j - compute,
            "knapsack_compute_only_j": float(knapsack(p, eb.dev, eb.mod, eb.compute_at(np.inf), eb.demand).sum()),
            "relayed_devices": int((plan.relay != np.arange(p.num_devices)).sum())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1,2")
    args = ap.parse_args()
    code = commit(CODE_PATHS)  # before the run: the code it ran
    rows = [split(int(s)) for s in args.seeds.split(",")]
    for r in rows:
        print(json.dumps(r))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bound_split.json").write_text(json.dumps(
        {"machine": f"{platform.machine()} {os.cpu_count()}-core CPU container (shared)", "commit": code,
         "load_1min": os.getloadavg()[0], "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows},
        indent=1))


if __name__ == "__main__":
    main()
