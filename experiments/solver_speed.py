"""Wall time of `python -m solvers solve` end to end (start-up, reading and validating the instance JSON, solving,
checking the plan, writing the plan JSON) at 10,000 devices / 100 edges and 100,000 / 1,000, lambda = 0, 6 modules,
also with power and frequency as decisions.

Per size and case (instance layout x workers) it runs the CLI `--repeats` times and records the total wall (timed
here, from process start to exit) and the phases the CLI reports (read, solve, check, write; start-up = the rest),
with the 1-minute load average before each run: the machine (2 cores) is shared, so the load says how much of it
the run had. Targets (issue 10): 10,000 / 100 <= 2 s and 100,000 / 1,000 <= 10 s wall.

Run: python experiments/solver_speed.py [--repeats 3]  (writes experiments/results/solver_bench/speed.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from code_version import CODE_PATHS, commit

SIZES = ((10_000, 100), (100_000, 1_000))
TARGET_S = {10_000: 2.0, 100_000: 10.0}
CASES = (("columns", "auto"), ("columns", "1"), ("records", "auto"), ("decisions", "auto"))
"""(instance layout, workers): the default, one process, the old per-device-object layout, and the default layout
with power and frequency as decisions (p_max = the nominal power, f in [0.3, 1] x the nominal frequency)."""
MAKE = {
    "columns": "p",
    "records": "p",
    "decisions": "dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())",
}
"""How each case's instance is made from the random instance p (then saved in columns, or records for records)."""


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="experiments/results/solver_bench/speed.json")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code = commit(CODE_PATHS)  # before the run: the code it ran
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, e in SIZES:
            paths = {}
            for layout in sorted({c[0] for c in CASES}):
                paths[layout] = Path(tmp) / f"i{n}_{layout}.json"
                saved = "records" if layout == "records" else "columns"
                subprocess.run([sys.executable, "-c", "import dataclasses, sys; from solvers import random_instance; "
                                f"p = random_instance({n}, {e}, 6, seed={n}); "
                                f"({MAKE[layout]}).save(sys.argv[1], layout={saved!r})",
                                str(paths[layout])], check=True, env=env)
            for r in range(args.repeats):
                for layout, workers in CASES:
                    cmd = [sys.executable, "-m", "solvers", "solve", str(paths[layout]), "-o",
                           str(Path(tmp) / "plan.json")] + ([] if workers == "auto" else ["--workers", workers])
                    load = os.getloadavg()[0]
                    t0 = time.perf_counter()
                    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                    wall = time.perf_counter() - t0
                    out = json.loads(res.stdout)
                    sec = out["seconds"]
                    rows.append({"devices": n, "edges": e, "layout": layout, "workers": workers, "repeat": r,
                                 "wall_s": wall, **{f"{k}_s": v for k, v in sec.items()},
                                 "startup_s": wall - sum(sec.values()), "load_before": load,
                                 "objective": out["objective"], "lower_bound": out["lower_bound"],
                                 "instance_mb": paths[layout].stat().st_size / 1e6})
                    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}),
                          flush=True)
    summary = []
    for n, e in SIZES:
        for layout, workers in CASES:
            sel = [r for r in rows if r["devices"] == n and r["layout"] == layout and r["workers"] == workers]
            best = min(sel, key=lambda r: r["wall_s"])
            summary.append({"devices": n, "edges": e, "layout": layout, "workers": workers,
                            "best_wall_s": best["wall_s"], "median_wall_s": statistics.median(r["wall_s"] for r in sel),
                            "target_s": TARGET_S[n], "met": best["wall_s"] <= TARGET_S[n],
                            **{k: best[k] for k in ("read_s", "solve_s", "check_s", "write_s", "startup_s",
                                                    "load_before", "objective", "lower_bound", "instance_mb")},
                            "load_range": [min(r["load_before"] for r in sel), max(r["load_before"] for r in sel)]})
    machine = (f"{platform.platform()}, {_cpu()}, {os.cpu_count()} CPU cores visible, shared with other jobs "
               "(load_before: the 1-minute load average just before each run)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine, "python": platform.python_version(), "commit": code,
                                          "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                          "summary": summary, "rows": rows}, indent=1))
    for s in summary:
        phases = ", ".join(f"{k} {s[k + '_s']:.2f}" for k in ("read", "solve", "check", "write", "startup"))
        print(f"{s['devices']:>7} / {s['edges']:<5} {s['layout']:8} workers={s['workers']:4} best "
              f"{s['best_wall_s']:.2f} s (median {s['median_wall_s']:.2f}; {phases}) load {s['load_before']:.1f}, "
              f"target {s['target_s']:.0f} s {'met' if s['met'] else 'MISSED'}")

if __name__ == "__main__":
    main()
