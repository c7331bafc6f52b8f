"""Which side holds the lambda = 0 certified gap at scale (issue 18, item 4): the plan or the bound?

For the instances of experiments/solver_scale_gap.py (`random_instance(N, N / 100, M, seed)`, about 100 devices an
edge) the plan of `solve(p, "joint")` (2 s limit) and, on the edge that sets its latency, with no 2 s clock:
- the subset LP's own threshold (solvers/bounds.py: the largest trial latency it proves impossible, bisected);
- the latency column model of solvers/latency_model.py as a MILP (integer columns, one hop, pair cuts optional) at
  trial latencies T = (1 - step) x the plan's edge latency: "infeasible" proves T a lower bound on the edge (so on
  the round), "feasible" gives a plan that much faster (its exact latency is reported), "unknown" ran out of time.
If the MILP proves T close to the plan, the bound is the weak side; if it finds much faster plans, the plan is.
--relays adds, at T = 0.98 x the plan: the LP relaxation's band with and without pair cuts on every link, the exact
latency of the integer model's answer without any group cut (what the column sums miss), and the threshold of the
subset LP restricted to direct uploads (what relays buy in the relaxation).

Run: python experiments/solver_scale_diagnosis.py [--devices 1000] [--seeds 0,1,2] [--steps 0.005,0.01,0.02,0.03]
     [--milp-s 60] [--pairs] [--relays] [--out experiments/results/solver_model/s18s2/scale_diagnosis.json]
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
from solver_lp_threshold import slowest_edge, threshold

from solvers.column_milp import highs_model
from solvers.latency_model import LatencyModel
from solvers.model import exact_cost, feasible
from solvers.parallel import restrict

OUT = Path(__file__).resolve().parent / "results" / "solver_model" / "s18s2" / "scale_diagnosis.json"


def relaxed(model: LatencyModel, t: float) -> float:
    """The latency model's LP relaxation at latency t: its least summed band (units of B_e)."""
    cost = model.c.cost(t)
    rows, extra, usable = model.rows(cost, t)
    _, h = highs_model(rows, cost, usable, extra, integer=False)
    h.run()
    return float(h.getInfo().objective_function_value)


def relaxed_threshold(model: LatencyModel, upper: float, steps: int = 12) -> float:
    """The largest t in [upper / 2, upper] whose LP relaxation needs more than the band (bisected)."""
    lo, hi = 0.5 * upper, upper
    if relaxed(model, lo) <= 1 + 1e-6:
        return 0.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if relaxed(model, mid) > 1 + 1e-6 else (lo, mid)
    return lo


def relay_probe(sub, t0: float, milp_s: float) -> dict:  # noqa: ANN001
    """What relay groups do to the relaxations at T = 0.98 t0 (see the module doc)."""
    from solvers.bandwidth import min_bandwidth
    from solvers.bounds import EdgeRoutes
    from solvers.column_milp import run_milp

    t = 0.98 * t0
    bare, paired = LatencyModel(sub, pairs_upfront=False), LatencyModel(sub, pairs_upfront=True)
    out = {"t": t, "lp_band": relaxed(bare, t), "lp_band_pairs": relaxed(paired, t)}
    cost = bare.c.cost(t)
    rows, extra, usable = bare.rows(cost, t)
    status, val, _ = run_milp(rows, cost, usable, extra, milp_s, 1e-4, 1 + 1e-9)
    if val is not None:
        x, relay = bare.plan(np.flatnonzero(val[: cost.size] > 0.5))
        out["milp_no_group_cuts_band"] = float(cost[np.flatnonzero(val[: cost.size] > 0.5)].sum())
        out["milp_no_group_cuts_latency_s"] = exact_cost(sub, x, relay) if feasible(sub, x, relay) else None
    route = EdgeRoutes.of(sub, 0, [0])
    demand = sub.coverage_demand()[0]
    direct = route.up == route.dev[route.col]

    def direct_value(tt: float) -> float:
        slack = tt - route.ready
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(slack > 0, route.pay[route.col] / np.where(slack > 0, slack, 1.0), np.inf)
        w = np.where(direct, min_bandwidth(q, route.a), np.inf)
        c = np.full(route.dev.size, np.inf)
        np.minimum.at(c, route.col, w)
        status, value = route.solve(c / sub.edge_bandwidth_hz[0], demand)
        return value if status == "optimal" else np.inf

    lo, hi = 0.8 * t0, 1.2 * t0
    for _ in range(25):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if direct_value(mid) > 1 + 1e-6 else (lo, mid)
    out["direct_lp_threshold_s"] = lo
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", default="0.005,0.01,0.02,0.03")
    ap.add_argument("--milp-s", type=float, default=60.0)
    ap.add_argument("--pairs", action="store_true", help="pair cuts on every D2D link up front")
    ap.add_argument("--relays", action="store_true", help="the relay-group probe at 0.98 x the plan")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    code = commit(CODE_PATHS)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        load = os.getloadavg()[0]
        p, plan, edge_t, e = slowest_edge(args.devices, seed)
        modules = p.num_modules
        t0 = float(edge_t[e])
        c0 = time.process_time()
        t_lp = threshold(p, e, t0)
        lp_cpu = time.process_time() - c0
        sub, dev = restrict(p, np.array([e]))
        model = LatencyModel(sub, pairs_upfront=args.pairs)
        c0 = time.process_time()
        t_relax = relaxed_threshold(model, t0)
        relax_cpu = time.process_time() - c0
        print(json.dumps({"seed": seed, "t0": t0, "lp_threshold": t_lp, "relax_threshold": t_relax,
                          "relax_cpu_s": relax_cpu}), flush=True)
        probe = relay_probe(sub, t0, args.milp_s) if args.relays else None
        if probe:
            print(json.dumps({"seed": seed, **probe}), flush=True)
        trials = []
        for step in (float(s) for s in args.steps.split(",")):
            t = t0 * (1 - step)
            c0 = time.process_time()
            r = model.at(t, time.perf_counter() + args.milp_s, gap=1e-4)
            got = None
            if r.feasible and r.cols is not None:
                x, relay = model.plan(r.cols)
                got = exact_cost(sub, x, relay) if feasible(sub, x, relay) else None
            trials.append({"step": step, "t": t, "feasible": r.feasible, "dual_bound": r.bound,
                           "plan_latency_s": got, "cpu_s": time.process_time() - c0})
            print(json.dumps({"seed": seed, **trials[-1]}), flush=True)
        rows.append({"devices": args.devices, "seed": seed, "modules": modules,
                     "load_1min": load, "latency_s": plan.latency_s, "lower_bound": plan.lower_bound,
                     "certified_gap": plan.gap, "slowest_edge": e, "edge_latencies_top5": sorted(edge_t)[-5:],
                     "columns": int(model.c.dev.size), "lp_threshold_s": t_lp, "lp_threshold_gap": 1 - t_lp / t0,
                     "lp_cpu_s": lp_cpu, "relax_threshold_s": t_relax,
                     "relax_threshold_gap": 1 - t_relax / t0, "relax_cpu_s": relax_cpu, "relay_probe": probe,
                     "milp_trials": trials})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "milp_trials"}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs", "commit": code,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "pairs_upfront": args.pairs,
        "milp_s": args.milp_s, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
