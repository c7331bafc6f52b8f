"""Where a tree edge's per-root MILPs (solvers/tree_improve.py `_per_root`) spend their time: per root, its cheap
(ladder) bound, its coupled bound, and the MILP's time, nodes and bound to prove the cutoff, unclocked.

    python experiments/solver_tree_root_probe.py --n 8 --lam 0.5 --seed 0 [--limit 30] [--variant base]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solver_model_bench import instance  # noqa: E402

from solvers import tree_improve as ti  # noqa: E402
from solvers import tree_model as tm  # noqa: E402
from solvers import tree_rows as tr  # noqa: E402
from solvers.clock import load_libraries, now  # noqa: E402
from solvers.tree import tree_search  # noqa: E402
from solvers.tree_energy import root_values  # noqa: E402
from solvers.tree_model import build  # noqa: E402


def _value(text: str) -> bool | int | float | str:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--lam", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=float, default=30.0)
    ap.add_argument("--gap", type=float, default=0.01)
    ap.add_argument("--option", action="append", default=[], help="HiGHS option=value for the per-root MILPs")
    ap.add_argument("--loose", action="store_true", help="the ready-time rows' big-M as built (1 + hop)")
    ap.add_argument("--again", action="store_true", help="then the roots again from the improved plan")
    ap.add_argument("--no-paths", action="store_true", help="without the path energy rows")
    a = ap.parse_args()
    tm.PATH_ENERGY = not a.no_paths
    if a.loose:
        real = tr.Chain.tighten
        tr.Chain.tighten = lambda self, h, root, top: real(self, h, None, 1.0)  # type: ignore[method-assign]
    load_libraries(tree=True)
    p = instance(a.n, "tree", a.lam, a.seed)
    lam, gap = p.lam, a.gap
    t0 = time.process_time()
    plan, known = tree_search(p, exact=False, deadline=now() + 1.0)
    ed = ti._Edge(known.views[0], plan, known.pairs[0], known.enumerated[0], known.ladders[0])
    t_lb, e_lb = ed.pairs[0].copy(), ed.pairs[1]
    cheap = t_lb + lam * e_lb
    if ed.ladder is not None:
        cheap = np.maximum(cheap, root_values(ed.ladder, lam))
    ladder = cheap.copy()
    t1 = time.process_time()
    ti._couple(ed, cheap, t_lb, e_lb, lam, now() + 0.3, gap, now() + 1.0)
    t2 = time.process_time()
    u = ed.value(lam)
    print(
        json.dumps(
            {
                "search_cpu": t1 - t0,
                "couple_cpu": t2 - t1,
                "objective": u,
                "plan_root": int(np.flatnonzero(ed.parent == np.arange(ed.view.n))[0]),
            }
        )
    )
    model = build([ed.view], max(u, 1e-300))
    assert model is not None
    h = model.highs
    for opt in a.option:
        k, _, v = opt.partition("=")
        h.setOptionValue(k, _value(v))
    print("rows", h.getNumRow(), "cols", h.getNumCol())
    total = 0.0
    for r in np.argsort(cheap, kind="stable"):
        cutoff = (1 - 0.9 * gap) * u
        if not cheap[r] < cutoff:
            break
        c = time.process_time()
        kind, low, sol = model.solve(
            [int(r)], cutoff, a.limit, 0.8 * gap, floor=float(t_lb[r]), energy_floor=float(lam * e_lb[r])
        )
        dt = time.process_time() - c
        total += dt
        info = h.getInfo()
        better = None
        if sol is not None:
            better = ed.offer(*sol[0], lam)
        print(
            json.dumps(
                {
                    "root": int(r),
                    "ladder/U": ladder[r] / u,
                    "coupled/U": cheap[r] / u,
                    "kind": kind,
                    "low/U": low / u,
                    "cpu": round(dt, 3),
                    "nodes": int(info.mip_node_count),
                    "lp_its": int(info.simplex_iteration_count),
                    "improved": better,
                }
            )
        )
    print("total MILP cpu", round(total, 2), "objective", ed.value(lam) / u)
    if a.again:  # the same roots once more, from the improved plan (its cutoff)
        u2 = ed.value(lam)
        model = build([ed.view], max(u2, 1e-300))
        assert model is not None
        for r in np.argsort(cheap, kind="stable"):
            if not cheap[r] < (1 - 0.9 * gap) * u2:
                break
            c = time.process_time()
            kind, low, _ = model.solve(
                [int(r)],
                (1 - 0.9 * gap) * u2,
                a.limit,
                0.8 * gap,
                floor=float(t_lb[r]),
                energy_floor=float(lam * e_lb[r]),
            )
            print(
                json.dumps(
                    {
                        "again root": int(r),
                        "kind": kind,
                        "low/U2": low / u2,
                        "cpu": round(time.process_time() - c, 3),
                        "nodes": int(model.highs.getInfo().mip_node_count),
                    }
                )
            )


if __name__ == "__main__":
    main()
