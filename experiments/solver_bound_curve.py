"""Where the lambda > 0 bound of one edge loses: E_lb(T) by each lower bound, at latencies around the plan's.

For each instance of experiments/solver_model_bench.py (one edge, N devices x 6 modules) the plan of `joint`
(`time_limit_s` = --plan-limit, 0 = the unbounded heuristics) is the reference (T_p, E_p). At T = T_p x each of
--factors, the least energy of a plan of latency <= T is bounded from below by: the knapsack of
solvers/energy_bound.py (`knapsack`), the subset-column LP of solvers/subset_energy.py under decomposition theta
(`lp_theta0`, `lp_theta1`, ...; band price searched in --steps golden-section steps); with --old-relay the LP with
a relayed bit priced as before s18e (`lp_oldrelay_*`); with --covers the LP with each module's minimal covers
(`lp_covers_*`); with --union (relay_aggregates) the LP with each uploader's upload at least each member's alone
(`lp_union_*`); with --milp the LP's columns made integral (`milp_*`: what the relaxation of coverage and one choice
per device loses). Each curve gives min_k T_k + lambda E_lb(T_(k+1)) over the grid (`curve`: a bound for
plans of latency in [T_0, T_K] only, a diagnosis, not a certificate), beside the plan's objective and the round's
own unbounded bound (`round_lower_bound`, no clock). CPU s per curve are recorded for scale only.

    python experiments/solver_bound_curve.py [--sizes 8,12] [--lams 0.5,5] [--seeds 1] [--mode one-hop]
        [--plan-limit 0] [--factors 0.6,...] [--thetas 0,1] [--old-relay] [--covers] [--milp]
        --out experiments/results/solver_model/s18e/curve.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from solver_grid import add_grid, grid, write_results
from solver_model_bench import instance

import solvers.subset_energy as subset_energy
from solvers import solve
from solvers.bounds import round_lower_bound, subset_lower_bound
from solvers.energy_bound import EnergyBound
from solvers.evaluate import LN2, evaluate, uplink_rate
from solvers.subset_energy import SubsetEnergy

FACTORS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2.0)


def integral(se: SubsetEnergy) -> None:
    """Make the edge's subset LP a MILP (its columns binary) from its next solve on."""
    ee = se.edge(0)
    if ee is None:
        return
    lp = ee.lp
    solve_lp = lp.solve

    def solve_milp(cost: np.ndarray, member: np.ndarray | None = None) -> tuple[str, float]:
        if lp.h is None:
            solve_lp(cost, member)  # builds the model
        hs = lp.highspy
        idx = np.arange(lp.n, dtype=np.int32)
        lp.h.changeColsIntegrality(lp.n, idx, np.full(lp.n, hs.HighsVarType.kInteger))
        lp.h.setOptionValue("mip_rel_gap", 1e-4)
        return solve_lp(cost, member)

    lp.solve = solve_milp  # type: ignore[method-assign]


def curve(ts: list[float], es: list[float], lam: float) -> float:
    """min over pieces [T_k, T_(k+1)] of T_k + lam E(T_(k+1)) (E nonincreasing; below T_0: not bounded here)."""
    return min(ts[k] + lam * es[k + 1] for k in range(len(ts) - 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.5,5", seeds=1, mode="one-hop")
    ap.add_argument("--plan-limit", type=float, default=0.0)
    ap.add_argument("--factors", default=",".join(map(str, FACTORS)))
    ap.add_argument("--thetas", default="0,1")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--milp", action="store_true")
    ap.add_argument("--covers", action="store_true", help="also the LP with each module's minimal covers")
    ap.add_argument("--union", action="store_true", help="relay_aggregates: also the LP with union rows")
    ap.add_argument("--old-relay", action="store_true", help="also the LP with the relayed-bit price before s18e")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    factors = [float(s) for s in a.factors.split(",")]
    thetas = [float(s) for s in a.thetas.split(",")]
    rows = []
    for n, lam, seed in grid(a):
        p = instance(n, a.mode, lam, seed)
        c0 = time.process_time()
        plan = solve(p, "joint", time_limit_s=a.plan_limit)
        cost = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz)
        tp, ep = float(cost.latency_s), float(cost.energy_j)
        row: dict = {"devices": n, "mode": a.mode, "lambda": lam, "seed": seed, "objective": plan.objective,
                     "plan_lower_bound": plan.lower_bound, "latency_s": tp, "energy_j": ep,
                     "plan_cpu_s": time.process_time() - c0}
        c0 = time.process_time()
        row["round_lower_bound"] = round_lower_bound(p, np.array([tp]), upper=plan.objective)
        row["round_bound_cpu_s"] = time.process_time() - c0
        row["t_lb"] = subset_lower_bound(p, np.array([tp]))  # the least latency of any plan, bounded
        ts = [tp * f for f in factors]
        eb = EnergyBound.of(p)
        curves: dict[str, list[float]] = {"knapsack": [eb.energy(t) for t in ts]}
        kinds = [("lp", False, False, False)] + (
            [("lp_oldrelay", False, True, False)] if a.old_relay else []) + (
            [("lp_covers", False, False, True)] if a.covers else []) + (
            [("milp", True, False, False)] if a.milp else [])
        for kind, whole, old, covers in kinds + ([("lp_union", False, False, "union")] if a.union else []):
            for th in thetas:
                # old: a relayed bit at its relay's infinite-band energy p ln2 / a (before s18e)
                subset_energy.uplink_rate = (lambda b, snr: snr / LN2) if old else uplink_rate
                se = SubsetEnergy(p, steps=a.steps, thetas=(th,), covers=covers is True,
                                  union=covers == "union")
                if whole:
                    integral(se)
                c0 = time.process_time()
                vals = []
                for t in ts:
                    _, nu = eb.prices(t)
                    v = se.edge_value(0, t, float(nu[0]))
                    vals.append(v if math.isfinite(v) or v > 0 else 0.0)
                curves[f"{kind}_theta{th:g}"] = vals
                row[f"{kind}_theta{th:g}_cpu_s"] = time.process_time() - c0
        row["T"] = ts
        row["E_lb"] = curves
        row["curve"] = {k: curve(ts, v, lam) for k, v in curves.items()}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("T", "E_lb")}), flush=True)
        print("  T/T_p", factors, flush=True)
        for k, v in curves.items():
            print(f"  {k:>14} E_lb/E_p", [round(x / ep, 3) for x in v], "curve/obj",
                  round(row["curve"][k] / plan.objective, 3), flush=True)
    write_results(a.out, rows, {"args": vars(a)})


if __name__ == "__main__":
    main()
