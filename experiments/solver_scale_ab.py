"""A/B of two checkouts on experiments/solver_scale_gap.py's rounds, alternated run by run (issue 18, item 4).

Each run is a fresh process with PYTHONPATH at one checkout (so `solvers` is that checkout's), calling
solver_scale_gap.run_one (CPU and wall seconds of `solve(p, "joint")`, certified gap, status, check_plan, load);
--cpu-clock: the solver's deadlines on each process's CPU time (solver_scale_gap.py's option). A and B alternate
per (devices, seed), B first on odd seeds, so load drifts hit both alike. Prints one JSON line a run and writes
{"args", "rows"} to --out.

Run: python experiments/solver_scale_ab.py --a /work/main --b . [--sizes 1000,10000] [--seeds 3] [--case aggregates]
     [--cpu-clock] --out experiments/results/solver_scale_gap/ab.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {"aggregates": (0.0, True), "lambda0": (0.0, False), "lambda0.5": (0.5, False)}


def one(checkout: str, n: int, seed: int, lam: float, agg: bool, cpu: bool) -> dict:
    code = (
        f"import json, solver_scale_gap as s; {'s.cpu_clock(); ' if cpu else ''}"
        f"print('ROW ' + json.dumps(s.run_one({n}, {seed}, {lam}, {agg})))"
    )
    env = {**os.environ, "PYTHONPATH": f"{Path(checkout).resolve()}{os.pathsep}{HERE}"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=Path(checkout).resolve()
    ).stdout  # cwd: `python -c` puts it first on sys.path
    return json.loads(next(line[4:] for line in out.splitlines() if line.startswith("ROW ")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="checkout A (its repo root)")
    ap.add_argument("--b", required=True, help="checkout B")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--case", default="aggregates", choices=sorted(CASES))
    ap.add_argument("--cpu-clock", action="store_true", help="solver_scale_gap.py's --cpu-clock in each run")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    lam, agg = CASES[a.case]
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        for s in range(a.seeds):
            sides = [("A", a.a), ("B", a.b)] if s % 2 == 0 else [("B", a.b), ("A", a.a)]
            for side, checkout in sides:
                r = {"side": side, **one(checkout, n, 1000 * n + s, lam, agg, a.cpu_clock)}
                rows.append(r)
                print(json.dumps(r), flush=True)
    for n in sorted({r["devices"] for r in rows}):
        for side in ("A", "B"):
            sel = [r for r in rows if r["devices"] == n and r["side"] == side]
            cpu = statistics.median(r["cpu_s"] for r in sel)
            print(
                f"{n} {side}: median gap {100 * statistics.median(r['gap'] for r in sel):.2f} % "
                f"max {100 * max(r['gap'] for r in sel):.2f} % median cpu {cpu:.2f}"
                f" max wall {max(r['wall_s'] for r in sel):.2f} feasible {all(r['feasible'] for r in sel)}"
            )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
