"""Power and frequency at lambda > 0: on named bench edges, is the certified gap the plan's or the bound's, and does
the round's cvxpy model (solvers/model.py with solvers/model_powerfreq.py) do better than joint's own route?

Per edge `n:lambda:seed` (an instance of solver_model_bench.py, mode power-frequency): `joint` with the round clock
(--time-limit, default 2 s) and a long one (--long), both on a CPU clock; the model's `certify` from the short plan
given --model CPU s more; and where the edge has at most --exact-max devices `reference_power_frequency`'s optimum.
The best plan and the best bound of them bracket the optimum: the short plan's excess over the best plan is the
plan's part of its gap, the best plan's excess over the short bound the bound's part. Where the bound falls short,
at the short plan's latency T: the subset LP's E_lb(T) (unclocked, its best band price), the plan's own columns
priced as the LP prices them (its choice, each column relaxed alone) and the plan's true energy: the first gap is
the LP's choice, the second the columns' relaxation (a relay group's parts each get their own window). Writes a JSON.

    python experiments/solver_pf_sides.py [--edges 4:0.05:1,8:0.05:0] [--long 20] [--model 20]
        --out experiments/results/solver_model/s23pf/sides.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from cpu_clock import cpu_deadlines  # noqa: E402
from solver_grid import show, write_results  # noqa: E402
from solver_model_bench import instance  # noqa: E402

from solvers import solve  # noqa: E402
from solvers.model import certify  # noqa: E402
from solvers.powerfreq_price import price_by_slope  # noqa: E402
from solvers.reference import reference_power_frequency  # noqa: E402
from solvers.subset_energy import SubsetEnergy  # noqa: E402

EDGES = "4:0.05:1,8:0.05:0,8:0.5:0,12:0.05:0,12:0.5:0"
"""The five power / frequency bench edges at lambda > 0 that 73817e8's table left uncertified."""


def timed(fn, *args, **kw) -> tuple:
    wall, cpu = time.perf_counter(), time.process_time()
    with cpu_deadlines(scale_highs=True):
        got = fn(*args, **kw)
    return got, {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                 "load_1min": os.getloadavg()[0]}


def energy_split(p, plan) -> dict:
    """At the plan's latency T (one edge): E_lb(T) of the subset LP at its best band price, the plan's choice priced
    by the LP's own columns (the best of 41 band prices around it) and the plan's energy (module doc)."""
    sub = SubsetEnergy(p, covers=True, steps=30)
    ee = sub.edge(0)
    assert ee is not None
    t = plan.latency_s
    lp = price_by_slope(sub, ee, 0, t, 1e-9, None)
    k, band = ee.dev.size, float(p.edge_bandwidth_hz[0])
    picks = []
    for i in range(p.num_devices):
        if not plan.placement[i].any():
            continue
        own = np.flatnonzero((ee.dev == i) & np.all(ee.mbits.astype(bool) == plan.placement[i], axis=1))[0]
        picks.append(own if plan.relay[i] == i else
                     k + int(np.flatnonzero((ee.lcol == own) & (ee.ldst == plan.relay[i]))[0]))
    choice = max(float(np.sum(ee.costs(t, sub.nu[0] * f, 0.0)[picks])) - sub.nu[0] * f * band
                 for f in np.geomspace(0.1, 10.0, 41))
    return {"latency_s": t, "lp_energy_j": lp, "choice_energy_j": choice, "plan_energy_j": plan.energy_j}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", default=EDGES, help="n:lambda:seed, comma-separated")
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--long", type=float, default=20.0, help="joint's long run, CPU s (0: none)")
    ap.add_argument("--model", type=float, default=20.0, help="the model's budget after the short plan (0: none)")
    ap.add_argument("--exact-max", type=int, default=4, help="the reference on edges of at most this many devices")
    ap.add_argument("--max-choices", type=int, default=20000, help="the reference's enumeration limit")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    solve(instance(4, "one-hop", 0.5, 99), "joint", time_limit_s=0.5)  # warm: lazy imports
    rows = []
    for spec in a.edges.split(","):
        n_, lam_, seed_ = spec.split(":")
        n, lam, seed = int(n_), float(lam_), int(seed_)
        p = instance(n, "power-frequency", lam, seed)
        short, t_short = timed(solve, p, "joint", time_limit_s=a.time_limit)
        row: dict = {"devices": n, "lambda": lam, "seed": seed, "short_objective": short.objective,
                     "short_bound": short.lower_bound, "short_gap": short.gap, "short": t_short}
        plans, bounds = [short.objective], [short.lower_bound]
        if a.long > 0:
            long_, t_long = timed(solve, p, "joint", time_limit_s=a.long)
            row.update(long_objective=long_.objective, long_bound=long_.lower_bound, long=t_long)
            plans.append(long_.objective)
            bounds.append(long_.lower_bound)
        if a.model > 0:
            # the deadline on the CPU clock that timed() gives the solver's time.perf_counter
            got, t_model = timed(certify, p, short.placement, short.relay, time.process_time() + a.model,
                                 max_milps=50)
            row.update(model_objective=got.objective, model_bound=got.lower_bound, model_milps=got.milps,
                       model=t_model)
            plans.append(got.objective)
            bounds.append(got.lower_bound)
        if n <= a.exact_max:
            ref, t_ref = timed(reference_power_frequency, p, max_choices=a.max_choices)
            row.update(optimum=ref.objective, reference=t_ref)
            plans.append(ref.objective)
        if p.num_edges == 1:
            row["at_plan_latency"] = energy_split(p, short)
        best_plan, best_bound = min(plans), max(bounds)
        row.update(plan_excess=short.objective / best_plan - 1, bound_short_of_best_plan=1 - short.lower_bound /
                   best_plan, bracket=1 - best_bound / best_plan)
        rows.append(row)
        show(row, skip=("short", "long", "model", "reference"))
    write_results(a.out, rows, {"time_limit_s": a.time_limit, "long_s": a.long, "model_s": a.model,
                                "clock": "CPU s (HiGHS's limits scaled by wall / CPU)"})


if __name__ == "__main__":
    main()
