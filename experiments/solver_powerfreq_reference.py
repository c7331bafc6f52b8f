"""Power and CPU frequency as decisions at lambda > 0: `joint` against the exact reference `reference_power_frequency`.

Small seeded rounds (2-3 devices, 1-2 edges, 2 modules; p <= the nominal power, f in [0.3, 1] x the nominal
frequency), lambda in {0.05, 0.5, 5, 50}. Per instance: joint's objective over the optimum - 1 (how far its plan is
from the optimum) and its lower bound over the optimum (how much of the optimum the certificate sees), with the
round's clock (`time_limit_s=2`) and unbounded (`time_limit_s=0`, where the subset-column LP of
solvers/subset_energy.py also runs). Writes experiments/results/solver_model/powerfreq_reference.{json,md}.

    python experiments/solver_powerfreq_reference.py [--seeds 3] [--cpu-clock]

--cpu-clock: the solver's deadlines read process time (as in solver_ab.py), so the 2 s are 2 CPU s whatever the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

from code_version import CODE_PATHS, commit
from cpu_clock import cpu_deadlines

from solvers import random_instance, solve
from solvers.reference import reference_power_frequency

LAMS = (0.05, 0.5, 5.0, 50.0)
SHAPES = ((2, 1), (3, 2))
"""(devices, edges) of the rounds: the reference enumerates every whole-round choice, so they stay small."""
OUT = Path(__file__).resolve().parent / "results" / "solver_model"


def decisions(p):
    return dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cpu-clock", action="store_true", help="the solver's deadlines in CPU s")
    a = ap.parse_args()
    with cpu_deadlines(a.cpu_clock):
        run(a)


def run(a: argparse.Namespace) -> None:
    code, load = commit(CODE_PATHS), os.getloadavg()[0]
    rows = []
    for lam in LAMS:
        for n, e in SHAPES:
            for seed in range(a.seeds):
                p = decisions(random_instance(n, e, 2, seed=seed, lam=lam))
                ref = reference_power_frequency(p)
                row = {"lambda": lam, "devices": n, "edges": e, "seed": seed, "optimum": ref.objective}
                for limit in (2.0, 0.0):
                    c = time.process_time()
                    plan = solve(p, "joint", time_limit_s=limit)
                    key = "clocked" if limit else "unbounded"
                    row[f"{key}_over_optimum"] = plan.objective / ref.objective - 1
                    row[f"{key}_bound_over_optimum"] = plan.lower_bound / ref.objective
                    row[f"{key}_cpu_s"] = time.process_time() - c
                rows.append(row)
                print(json.dumps(row), flush=True)
    meta = {"machine": f"{platform.machine()} {os.cpu_count()}-CPU container (shared)", "commit": code,
            "load_before": load, "load_after": os.getloadavg()[0],
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seeds": a.seeds,
            "cpu_clock": a.cpu_clock}
    lines = [json.dumps(meta), "", "| lambda | instances | plan over optimum, max (2 s / unbounded) | bound / optimum, "
             "min-max (2 s) | bound / optimum, min-max (unbounded) |", "|---|---|---|---|---|"]
    for lam in LAMS:
        cell = [r for r in rows if r["lambda"] == lam]
        over = [max(r[f"{k}_over_optimum"] for r in cell) for k in ("clocked", "unbounded")]
        lo = [min(r[f"{k}_bound_over_optimum"] for r in cell) for k in ("clocked", "unbounded")]
        hi = [max(r[f"{k}_bound_over_optimum"] for r in cell) for k in ("clocked", "unbounded")]
        lines.append(f"| {lam:g} | {len(cell)} | {100 * over[0]:+.2f} % / {100 * over[1]:+.2f} % | "
                     f"{lo[0]:.2f}-{hi[0]:.2f} | {lo[1]:.2f}-{hi[1]:.2f} |")
    med = statistics.median(r["unbounded_bound_over_optimum"] for r in rows)
    lines += ["", f"Median bound / optimum, unbounded: {med:.2f}."]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "powerfreq_reference.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (OUT / "powerfreq_reference.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
