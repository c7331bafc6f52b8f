"""Which side holds the lambda = 0.5 and `relay_aggregates` certified gaps at scale (issue 18, item 4): plan or bound?

Instances of experiments/solver_scale_gap.py (`random_instance(N, N / 100, M, seed)`, about 100 devices an edge).
Per seed and case, `solve(p, "joint")` at the default 2 s limit and then:
- lambda = 0.5: the same solve unbounded (`time_limit_s=0`: the heuristics run to their end, and the round bound
  runs the subset-column energy LP of solvers/subset_energy.py on every edge): does the plan or the bound move?
- relay_aggregates (lambda = 0): on the edge that sets the latency, the relay-group LP of
  solvers/aggregate_bound.py (relay groups with their later start) at trial latencies `--fractions` x the plan's:
  its least band (units of B_e; > 1 refutes the latency) and CPU s; then its bisected threshold (`--steps`).
- both: a plan-side probe on that edge alone (solvers.parallel.restrict): first-improvement local search with the
  exact band and objective over single moves (relay a device to a direct D2D neighbour, make a relayed device direct,
  drop a module coverage does not need), `--ls-s` CPU s: how far the plan is from a local optimum of those moves.

Run: python experiments/solver_scale_side.py [--devices 1000] [--seeds 0] [--fractions 0.6,0.7] [--steps 3]
     [--ls-s 120] [--out experiments/results/solver_scale_gap/scale_side.json]
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
from solvers.aggregate_bound import AggregateLP
from solvers.bounds import EdgeRoutes
from solvers.energy import plan_bandwidth
from solvers.evaluate import evaluate
from solvers.instance import RoundProblem
from solvers.parallel import restrict

OUT = Path(__file__).resolve().parent / "results" / "solver_scale_gap" / "scale_side.json"


def timed(fn, *args, **kw) -> tuple[object, float]:  # noqa: ANN001
    c0 = time.process_time()
    out = fn(*args, **kw)
    return out, time.process_time() - c0


def local_probe(p: RoundProblem, x: np.ndarray, relay: np.ndarray, budget_s: float) -> dict:
    """First-improvement local search over single relay / direct / drop moves, exact band (see the module doc)."""
    def objective(x_: np.ndarray, r_: np.ndarray) -> float:
        return float(evaluate(p, x_, r_, plan_bandwidth(p, x_, r_)).objective)

    start = cur = objective(x, relay)
    out_links: dict[int, list[int]] = {}
    for s_, d_ in zip(p.d2d_src.tolist(), p.d2d_dst.tolist(), strict=True):
        out_links.setdefault(s_, []).append(d_)
    demand = p.coverage_demand()[0]
    end = time.process_time() + budget_s
    moves, sweeps = 0, 0
    while time.process_time() < end:
        sweeps += 1
        found = 0
        for i in range(p.num_devices):
            if time.process_time() >= end:
                break
            opts: list[tuple[str, int]] = []
            if np.sum(relay == i) == 1:  # nobody relays through i: it may relay
                opts += [("relay", j) for j in out_links.get(i, []) if relay[j] == j and j != relay[i]]
            if relay[i] != i:
                opts.append(("direct", i))
            opts += [("drop", m) for m in np.flatnonzero(x[i])
                     if p.samples[x[:, m]].sum() - p.samples[i] >= demand[m] * (1 - 1e-9)]
            for kind, v in opts:
                x2, r2 = x.copy(), relay.copy()
                if kind == "relay":
                    r2[i] = v
                elif kind == "direct":
                    r2[i] = i
                else:
                    x2[i, v] = False
                val = objective(x2, r2)
                if val < cur * (1 - 1e-9):
                    x, relay, cur = x2, r2, val
                    found += 1
                    break
        moves += found
        if not found:
            break
    return {"start": start, "end": cur, "gain": 1 - cur / start, "moves": moves, "sweeps": sweeps,
            "local_optimum": time.process_time() < end}


def slowest_edge(p: RoundProblem, plan) -> tuple[int, np.ndarray]:  # noqa: ANN001
    t = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    return int(np.argmax(t)), t


def run(n: int, seed: int, args: argparse.Namespace) -> list[dict]:
    modules = int(np.random.default_rng(seed).integers(3, 11))
    rows = []
    for case, lam, agg in (("lambda 0.5", 0.5, False), ("relay_aggregates", 0.0, True)):
        p = random_instance(n, max(1, round(n / 100)), modules, seed, lam=lam, relay_aggregates=agg)
        load = os.getloadavg()[0]
        plan, cpu = timed(solve, p, "joint")
        row = {"devices": n, "seed": seed, "modules": modules, "case": case, "load_1min": load,
               "plan": {"objective": plan.objective, "latency_s": plan.latency_s, "energy_j": plan.energy_j,
                        "lower_bound": plan.lower_bound, "gap": 1 - plan.lower_bound / plan.objective, "cpu_s": cpu}}
        e, t_edge = slowest_edge(p, plan)
        if lam > 0:
            free, cpu = timed(solve, p, "joint", time_limit_s=0)
            row["unbounded"] = {"objective": free.objective, "latency_s": free.latency_s, "energy_j": free.energy_j,
                                "lower_bound": free.lower_bound, "gap": 1 - free.lower_bound / free.objective,
                                "cpu_s": cpu}
        else:
            r = EdgeRoutes.of(p, e, [0])
            lp, cpu = timed(AggregateLP, p, e, r.dev, r.mbits, r.pay, r.ready[:r.dev.size])
            trials = []
            for f in args.fractions:
                refuted, cpu = timed(lp.impossible, f * t_edge[e])
                trials.append({"fraction": f, "refuted": refuted, "cpu_s": cpu,
                               "band": float(lp.highs.getInfo().objective_function_value)})
                print(f"  {case} seed {seed} edge {e}: {f:.2f} x plan refuted {refuted} "
                      f"band {trials[-1]['band']:.3f} ({cpu:.1f} CPU s)", flush=True)
            lo = max([t["fraction"] for t in trials if t["refuted"]], default=0.0)
            hi = min([t["fraction"] for t in trials if not t["refuted"]], default=1.0)
            c0 = time.process_time()
            for _ in range(args.steps if lo > 0 else 0):  # bisect between the trials
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if lp.impossible(mid * t_edge[e]) else (lo, mid)
            cpu = time.process_time() - c0
            bound = max(lo * t_edge[e], plan.lower_bound)
            row["aggregate_lp"] = {"edge": e, "edge_latency_s": float(t_edge[e]), "columns": lp.ncol,
                                   "rows": int(lp.row_lo.size), "trials": trials, "threshold_fraction": lo,
                                   "bisection_cpu_s": cpu, "round_gap_with_it": 1 - bound / plan.objective}
        sub, dev = restrict(p, np.array([e]))
        row["local_probe"] = {"edge": e, **local_probe(sub, plan.placement[dev], np.searchsorted(dev, plan.relay[dev]),
                                                        args.ls_s)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--fractions", default="0.6,0.7")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--ls-s", type=float, default=120.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.fractions = [float(v) for v in args.fractions.split(",")]
    code = commit(CODE_PATHS)
    rows = []
    for s in (int(v) for v in args.seeds.split(",")):
        rows += run(args.devices, 1000 * args.devices + s, args)
    machine = f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "commit": code,
                                    "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                    "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
