"""Reproduce the solver benchmark of solvers/README.md (about 2 minutes on a 2-core CPU container).

Equivalent to: python -m solvers bench --out experiments/results/solver_bench --sizes 10,100,1000,10000
--repeats 3 --exact-sizes 4,8,12 --exact-seeds 10
"""

from __future__ import annotations

from solvers.bench import run_bench

if __name__ == "__main__":
    run_bench("experiments/results/solver_bench", [10, 100, 1000, 10000], 3, [4, 8, 12], 10)
