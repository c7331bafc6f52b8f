"""Wall and CPU seconds of the test suite, or a part of it, run as `make test-fast` / `make test` run it.

    python experiments/suite_time.py                    # the fast suite: pytest -m "not slow" -n 2
    python experiments/suite_time.py --all              # every test
    python experiments/suite_time.py -- tests/test_x.py # any pytest arguments after --

CPU seconds are those of pytest and every process it started (resource.RUSAGE_CHILDREN): on a shared machine
they change far less with the load than wall seconds do, so report both, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every test, slow ones included (make test's pytest)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest instead of the default selection")
    args = parser.parse_args()
    selection = args.pytest_args or ([] if args.all else ["-m", "not slow", "-n", "2"])  # as make test-fast
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection]
    env = dict(os.environ, WANDB_MODE="disabled", HF_HUB_OFFLINE="1")
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    result = {"command": " ".join(cmd[1:]), "exit": done.returncode, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
              "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1),
              "cpus": os.cpu_count(), "machine": f"{platform.machine()} CPU container, {os.cpu_count()} cores, shared",
              "summary": summary}
    print(json.dumps(result, indent=1))
    if done.returncode:
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
