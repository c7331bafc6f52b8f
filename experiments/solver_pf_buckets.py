"""How much of the power / frequency bound's loss is the relay group's shared upload start? A potential estimate.

The subset LP (solvers/subset_energy.py) prices a relay's own column with its upload starting when its compute ends
and each relayed route with its bits starting when they arrive, where the group uploads once, after both. Here the
relays' own columns (their empty ones too) and the routes get one copy per upload-start bucket (Q equal buckets of
[0, T]), each priced at its least cost with the start in its bucket, and a route's copy pairs only with its relay's
copies of the same bucket (RouteLP's class pair rows; covers on). At the short plan's latency T (and 0.99 T) and
band prices around the LP's best, the best LP(nu) - nu B_e against the LP without buckets.

Not a certified bound: a copy's least cost is a minimum over a grid of starts (--grid per bucket), an estimate of
what a certified version (its minimum over the bucket from the convexity of the cost in the start) would give.

    python experiments/solver_pf_buckets.py [--edges 4:0.05:1] [--buckets 8,40]
        --out experiments/results/solver_model/s23pf/buckets.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from cpu_clock import cpu_deadlines  # noqa: E402
from solver_grid import show, write_results  # noqa: E402
from solver_model_bench import instance  # noqa: E402

from solvers import solve  # noqa: E402
from solvers.powerfreq_bound import upload_per_bit  # noqa: E402
from solvers.powerfreq_price import price_by_slope  # noqa: E402
from solvers.route_lp import RouteLP  # noqa: E402
from solvers.subset_energy import SubsetEnergy  # noqa: E402


def bucket_costs(p, cycles, fmin, fmax, bits, c0, hop_s, t, nu, q, grid) -> np.ndarray:
    """[Q] per start bucket: min over a grid of starts S in it of compute by S - hop_s (frequency clipped to
    [fmin, fmax], inf if it cannot finish) plus `bits` uploaded from S to t at band price nu."""
    s = np.linspace(0.0, t, q * grid + 1)[1:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        avail = s - hop_s
        f = np.maximum(fmin, np.where(avail > 0, cycles / np.where(avail > 0, avail, 1.0), np.inf))
        comp = np.where(cycles > 0, np.where(f <= fmax * (1 + 1e-12), p.kappa * cycles * f * f, np.inf),
                        np.where(avail >= 0, 0.0, np.inf))
    up = bits * upload_per_bit(np.full(s.size, c0), t - s, nu) if bits > 0 else 0.0
    v = np.concatenate([comp + up, [np.inf]])  # pad to q * grid
    return v.reshape(q, grid).min(axis=1)


def bucketed(p, ee, demand, t, nus, q, grid) -> float:
    """max over nus of the bucketed LP's value - nu B_e (module doc)."""
    k, nl = ee.dev.size, ee.lcol.size
    c0 = p.noise_w_per_hz / p.uplink_gain
    relays = np.unique(ee.ldst)
    rel = np.flatnonzero(np.isin(ee.dev, relays))
    base = np.concatenate([np.arange(k)] + [rel] * q)
    ccls = np.concatenate([np.full(k, q + 1)] + [np.full(rel.size, b + 1) for b in range(q)])
    lcls = np.repeat(np.arange(1, q + 1), nl)
    lp = RouteLP(ee.dev[base], ee.mbits[base], p.samples, demand, np.tile(ee.lcol, q), np.tile(ee.ldst, q), True,
                 False, lcls, ccls)
    band, best = float(p.edge_bandwidth_hz[ee.edge]), -np.inf
    for nu in nus:
        own = np.array([bucket_costs(p, ee.cycles[c], p.freq_min[ee.dev[c]], p.freq_max[ee.dev[c]], ee.pay[c],
                                     c0[ee.dev[c]], 0.0, t, nu, q, grid) for c in rel]).reshape(rel.size, q)
        routes = np.zeros((nl, q))
        for li in range(nl):
            c, j = ee.lcol[li], ee.ldst[li]
            i = ee.dev[c]
            h = ee.pay[c] / ee.lrate[li]
            routes[li] = bucket_costs(p, ee.cycles[c], p.freq_min[i], p.freq_max[i], ee.pay[c], c0[j], h, t, nu, q,
                                      grid) + p.d2d_power_w[i] * h
        cost = np.concatenate([ee.costs(t, nu, 0.0)[:k], own.T.ravel(), routes.T.ravel()])
        status, val = lp.solve(cost)
        if status == "optimal":
            best = max(best, val - nu * band)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", default="4:0.05:1", help="n:lambda:seed of solver_model_bench.py, comma-separated")
    ap.add_argument("--buckets", default="8,40", help="numbers of start buckets, comma-separated")
    ap.add_argument("--grid", type=int, default=40, help="starts per bucket")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for spec in a.edges.split(","):
        n_, lam_, seed_ = spec.split(":")
        p = instance(int(n_), "power-frequency", float(lam_), int(seed_))
        with cpu_deadlines(scale_highs=True):
            plan = solve(p, "joint", time_limit_s=2.0)
        sub = SubsetEnergy(p, covers=True, steps=30)
        ee = sub.edge(0)
        assert ee is not None
        for f in (0.99, 1.0):
            t = plan.latency_s * f
            lp = price_by_slope(sub, ee, 0, t, 1e-9, None)
            nus = sub.nu[0] * np.geomspace(0.7, 1.4, 5)
            row = {"edge": spec, "objective": plan.objective, "plan_energy_j": plan.energy_j, "latency_s": t,
                   "lp_energy_j": lp, "lp_objective": t + p.lam * lp}
            for q in (int(b) for b in a.buckets.split(",")):
                cpu = time.process_time()
                e = bucketed(p, ee, sub.demand[0], t, nus, q, a.grid)
                row[f"buckets_{q}"] = {"energy_j": e, "objective": t + p.lam * e, "cpu_s": time.process_time() - cpu}
            rows.append(row)
            show(row)
    write_results(a.out, rows, {"grid": a.grid, "note": "estimates (grid minima), not certified bounds"})


if __name__ == "__main__":
    main()
