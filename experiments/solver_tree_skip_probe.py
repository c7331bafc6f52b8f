"""Where a clocked tree solve (`solve(p, "joint", time_limit_s=T)`) spends its per-root MILPs: every
TreeMilp.solve call's root, cutoff, time given, status, bound and CPU, then the plan's gap; --lp adds each root's
LP relaxation (solvers/tree_model.py `relax`) at the MILPs' cutoff, unclocked, to see which roots it would skip.

    python experiments/solver_tree_skip_probe.py --n 12 --lams 0.5,5,50 --seeds 2 [--limit 2] [--lp]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solver_model_bench import instance  # noqa: E402

from solvers import solve  # noqa: E402
from solvers import tree_model as tm  # noqa: E402
from solvers.clock import load_libraries  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--lams", default="0.5,5,50")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--limit", type=float, default=2.0)
    ap.add_argument("--lp", action="store_true", help="each modelled root's LP bound too (unclocked, after)")
    ap.add_argument("--option", action="append", default=[], help="HiGHS option=value for the tree MILPs")
    ap.add_argument("--cpu-clock", action="store_true", help="the solver's deadlines and HiGHS's limits in CPU s")
    a = ap.parse_args()
    if a.cpu_clock:  # as experiments/solver_ab.py --cpu-clock --scale-highs
        from highspy._core import _Highs

        wall, set_option = time.perf_counter, _Highs.setOptionValue
        w0, c0 = wall(), time.process_time()

        def scaled(self, key, value):  # type: ignore[no-untyped-def]
            if key == "time_limit" and value < 1e20:
                value = float(value) * min(max((wall() - w0) / max(time.process_time() - c0, 1e-3), 1.0), 20.0)
            return set_option(self, key, value)

        _Highs.setOptionValue = scaled
        time.perf_counter = time.process_time
    load_libraries(tree=True)
    calls: list[dict] = []
    real = tm.TreeMilp.solve

    def logged(self, roots, cutoff, time_limit_s, gap, floor=0.0, energy_floor=0.0, **kw):  # type: ignore[no-untyped-def]
        for key, _, text in (o.partition("=") for o in a.option):
            self.highs.setOptionValue(key, {"true": True, "false": False}.get(text.lower(), text))
        c = time.process_time()
        kind, low, sol = real(self, roots, cutoff, time_limit_s, gap, floor, energy_floor, **kw)
        info = self.highs.getInfo()
        calls.append(
            {
                "root": roots[0],
                "cutoff": cutoff,
                "given": round(time_limit_s, 3),
                "kind": kind,
                "low/cut": round(low / cutoff, 4),
                "floor/cut": round((floor + energy_floor) / cutoff, 4),
                "cpu": round(time.process_time() - c, 3),
                "nodes": int(info.mip_node_count),
                "found": sol is not None,
                "args": (self, roots, floor, energy_floor),
            }
        )
        return kind, low, sol

    tm.TreeMilp.solve = logged  # type: ignore[method-assign]
    relax = tm.TreeMilp.relax

    def logged_lp(self, roots, cutoff, time_limit_s, floor=0.0, energy_floor=0.0):  # type: ignore[no-untyped-def]
        c = time.process_time()
        low = relax(self, roots, cutoff, time_limit_s, floor, energy_floor)
        calls.append({"lp root": roots[0], "low/cut": round(low / cutoff, 4), "cpu": round(time.process_time() - c, 3)})
        return low

    tm.TreeMilp.relax = logged_lp  # type: ignore[method-assign]
    for lam in [float(x) for x in a.lams.split(",")]:
        for seed in range(a.seeds):
            p = instance(a.n, "tree", lam, seed)
            calls.clear()
            c, w = time.process_time(), time.perf_counter()
            plan = solve(p, "joint", time_limit_s=a.limit)
            head = {"n": a.n, "lam": lam, "seed": seed, "gap": round(plan.gap, 4), "status": plan.status}
            head |= {"cpu": round(time.process_time() - c, 2), "wall": round(time.perf_counter() - w, 2)}
            print(json.dumps(head | {"objective": plan.objective}), flush=True)
            for k in calls:
                if "args" not in k:
                    print("   ", json.dumps(k), flush=True)
                    continue
                model, roots, floor, efloor = k.pop("args")
                if a.lp:
                    k["lp/cut"] = round(model.relax(roots, k["cutoff"], 30.0, floor, efloor) / k["cutoff"], 4)
                print("   ", json.dumps({q: v for q, v in k.items() if q != "cutoff"}), flush=True)


if __name__ == "__main__":
    main()
