"""Wall time of `python -m solvers solve` end to end (start-up, reading and validating the instance JSON, solving,
checking, writing the plan JSON) at 10,000 devices / 100 edges and 100,000 / 1,000, lambda = 0.

Run: python experiments/solver_speed.py [--repeats 3]  (writes experiments/results/solver_bench/speed.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = ((10_000, 100), (100_000, 1_000))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="experiments/results/solver_bench/speed.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, e in SIZES:
            inst = Path(tmp) / f"i{n}.json"
            subprocess.run([sys.executable, "-m", "solvers", "generate", "-n", str(n), "-e", str(e), "-m", "6",
                            "--seed", str(n), "-o", str(inst)], check=True)
            for r in range(args.repeats):
                t0 = time.perf_counter()
                res = subprocess.run([sys.executable, "-m", "solvers", "solve", str(inst), "-o",
                                      str(Path(tmp) / "plan.json")], capture_output=True, text=True, check=True)
                wall = time.perf_counter() - t0
                out = json.loads(res.stdout)
                rows.append({"devices": n, "edges": e, "repeat": r, "wall_s": wall,
                             "solve_seconds": out["solve_seconds"], "objective": out["objective"],
                             "lower_bound": out["lower_bound"]})
                print(rows[-1], flush=True)
    machine = f"{platform.platform()}, {os.cpu_count()} CPU cores visible (shared with other jobs while it ran)"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
