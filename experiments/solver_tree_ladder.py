"""How much of a tree plan's T + lambda E the cheap per-root pairs and the Steiner ladder certify, from one plan.

Per instance (experiments/solver_model_bench.py's tree mode, one edge): the search's plan without a time limit
(solvers/tree.py `tree_search`, deterministic) is the incumbent; then the bound of tree_bound.py's per-root pairs
alone, the ladder's (solvers/tree_energy.py), the ladder with each device's modules coupled in latency and energy
(solvers/tree_lagrange.py `coupled_root`, every root below the incumbent), the ladder's own energy bound at the
plan's root against the plan's energy, and the CPU s of each. No MILP: what `joint` knows before its model starts.

    python experiments/solver_tree_ladder.py [--sizes 8,12] [--lams 0.05,0.5,5,50] [--seeds 2]
        [--out experiments/results/solver_model/tree_ladder.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from solver_grid import add_grid, grid, show, write_results
from solver_model_bench import instance

from solvers.edgebatch import EdgeView
from solvers.tree import tree_cost, tree_search
from solvers.tree_bound import edge_root_bounds, threshold_value
from solvers.tree_energy import edge_parts, ladder_pairs, root_values
from solvers.tree_lagrange import coupled_root, latency_columns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.05,0.5,5,50", seeds=2, mode=None)
    ap.add_argument("--out", default="experiments/results/solver_model/tree_ladder.json")
    a = ap.parse_args()
    rows = []
    for n, lam, seed in grid(a):
        p = instance(n, "tree", lam, seed)
        plan, _ = tree_search(p, enum_max=0)
        v = EdgeView.of(p, 0)
        x, par = plan.placement[v.dev], plan.parent[v.dev]
        root = int(np.flatnonzero(par == np.arange(v.n))[0])
        _, energy = tree_cost(v, x[None], par[None])
        t_lb, e_lb = edge_root_bounds(v)
        c = time.process_time()
        pairs = ladder_pairs(v, t_lb, e_lb)
        cpu = time.process_time() - c
        assert pairs is not None
        ladder = root_values(pairs, lam)
        c = time.process_time()
        parts, cols = edge_parts(v), latency_columns(v)
        assert parts is not None and cols is not None
        coupled = np.array([coupled_root(v, parts, cols, r, pairs[r], float(t_lb[r]), float(e_lb[r]), lam,
                                         plan.objective)[1] if ladder[r] < plan.objective else ladder[r]
                            for r in range(v.n)])
        cpu_coupled = time.process_time() - c
        row = {"devices": n, "lambda": lam, "seed": seed, "incumbent": plan.objective,
               "pairs_gap": 1 - threshold_value([t_lb], [e_lb], lam) / plan.objective,
               "ladder_gap": 1 - float(ladder.min()) / plan.objective,
               "coupled_gap": 1 - float(np.maximum(coupled, ladder).min()) / plan.objective,
               "energy_at_root_pairs": float(e_lb[root] / energy[0]),
               "energy_at_root_ladder": float(pairs[root][1][-1] / energy[0]), "ladder_cpu_s": cpu,
               "coupled_cpu_s": cpu_coupled}
        rows.append(row)
        show(row)
    write_results(a.out, rows)


if __name__ == "__main__":
    main()
