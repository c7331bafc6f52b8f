"""Certified gap and time of `joint` at scale (issue 18, item 4): 1,000 and 10,000 devices at lambda = 0, lambda = 0.5
and with `relay_aggregates` (lambda = 0), and 100,000 devices at lambda = 0.

Instances as in the bench sweep: `random_instance(N, N / 100, M, seed)` (about 100 devices an edge), M in 3..10 drawn
from the seed, 3 D2D neighbours, default time limit (2 s) and gap (1 %). Per run: CPU and wall seconds of
`solve(p, "joint")` (instance generation excluded), the plan's status, its certified gap 1 - lower_bound / objective,
whether it passes `check_plan`, and the 1-minute load average before it (the machine is 2 shared cores: CPU
seconds are the steadier number). Targets: median certified gap <= 2 % at 1,000 and 10,000 devices in every case;
10,000 devices <= 2 s and 100,000 <= 10 s wall at lambda = 0.

--cpu-clock: the solver's deadlines read this process's CPU time (time.perf_counter = time.process_time; HiGHS's own
time limits x the process's wall / CPU ratio so far, as experiments/solver_ab.py --scale-highs does), so a loaded
machine does not cut the rounds short: what the 2 s give on a quiet one (the wall columns then exceed the limit).

Run: python experiments/solver_scale_gap.py [--seeds 3] [--quick] [--cpu-clock] [--out-name NAME]
(writes experiments/results/solver_scale_gap/scale_gap.{json,md}; --quick: scale_gap_quick.{json,md}; --cpu-clock:
scale_gap_cpu.{json,md}; --out-name: NAME.{json,md})
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from code_version import CODE_PATHS, commit
from solver_grid import scale_round

from solvers import check_plan, solve

OUT = Path(__file__).resolve().parent / "results" / "solver_scale_gap"
CASES = (("lambda 0", 0.0, False), ("lambda 0.5", 0.5, False), ("relay_aggregates", 0.0, True))


WALL = time.perf_counter


def cpu_clock() -> None:
    """The solver's deadlines on CPU time, HiGHS's time limits scaled by the wall / CPU ratio so far (module doc)."""
    from highspy._core import _Highs

    time.perf_counter = time.process_time
    set_option, w0, c0 = _Highs.setOptionValue, WALL(), time.process_time()

    def scaled(self, key, value):  # noqa: ANN001, ANN202
        if key == "time_limit" and value < 1e20:
            value = float(value) * min(max((WALL() - w0) / max(time.process_time() - c0, 1e-3), 1.0), 20.0)
        return set_option(self, key, value)

    _Highs.setOptionValue = scaled


def run_one(n: int, seed: int, lam: float, aggregates: bool) -> dict:
    p = scale_round(n, seed, lam=lam, relay_aggregates=aggregates)
    modules = p.num_modules
    load = os.getloadavg()[0]
    c0, w0 = time.process_time(), WALL()
    plan = solve(p, "joint")
    cpu, wall = time.process_time() - c0, WALL() - w0
    gap = 1 - plan.lower_bound / plan.objective if plan.objective > 0 else None
    return {"devices": n, "edges": p.num_edges, "modules": modules, "seed": seed, "lambda": lam,
            "relay_aggregates": aggregates, "cpu_s": cpu, "wall_s": wall, "load_1min": load, "status": plan.status,
            "objective": plan.objective, "lower_bound": plan.lower_bound, "gap": gap,
            "feasible": not plan.fallback and check_plan(p, plan) == []}


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["devices"], r["lambda"], r["relay_aggregates"]) for r in rows})
    for n, lam, agg in keys:
        sel = [r for r in rows if (r["devices"], r["lambda"], r["relay_aggregates"]) == (n, lam, agg)]
        gaps = [r["gap"] for r in sel if r["gap"] is not None]
        out.append({"devices": n, "lambda": lam, "relay_aggregates": agg, "runs": len(sel),
                    "median_gap": statistics.median(gaps), "max_gap": max(gaps),
                    "median_cpu_s": statistics.median(r["cpu_s"] for r in sel),
                    "median_wall_s": statistics.median(r["wall_s"] for r in sel),
                    "max_wall_s": max(r["wall_s"] for r in sel),
                    "load": statistics.median(r["load_1min"] for r in sel),
                    "statuses": sorted({r["status"] for r in sel}), "all_feasible": all(r["feasible"] for r in sel)})
    return out


def markdown(summary: list[dict], header: str) -> str:
    lines = [header, "", "| devices | case | runs | median certified gap | max gap | median CPU s | median wall s | "
             "max wall s | load | status | all feasible |", "|" + "---|" * 11]
    for s in summary:
        case = "relay_aggregates, λ = 0" if s["relay_aggregates"] else f"λ = {s['lambda']:g}"
        lines.append(f"| {s['devices']:,} | {case} | {s['runs']} | {100 * s['median_gap']:.2f} % | "
                     f"{100 * s['max_gap']:.2f} % | {s['median_cpu_s']:.2f} | {s['median_wall_s']:.2f} | "
                     f"{s['max_wall_s']:.2f} | {s['load']:.1f} | {', '.join(s['statuses'])} | {s['all_feasible']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1,000 devices only, one seed (a smoke run)")
    ap.add_argument("--cpu-clock", action="store_true", help="deadlines on this process's CPU time (module doc)")
    ap.add_argument("--out-name", default=None, help="file name of the results (default by the options)")
    args = ap.parse_args()
    if args.cpu_clock:
        cpu_clock()
    sizes = [(1000, 1)] if args.quick else [(1000, args.seeds), (10_000, args.seeds), (100_000, 1)]
    code = commit(CODE_PATHS)  # before the run: the code it ran
    rows = []
    for n, seeds in sizes:
        for name, lam, agg in CASES if n < 100_000 else CASES[:1]:
            for s in range(seeds):
                rows.append(run_one(n, 1000 * n + s, lam, agg))
                r = rows[-1]
                print(f"{n} {name} seed {r['seed']}: gap {100 * r['gap']:.2f} % cpu {r['cpu_s']:.2f} s "
                      f"wall {r['wall_s']:.2f} s load {r['load_1min']:.1f} {r['status']}", flush=True)
    machine = f"{platform.machine()} {os.cpu_count()}-core CPU container, shared with other jobs"
    summary = summarize(rows)
    flags = (" --quick" if args.quick else "") + (" --cpu-clock" if args.cpu_clock else "")
    header = (f"Machine: {machine}; commit {code}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"`python experiments/solver_scale_gap.py{flags}`")
    OUT.mkdir(parents=True, exist_ok=True)
    # a smoke run or a CPU-clock run never overwrites the full table
    name = args.out_name or ("scale_gap_quick" if args.quick else "scale_gap_cpu" if args.cpu_clock else "scale_gap")
    (OUT / f"{name}.json").write_text(json.dumps({"machine": machine, "commit": code, "summary": summary,
                                                  "rows": rows}, indent=1))
    (OUT / f"{name}.md").write_text(markdown(summary, header))
    print(markdown(summary, header))


if __name__ == "__main__":
    main()
