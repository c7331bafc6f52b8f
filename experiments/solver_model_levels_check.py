"""The round's cvxpy model with compression levels (solvers/model_levels.py) against brute force, on more rounds
than the unit tests: 3-device single edges, levels none / int8 / top-k, lambda, aggregating relays, budget and
penalty varied by seed. Prints one line per round and a summary (agree within 1e-6, bound valid, proven).

    PYTHONPATH=$PWD .venv/bin/python experiments/solver_model_levels_check.py [rounds]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from test_solver_levels import _offer  # noqa: E402
from test_solver_model_levels import _brute, _start  # noqa: E402

from solvers import random_instance  # noqa: E402
from solvers.model import certify  # noqa: E402

LAMS = (0.0, 0.05, 0.5, 5.0)
BUDGETS = (None, 0.0, 0.02, 0.41, 0.9)
PENALTIES = (0.0, 0.5, 2.0)


def main(rounds: int = 24) -> None:
    agree = valid = proven = 0
    worst = 0.0
    for seed in range(rounds):
        lam, budget, pen = LAMS[seed % 4], BUDGETS[seed % 5], PENALTIES[seed % 3]
        agg = seed % 2 == 1
        p = _offer(random_instance(3, 1, 2, seed=100 + seed, lam=lam, relay_aggregates=agg), budget, pen)
        want = _brute(p)
        t = time.perf_counter()
        c = certify(p, *_start(p), time.perf_counter() + 60.0, gap=1e-4, max_milps=20)
        dt = time.perf_counter() - t
        rel = abs(c.objective - want) / want
        worst = max(worst, rel)
        agree += rel <= 1e-6
        valid += c.lower_bound <= want * (1 + 1e-6)
        proven += c.proven
        print(f"seed {100 + seed} lam {lam} agg {agg} budget {budget} pen {pen}: model {c.objective:.6g} "
              f"brute {want:.6g} bound {c.lower_bound:.6g} levels {c.level.tolist() if c.level is not None else None} "
              f"milps {c.milps} {dt:.2f} s")
    print(f"{rounds} rounds: optimum = brute force {agree}, bound valid {valid}, proven {proven}, "
          f"worst relative difference {worst:.2e}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
