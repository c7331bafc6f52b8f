"""Which side holds the `relay_aggregates` (lambda = 0) certified gap at scale: plan or bound? (issue 18, item 4)

Per seed of experiments/solver_scale_gap.py's round (about 100 devices an edge): `solve(p, "joint")` at 2 s and at
`--long` s (does the plan move?); then on the slowest edge alone the relay-group master of solvers/union_columns.py,
unclocked, at trial latencies `--fractions` x the edge's latency (refuted or not, CPU s, groups priced), and where it
does not refute a trial, its groups as a binary set-packing MILP (`--milp-s` s): a plan of that edge finishing by the
trial if the MILP finds one (the exact band of each group at the trial, so the plan's real latency is at most it).

Run: python experiments/solver_ra_scale_probe.py [--devices 1000] [--seeds 0,1,2] [--long 30]
     [--fractions 0.7,0.75,0.8,0.85,0.9] [--milp-s 30] [--out experiments/results/solver_scale_gap/s25ra/probe.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np
from solver_grid import machine, scale_round

from solvers import solve
from solvers.clock import now
from solvers.energy import plan_bandwidth
from solvers.evaluate import evaluate
from solvers.instance import RoundProblem
from solvers.parallel import restrict
from solvers.union_columns import UnionColumns
from solvers.union_scale import union_scale_bound


def timed(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    c0 = time.process_time()
    out = fn(*args, **kw)
    return out, time.process_time() - c0


def group_plan(sub: RoundProblem, uc: UnionColumns, t: float, seconds: float) -> dict:
    """The pooled groups at trial t as a binary MILP (coverage, disjoint devices, summed band <= 1)."""
    import highspy

    c = uc.c
    groups, seen = [], set()
    alone = c.cost(t, dominate=False)
    cand = [[int(x)] for x in np.flatnonzero((c.up == c.dev) & np.isfinite(alone))] + uc.pool
    for g in cand:
        key = tuple(sorted(g))
        if key in seen:
            continue
        seen.add(key)
        cost = c.group_cost(np.array(g), t)
        if math.isfinite(cost):
            groups.append((g, cost))
    demand = sub.coverage_demand()[0]
    need = np.flatnonzero(demand > 0)
    n = sub.num_devices
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", seconds)
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    ng = len(groups)
    lp.num_col_, lp.num_row_ = ng, need.size + n + 1
    lp.col_cost_ = np.array([b for _, b in groups])
    lp.col_lower_ = np.zeros(ng)
    lp.col_upper_ = np.ones(ng)
    lp.row_lower_ = np.concatenate([demand[need], np.full(n + 1, -inf)])
    lp.row_upper_ = np.concatenate([np.full(need.size, inf), np.ones(n), [1.0]])
    starts, index, value = [0], [], []
    for g, b in groups:
        cov = (c.mask[g][:, need] * sub.samples[c.dev[g]][:, None]).sum(axis=0)
        rows = np.flatnonzero(cov > 0)
        devs = sorted({int(c.up[g[0]]), *(int(c.dev[x]) for x in g)})
        index += rows.tolist() + [need.size + d for d in devs] + [need.size + n]
        value += cov[rows].tolist() + [1.0] * len(devs) + [b]
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=float)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * ng
    h.passModel(lp)
    c0 = time.process_time()
    h.run()
    out: dict[str, Any] = {
        "groups": ng,
        "milp_cpu_s": time.process_time() - c0,
        "status": h.modelStatusToString(h.getModelStatus()),
    }
    sol = h.getSolution()
    if not sol.value_valid:
        return out
    xs = np.asarray(sol.col_value) > 0.5
    x = np.zeros((n, sub.num_modules), dtype=sub.eligible.dtype)
    relay = np.arange(n)
    for (g, _), on in zip(groups, xs, strict=True):
        if on:
            for col in g:
                d = int(c.dev[col])
                x[d] = c.mask[col]
                relay[d] = int(c.up[col])
    cost = evaluate(sub, x, relay, plan_bandwidth(sub, x, relay))
    out["plan_latency"] = float(cost.latency_s)
    return out


def probe(p: RoundProblem, long_s: float, fractions: list[float], milp_s: float) -> dict:
    row: dict[str, Any] = {"modules": p.num_modules}
    plan, cpu = timed(solve, p, "joint")
    row["plan2"] = {"objective": plan.objective, "lower_bound": plan.lower_bound, "cpu_s": cpu}
    if long_s > 0:
        plan_l, cpu_l = timed(solve, p, "joint", time_limit_s=long_s)
        row["plan_long"] = {"objective": plan_l.objective, "lower_bound": plan_l.lower_bound, "cpu_s": cpu_l}
    edge_t = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    order = np.argsort(-edge_t)
    row["edge_latency_sorted"] = (edge_t[order] / edge_t.max()).round(4).tolist()
    e = int(order[0])
    sub, _ = restrict(p, np.array([e]))
    uc, build = timed(UnionColumns, sub)
    row["edge"] = {
        "edge": e,
        "devices": sub.num_devices,
        "latency": float(edge_t[e]),
        "build_cpu_s": build,
        "columns": int(uc.c.dev.size),
    }
    for budget in (0.5, 1.0, 3.0):
        c0, w0 = time.process_time(), now()
        lb = union_scale_bound(p, e, float(edge_t[e]), 0.0, now() + budget)
        row.setdefault("scale_bound", []).append(
            {
                "budget_s": budget,
                "fraction": lb / float(edge_t[e]),
                "cpu_s": time.process_time() - c0,
                "wall_s": now() - w0,
            }
        )
        print(json.dumps(row["scale_bound"][-1]), flush=True)
    trials = []
    for f in fractions:
        t = f * float(edge_t[e])
        milps0 = uc.milps
        got, cpu_t = timed(uc.refutes, t, math.inf)
        tr: dict[str, Any] = {
            "fraction": f,
            "refuted": bool(got),
            "cpu_s": cpu_t,
            "masters": uc.milps - milps0,
            "pool": len(uc.pool),
        }
        if not got and milp_s > 0:
            tr["milp"] = group_plan(sub, uc, t, milp_s)
        trials.append(tr)
        print(json.dumps(tr), flush=True)
    row["trials"] = trials
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--long", type=float, default=30.0)
    ap.add_argument("--fractions", default="0.7,0.75,0.8,0.85,0.9")
    ap.add_argument("--milp-s", type=float, default=30.0)
    ap.add_argument("--out", default="experiments/results/solver_scale_gap/s25ra/probe.json")
    a = ap.parse_args()
    rows = []
    for s in (int(x) for x in a.seeds.split(",")):
        seed = 1000 * a.devices + s
        p = scale_round(a.devices, seed, relay_aggregates=True)
        row = {
            "devices": a.devices,
            "seed": seed,
            **probe(p, a.long, [float(f) for f in a.fractions.split(",")], a.milp_s),
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "trials"}), flush=True)
    from pathlib import Path

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine(),
                "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "args": vars(a),
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
