"""lambda > 0 at scale: joint plans at lambda = 0.5 with fixed power / frequency and with them as decisions
(p <= tx_power_w, f in [0.3, 1] x cpu_hz), 40 / 1,000 / 10,000 devices, 6 modules; wall and CPU time of solve
(incl. check and bound; default 2 s limit). Run: python experiments/solver_lambda_scale.py
(writes experiments/results/solver_bench/lambda_scale.json; 2-core CPU container)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

from code_version import CODE_PATHS, commit

from solvers import random_instance, solve

if __name__ == "__main__":
    code = commit(CODE_PATHS)  # before the run: the code it ran
    rows = []
    for n, e in ((40, 10), (1000, 10), (10000, 100)):
        p = random_instance(n, e, 6, n, lam=0.5)
        q = dataclasses.replace(p, p_max=p.tx_power_w * 1.0, f_min=p.cpu_hz * 0.3, f_max=p.cpu_hz * 1.0)
        for label, problem in (("fixed", p), ("power_frequency", q)):
            t0, c0 = time.perf_counter(), time.process_time()
            plan = solve(problem, "joint")
            rows.append({"devices": n, "edges": e, "lam": 0.5, "decisions": label, "wall_s": time.perf_counter() - t0,
                         "cpu_s": time.process_time() - c0, "status": plan.status,
                         "latency_s": plan.latency_s, "energy_j": plan.energy_j, "objective": plan.objective,
                         "lower_bound": plan.lower_bound, "fallback": plan.fallback})
            print(rows[-1], flush=True)
    out = Path("experiments/results/solver_bench/lambda_scale.json")
    machine = f"{platform.platform()}, {os.cpu_count()} CPU cores visible (shared with other jobs while it ran)"
    out.write_text(json.dumps({"machine": machine, "commit": code, "load_1min": os.getloadavg()[0],
                               "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}, indent=1))
