"""Reproduce the solver benchmark of solvers/README.md (about 15 minutes on a 2-core CPU container), the speed
table (experiments/solver_speed.py) and the latency-energy front of the shipped example.

Equivalent to: python -m solvers bench --out experiments/results/solver_bench --sizes 10,100,1000,10000
--repeats 3 --exact-sizes 4,8,12 --exact-seeds 10 --lams 0,0.05,0.5,5,10, then
python -m solvers pareto solvers/examples/instance_small.json -o experiments/results/solver_pareto
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from code_version import CODE_PATHS, commit

from solvers.bench import run_bench
from solvers.instance import RoundProblem
from solvers.pareto import sweep, write_front

if __name__ == "__main__":
    code, load = commit(CODE_PATHS), os.getloadavg()[0]  # before the run: the code it ran, the load it met
    run_bench("experiments/results/solver_bench", [10, 100, 1000, 10000], 3, [4, 8, 12], 10,
              (0.0, 0.05, 0.5, 5.0, 10.0))
    bench = Path("experiments/results/solver_bench/bench.json")  # solvers/ knows no git: the commit is added here
    data = json.loads(bench.read_text())
    data.update(commit=code, load_before=load, load_after=os.getloadavg()[0],
                when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    bench.write_text(json.dumps(data, indent=1))
    problem = RoundProblem.load("solvers/examples/instance_small.json")
    write_front(sweep(problem), "experiments/results/solver_pareto", title="solvers/examples/instance_small.json")
