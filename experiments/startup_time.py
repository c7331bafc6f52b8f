"""How long `hffm-train --help`, a config error and `import hffm` take, in fresh processes (CPU s and wall s).

    python experiments/startup_time.py                      # this checkout
    python experiments/startup_time.py --src /path/to/other/checkout --repeats 5

``--src`` runs the children in another checkout (first on PYTHONPATH, and their working directory), so two
versions compare with the same interpreter and packages. CPU seconds are the child's user + system time
(resource.RUSAGE_CHILDREN), which a loaded machine inflates less than wall time; the median of ``--repeats`` runs
is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "hffm-train --help": ["-m", "hffm.cli.train", "--help"],
    "config error (unknown key)": ["-m", "hffm.cli.train", "federation.roundz=3"],
    "config error (bad value)": ["-m", "hffm.cli.train", "federation.rounds=-3"],
    "import hffm": ["-c", "import hffm"],
    "import hffm; hffm.compose()": ["-c", "import hffm; hffm.compose()"],
}


def measure(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="a checkout to import hffm from (default: the installed one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    env = dict(os.environ, WANDB_MODE="disabled", HF_HUB_OFFLINE="1")
    src = (args.src or Path(__file__).resolve().parents[1]).resolve()
    env["PYTHONPATH"] = str(src)  # and the children run in it: `python -m` / `-c` put their working directory first
    rows = {}
    for name, cmd in CASES.items():
        runs = [measure(cmd, env, src) for _ in range(args.repeats)]
        rows[name] = {"cpu_s": statistics.median(r[0] for r in runs), "wall_s": statistics.median(r[1] for r in runs),
                      "exit": runs[0][2]}
        print(f"{name:<30} CPU {rows[name]['cpu_s']:5.2f} s   wall {rows[name]['wall_s']:5.2f} s   exit {runs[0][2]}")
    load = os.getloadavg()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} after the runs")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"src": str(args.src or "installed"), "repeats": args.repeats,
                                        "cpus": os.cpu_count(), "load_after": load[0], "cases": rows}, indent=1))


if __name__ == "__main__":
    main()
