"""The issue's small and medium targets for `joint` = heuristics + the round's model (solvers/model.py).

One edge of N devices x 6 modules per instance (N in --sizes), modes one-hop, relay_aggregates, trees, power and
frequency as decisions, lambda in {0, 0.05, 0.5, 5, 50}; `solve(p, "joint", time_limit_s=2)`. Per cell: the
certified gap (1 - lower_bound / objective), the status (optimal = gap <= 1 % proven, time_limit, not_proven), wall
and CPU seconds, and where the exact reference runs (N <= --exact-max) the gap to the optimum.
Writes experiments/results/solver_model/bench.{json,md}.

    python experiments/solver_model_bench.py [--sizes 4,8,12] [--seeds 2] [--time-limit 2] [--modes one-hop,...]
        [--lams 0,0.5] [--out DIR] [--heuristic-share 0.5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from code_version import CODE_PATHS, commit

from solvers import random_instance, solve
from solvers.exact import exact_solve

LAMS = (0.0, 0.05, 0.5, 5.0, 50.0)
MODES = ("one-hop", "aggregates", "tree", "power-frequency")


def instance(n: int, mode: str, lam: float, seed: int, modules: int = 6):
    p = random_instance(n, 1, modules, seed, lam=lam, relay_aggregates=mode == "aggregates",
                        d2d_neighbours=min(n - 1, 6) if mode == "tree" else 3)
    if mode == "tree":
        p = dataclasses.replace(p, tree_aggregation=True)
    if mode == "power-frequency":
        p = dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())
    return p


def run(sizes: list[int], seeds: int, exact_max: int, time_limit: float, save=None, modes=MODES,
        lams=LAMS) -> list[dict]:
    rows: list[dict] = []
    for n in sizes:
        for mode in modes:
            for lam in lams:
                for seed in range(seeds):
                    p = instance(n, mode, lam, seed)
                    w, c = time.perf_counter(), time.process_time()
                    plan = solve(p, "joint", time_limit_s=time_limit) if mode != "tree" else solve(p, "joint")
                    row = {"devices": n, "mode": mode, "lambda": lam, "seed": seed, "objective": plan.objective,
                           "lower_bound": plan.lower_bound, "certified_gap": plan.gap, "status": plan.status,
                           "wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c}
                    if n <= exact_max and mode in ("one-hop", "aggregates"):
                        ex = exact_solve(p)
                        row["gap_to_optimum"] = plan.objective / ex.objective - 1
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if save is not None:  # partial results survive an interrupted run
                        save(rows)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| devices | mode | lambda | instances | certified <= 1 % | median / max certified gap | "
           "max gap to exact | median / max wall s | median / max CPU s | statuses |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["devices"], MODES.index(r["mode"]), r["lambda"]) for r in rows})
    for n, mi, lam in keys:
        cell = [r for r in rows if (r["devices"], MODES.index(r["mode"]), r["lambda"]) == (n, mi, lam)]
        gaps = np.array([r["certified_gap"] for r in cell])
        wall = np.array([r["wall_s"] for r in cell])
        cpu = np.array([r["cpu_s"] for r in cell])
        ex = [r["gap_to_optimum"] for r in cell if "gap_to_optimum" in r]
        statuses = ", ".join(f"{s} {sum(r['status'] == s for r in cell)}" for s in sorted({r["status"] for r in cell}))
        out.append(f"| {n} | {MODES[mi]} | {lam:g} | {len(cell)} | {int(np.sum(gaps <= 0.01))} | "
                   f"{100 * np.median(gaps):.2f}% / {100 * gaps.max():.2f}% | "
                   f"{f'{100 * max(ex):.3f}%' if ex else 'n/a'} | {np.median(wall):.2f} / {wall.max():.2f} | "
                   f"{np.median(cpu):.2f} / {cpu.max():.2f} | {statuses} |")
    return "\n".join(out)


def solvers_share() -> float:
    import solvers.joint

    return solvers.joint.HEURISTIC_SHARE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,8,12")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--exact-max", type=int, default=4)
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--modes", default=",".join(MODES), help="a comma list of " + ", ".join(MODES))
    ap.add_argument("--lams", default=",".join(f"{x:g}" for x in LAMS))
    ap.add_argument("--out", default="experiments/results/solver_model")
    ap.add_argument("--heuristic-share", type=float, default=None,
                    help="override solvers.clock.HEURISTIC_SHARE (the heuristics' part of the clock) for this run")
    a = ap.parse_args()
    if a.heuristic_share is not None:
        if not 0 < a.heuristic_share < 1:
            ap.error(f"--heuristic-share: must be in (0, 1), got {a.heuristic_share}")
        import solvers.joint

        solvers.joint.HEURISTIC_SHARE = a.heuristic_share  # joint_solve reads it at each call
    modes = tuple(a.modes.split(","))
    if not set(modes) <= set(MODES):
        ap.error(f"--modes: choose from {', '.join(MODES)}, got {a.modes!r}")
    lams = tuple(float(x) for x in a.lams.split(","))
    load_before = os.getloadavg()[0]
    code = commit(CODE_PATHS)  # before the first save: the run rewrites its own (tracked) results
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    def save(rows: list[dict]) -> str:
        meta = {"machine": f"{platform.machine()} {os.cpu_count()}-CPU container (shared)",
                "load_before": load_before, "load_now": os.getloadavg()[0], "time_limit_s": a.time_limit,
                "heuristic_share": solvers_share(),
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": len(rows),
                "commit": code}
        (out / "bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        md = table(rows)
        (out / "bench.md").write_text(f"{json.dumps(meta)}\n\n{md}\n")
        return md

    print(save(run([int(s) for s in a.sizes.split(",")], a.seeds, a.exact_max, a.time_limit, save, modes, lams)))


if __name__ == "__main__":
    main()
