"""The model alone (solvers/model.py `certify`), given its own time: how far its MILP bound gets on one edge of N
devices x 6 modules from a plain incumbent (joint without enumeration or local search), wall limit --wall s.
Prints one JSON line per instance (objective, lower bound, certified gap, MILPs, wall and CPU seconds).

    python experiments/solver_model_alone.py [--sizes 6,8,12] [--lams 0,0.5] [--wall 20]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from code_version import CODE_PATHS, commit

from solvers import random_instance
from solvers.joint import joint_solve
from solvers.model import certify

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="6,8,12")
    ap.add_argument("--lams", default="0,0.5")
    ap.add_argument("--wall", type=float, default=20.0)
    a = ap.parse_args()
    import cvxpy  # noqa: F401  (its import is not the model's time)

    code = commit(CODE_PATHS)

    for n in (int(s) for s in a.sizes.split(",")):
        for lam in (float(s) for s in a.lams.split(",")):
            p = random_instance(n, 1, 6, 0, lam=lam)
            inc = joint_solve(p, enum_max=0, local_rounds=0, time_limit_s=0)
            w, c = time.perf_counter(), time.process_time()
            r = certify(p, inc.placement, inc.relay, time.perf_counter() + a.wall, gap=0.01)
            print(json.dumps({"devices": n, "lambda": lam, "incumbent": inc.objective, "objective": r.objective,
                              "lower_bound": r.lower_bound, "certified_gap": 1 - r.lower_bound / r.objective,
                              "milps": r.milps, "wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c,
                              "load": os.getloadavg()[0], "commit": code}), flush=True)
