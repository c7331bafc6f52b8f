"""The tree search's plan with and without the tree-aware starting covers (solvers/tree_start.py), no enumeration
(enum_max=0) and no model: what the heuristic alone gives on edges the MILP does not take, and the incumbent it
hands the MILP. Instances: random_instance(N, E, 4 modules), tree_aggregation, lambda in {0, 0.5}, 3 seeds.
Writes experiments/results/solver_model/tree_starts.json.

    python experiments/tree_search_starts.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from solvers import check_plan, random_instance
from solvers.tree import tree_search

CASES = ((8, 1, 3), (12, 1, 3), (40, 4, 6), (200, 2, 6))
"""(devices, edges, D2D neighbours)."""


def main() -> None:
    rows = []
    for n, e, nb in CASES:
        for lam in (0.0, 0.5):
            for seed in range(3):
                p = dataclasses.replace(random_instance(n, e, 4, seed=seed, lam=lam, d2d_neighbours=nb),
                                        tree_aggregation=True)
                row: dict = {"devices": n, "edges": e, "lambda": lam, "seed": seed}
                for arrival in (False, True):
                    c = time.process_time()
                    plan, _ = tree_search(p, enum_max=0, arrival=arrival)
                    key = "with" if arrival else "without"
                    row[f"{key}_objective"] = plan.objective
                    row[f"{key}_cpu_s"] = time.process_time() - c
                    row[f"{key}_feasible"] = check_plan(p, plan) == []
                row["ratio"] = row["with_objective"] / row["without_objective"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    from code_version import commit
    out = Path("experiments/results/solver_model")
    out.mkdir(parents=True, exist_ok=True)
    summary = {f"{n}/{e}": {"ratio_median": float(np.median([r["ratio"] for r in rows if r["devices"] == n])),
                            "ratio_max": float(max(r["ratio"] for r in rows if r["devices"] == n))}
               for n, e, _ in CASES}
    (out / "tree_starts.json").write_text(json.dumps({"commit": commit(("solvers",)), "load": os.getloadavg()[0],
                                                      "machine": f"{os.cpu_count()}-CPU container",
                                                      "summary": summary, "rows": rows}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
