"""Two checkouts of the solver on the same instances, interleaved, so both see the same machine load.

For each instance of experiments/solver_model_bench.py (one edge, N devices x 6 modules) the checkouts A and B
solve it in turn, each in a fresh process (`solve(p, "joint", time_limit_s=T)`, after a warm-up solve of a small
instance: a round loop's process has its imports done): objective, certified lower bound,
gap, wall and CPU seconds, the 1-minute load. The clock is wall time, so on a shared machine a comparison is only
fair between runs that alternate like this; --cpu-clock makes the solver's deadlines read CPU time instead (what
the time limit gives on a quiet machine; HiGHS's own time limits stay wall time unless --scale-highs multiplies
each by the process's wall / CPU ratio so far). Writes a JSON with both checkouts' commits.

    python experiments/solver_ab.py --a /work/main --b . [--sizes 8,12] [--lams 0.05,0.5,5,50] [--seeds 2]
        [--time-limit 2] [--share-b 0.7] [--cpu-clock [--scale-highs]] [--mode aggregates]
        [--scale: the rounds of solver_scale_gap.py, --sizes 1000,10000]
        --out experiments/results/solver_model/ab.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import json, sys, time
wall = time.perf_counter
if {cpu_clock!r}:
    time.perf_counter = time.process_time  # the solver's deadlines in CPU s
    if {scale_highs!r}:  # HiGHS's own time limits (wall) x this process's wall / CPU ratio so far
        from highspy._core import _Highs
        _set, _w0, _c0 = _Highs.setOptionValue, wall(), time.process_time()

        def _scaled(self, key, value):
            if key == 'time_limit' and value < 1e20:
                ratio = (wall() - _w0) / max(time.process_time() - _c0, 1e-3)
                value = float(value) * min(max(ratio, 1.0), 20.0)
            return _set(self, key, value)
        _Highs.setOptionValue = _scaled
sys.path.insert(0, {root!r} + '/experiments')
sys.path.insert(0, {root!r})
from solver_model_bench import instance
import solvers.joint
from solvers import solve
if {share!r} is not None:
    solvers.joint.HEURISTIC_SHARE = {share!r}
import importlib
for name, value in {patch!r}:  # module.CONSTANT=value: a module constant changed for this checkout's runs
    mod, _, attr = name.rpartition('.')
    setattr(importlib.import_module(mod), attr, value)
solve(instance(4, 'one-hop', 0.5, 99), 'joint', time_limit_s=0.5)  # warm: lazy imports (scipy.sparse: 0.55 s)
p = {make}
w, c = wall(), time.process_time()
plan = solve(p, 'joint', time_limit_s={limit})
import solvers
assert solvers.__file__.startswith({root!r}), solvers.__file__  # this checkout's code, not another's
print(json.dumps({{'objective': plan.objective, 'lower_bound': plan.lower_bound, 'gap': plan.gap,
                  'status': plan.status, 'wall_s': wall() - w, 'cpu_s': time.process_time() - c}}))
"""


def commit_of(root: str) -> str:
    out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def run_one(root: str, n: int, lam: float, seed: int, limit: float, share: float | None, cpu_clock: bool,
            patch: list[tuple[str, int | float | bool]], mode: str = "one-hop", scale_highs: bool = False,
            scale: bool = False) -> dict:
    make = f"instance({n}, {mode!r}, {lam}, {seed})"
    if scale:  # experiments/solver_scale_gap.py's round: about 100 devices an edge, M in 3..10 from the seed
        s = 1000 * n + seed
        make = (f"__import__('solvers').random_instance({n}, {max(1, round(n / 100))}, "
                f"int(__import__('numpy').random.default_rng({s}).integers(3, 11)), {s}, lam={lam}, "
                f"relay_aggregates={mode == 'aggregates'})")
    code = CHILD.format(root=root, make=make, limit=limit, share=share, cpu_clock=cpu_clock,
                        patch=patch, scale_highs=scale_highs)
    env = {**os.environ, "PYTHONPATH": root, "WANDB_MODE": "disabled"}
    # cwd = the checkout: `python -c` puts the working directory first on sys.path, ahead of PYTHONPATH
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=root)
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "load_1min": os.getloadavg()[0]}


