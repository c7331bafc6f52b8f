"""The subset LP's relayed-bit price split by the relay's own payload class (solvers/relay_price.py): how far each
number of classes lifts the lambda > 0 bound of one edge, and what its LPs cost.

Per instance (`solver_model_bench.instance(n, "one-hop", lam, seed)`, one edge x 6 modules) `joint` at
--plan-limit CPU s gives the plan; then, for each RELAY_CLASSES in --classes, the round bound
`tradeoff_lower_bound` from the plan's latency bound with the subset LP (minimal covers, band row; no clock: every
piece to its end) as a fraction of the plan's objective, its E_lb at the plan's own latency / the plan's energy,
the LP's size (columns) and CPU s. Writes a JSON with the commit, machine and load.

    python experiments/solver_relay_classes.py [--sizes 8,12] [--lams 0.5,5,50] [--seeds 2] [--classes 1,2,4,8]
        --out experiments/results/solver_model/s18c/relay_classes.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from code_version import CODE_PATHS, commit  # noqa: E402
from cpu_clock import cpu_deadlines  # noqa: E402
from solver_model_bench import instance  # noqa: E402

import solvers.relay_price as rp  # noqa: E402
from solvers import solve  # noqa: E402
from solvers.bounds import subset_lower_bound  # noqa: E402
from solvers.energy import edge_latency  # noqa: E402
from solvers.energy_bound import EnergyBound, tradeoff_lower_bound  # noqa: E402
from solvers.subset_energy import SubsetEnergy  # noqa: E402


def plan_of(p, limit: float):
    with cpu_deadlines():
        return solve(p, "joint", time_limit_s=limit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8,12")
    ap.add_argument("--lams", default="0.5,5,50")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--classes", default="1,2,4,8")
    ap.add_argument("--plan-limit", type=float, default=2.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        for lam in (float(s) for s in a.lams.split(",")):
            for seed in range(a.seeds):
                p = instance(n, "one-hop", lam, seed)
                plan = plan_of(p, a.plan_limit)
                t_lb = subset_lower_bound(p, edge_latency(p, [(plan.placement, plan.relay)])[0])
                t = plan.latency_s * (1 + 1e-9)
                _, nu = EnergyBound.of(p).prices(t)
                row = {"devices": n, "lambda": lam, "seed": seed, "objective": plan.objective,
                       "plan_lower_bound": plan.lower_bound, "classes": {}}
                for k in (int(s) for s in a.classes.split(",")):
                    rp.RELAY_CLASSES = k
                    cpu = time.process_time()
                    se = SubsetEnergy(p, covers=True, band_row=True)
                    at_plan = float(se.energy_edges(t, nu, np.full(p.num_edges, -np.inf)).sum())
                    bound = tradeoff_lower_bound(p, t_lb, plan.objective, subset=SubsetEnergy(p, covers=True,
                                                                                           band_row=True))
                    ee = se.edge(0)
                    row["classes"][k] = {"bound_over_plan": bound / plan.objective,
                                         "elb_at_plan_over_energy": at_plan / plan.energy_j,
                                         "columns": None if ee is None else int(ee.lp.n),
                                         "cpu_s": time.process_time() - cpu, "load_1min": os.getloadavg()[0]}
                rows.append(row)
                print(json.dumps({**row, "classes": {k: {q: round(v, 4) if isinstance(v, float) else v
                                                         for q, v in c.items()} for k, c in row["classes"].items()}}),
                      flush=True)
    meta = {"commit": commit(CODE_PATHS), "machine": f"{platform.machine()} {os.cpu_count()}-CPU container (shared)",
            "plan_limit_cpu_s": a.plan_limit, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