def parse_patch(text: str) -> tuple[str, int | float | bool]:
    """'solvers.improve.LAMBDA_SHARE=0.5' -> ('solvers.improve.LAMBDA_SHARE', 0.5); an integer literal stays an int
    (counts such as group_price.COLUMNS index arrays), true / false for flags."""
    name, sep, value = text.partition("=")
    if not sep or "." not in name:
        raise SystemExit(f"--patch: expected module.CONSTANT=value, got {text!r}")
    low = value.strip().lower()
    if low in ("true", "false"):
        return name.strip(), low == "true"
    try:
        return name.strip(), int(low)
    except ValueError:
        pass
    try:
        return name.strip(), float(low)
    except ValueError:
        raise SystemExit(f"--patch: {name.strip()}'s value must be a number, true or false, got {value!r}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="checkout root A (the reference)")
    ap.add_argument("--b", required=True, help="checkout root B")
    ap.add_argument("--sizes", default="8,12")
    ap.add_argument("--mode", default="one-hop", help="an instance mode of solver_model_bench.py")
    ap.add_argument("--lams", default="0.05,0.5,5,50")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--share-a", type=float, default=None, help="HEURISTIC_SHARE for A (default: A's own)")
    ap.add_argument("--share-b", type=float, default=None, help="HEURISTIC_SHARE for B (default: B's own)")
    ap.add_argument("--patch-a", action="append", default=[], help="module.CONSTANT=number for A (repeatable)")
    ap.add_argument("--patch-b", action="append", default=[], help="module.CONSTANT=number for B (repeatable)")
    ap.add_argument("--cpu-clock", action="store_true",
                    help="the solver's deadlines read process time: what 2 CPU s give, whatever the load")
    ap.add_argument("--scale-highs", action="store_true",
                    help="with --cpu-clock: HiGHS's own (wall) time limits x the process's wall / CPU ratio so far, "
                         "so a MILP or LP given x CPU s by the solver's clock gets about x CPU s under load")
    ap.add_argument("--scale", action="store_true",
                    help="the rounds of experiments/solver_scale_gap.py (--sizes in devices, e.g. 1000,10000; "
                         "--mode aggregates: relay_aggregates) instead of solver_model_bench.py's single edges")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    roots = {"A": str(Path(a.a).resolve()), "B": str(Path(a.b).resolve())}
    shares = {"A": a.share_a, "B": a.share_b}
    patches = {k: [parse_patch(v) for v in vals] for k, vals in (("A", a.patch_a), ("B", a.patch_b))}
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        for lam in (float(s) for s in a.lams.split(",")):
            for seed in range(a.seeds):
                row = {"devices": n, "mode": a.mode, "lambda": lam, "seed": seed}
                for k in ("A", "B"):
                    row[k] = run_one(roots[k], n, lam, seed, a.time_limit, shares[k], a.cpu_clock, patches[k],
                                     a.mode, a.scale_highs and a.cpu_clock, a.scale)
                rows.append(row)
                print(json.dumps(row), flush=True)
    meta = {"A": {"root": roots["A"], "commit": commit_of(roots["A"]), "heuristic_share": shares["A"],
                  "patch": patches["A"]},
            "B": {"root": roots["B"], "commit": commit_of(roots["B"]), "heuristic_share": shares["B"],
                  "patch": patches["B"]},
            "machine": f"{platform.machine()} {os.cpu_count()}-CPU container (shared)", "time_limit_s": a.time_limit,
            "cpu_clock": a.cpu_clock, "scale_highs": a.scale_highs and a.cpu_clock, "mode": a.mode, "scale": a.scale,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    for k in ("A", "B"):
        gaps = sorted(r[k]["gap"] for r in rows)
        cpu = sorted(r[k]["cpu_s"] for r in rows)
        print(k, meta[k]["commit"], "median gap", gaps[len(gaps) // 2], "worst", gaps[-1], "mean objective / A",
              sum(r[k]["objective"] / r["A"]["objective"] for r in rows) / len(rows), "median CPU s",
              cpu[len(cpu) // 2], "max", cpu[-1])


if __name__ == "__main__":
    main()
