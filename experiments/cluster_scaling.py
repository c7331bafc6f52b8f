"""Sharding over ranks on CPU: the same hffm-train run on 1 rank and on 2 (torchrun, gloo), at 1,000 devices.

Each run is a child process (torchrun and its workers for 2 ranks); reported per run: wall seconds of the
whole command (imports, world build, rounds, evaluation, files), CPU seconds of the child and all its
descendants (user + system, from wait4), seconds per round from metrics.json (``time/round_s``), and a check
that both runs give the same metrics (the ranks must not change the result). Intra-op threads are 1 per
rank, so 2 ranks use at most 2 cores; speed-up is wall(1) / wall(2), efficiency = speed-up / 2.

Usage (the committed results were made with the defaults):
    .venv/bin/python experiments/cluster_scaling.py                      # 1,000 devices, 2 rounds
    .venv/bin/python experiments/cluster_scaling.py --devices 100 --rounds 1 --out /tmp/cs   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "cluster_scaling"
BIN = Path(sys.executable).parent
MACHINE = "2-core CPU container, shared with other jobs (load from other sessions' tests during the runs)"


def overrides(devices: int, rounds: int, participation: float) -> list[str]:
    """Clusters of 10 devices, 20 samples a device, the tiny model, the area grown to keep the default density
    of edge servers: the scale benchmark's set-up (experiments/scale_bench.py)."""
    edges = devices // 10
    return ["experiment=hffm", "model=tiny", f"topology.num_edges={edges}", "topology.devices_per_edge=10",
            f"topology.layout.area_m={5000 * max(1.0, (edges / 10) ** 0.5):.0f}",
            f"data.benchmark.num_samples={20 * devices}", f"federation.participation={participation}",
            f"federation.rounds={rounds}", "threads=1", "progress=none", "plots=false", "logger=csv"]


def command(ranks: int, args: list[str]) -> list[str]:
    if ranks == 1:
        return [str(BIN / "hffm-train"), *args]
    return [str(BIN / "torchrun"), "--standalone", f"--nproc-per-node={ranks}", str(BIN / "hffm-train"), *args,
            f"fabric.devices={ranks}", "fabric.strategy=ddp"]


def run(ranks: int, args: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [*command(ranks, args), f"hydra.run.dir={Path(tmp) / 'run'}"]
        print("running:", " ".join(cmd[1:]), flush=True)
        env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
        load = os.getloadavg()
        tic = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert child.stdout is not None
        tail = child.stdout.read().splitlines()[-5:]
        _, status, usage = os.wait4(child.pid, 0)  # usage sums the child and every descendant it waited for
        wall = time.perf_counter() - tic
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n" + "\n".join(tail))
        rows = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    return {"ranks": ranks, "wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "round_s": [round(r["time/round_s"], 2) for r in rows], "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "final": {k: rows[-1][k] for k in ("accuracy", "participants", "cost/cum_latency_s", "cost/cum_energy_j")},
            "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd[:-1]))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--participation", type=float, default=0.1, help="share of devices trained each round")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--table-only", action="store_true", help="rewrite results.md from results.json")
    a = p.parse_args()
    if a.table_only:
        write_table(json.loads((a.out / "results.json").read_text()), a.out)
        return
    args = overrides(a.devices, a.rounds, a.participation)
    one, two = run(1, args), run(2, args)
    same = all(abs(one["final"][k] - two["final"][k]) <= 1e-6 * max(1.0, abs(one["final"][k])) for k in one["final"])
    from code_version import commit

    result = {"machine": MACHINE, "commit": commit(("hffm", "solvers", "conf")), "devices": a.devices,
              "rounds": a.rounds,
              "participation": a.participation, "runs": [one, two], "same_metrics": same,
              "speedup_wall": round(one["wall_s"] / two["wall_s"], 2),
              "cpu_ratio": round(two["cpu_s"] / one["cpu_s"], 2), "default_out": a.out == OUT}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(result, indent=1))
    write_table(result, a.out)


def write_table(result: dict[str, Any], out: Path) -> None:
    one, two = result["runs"]
    cores = os.cpu_count() or 1
    load = max(r["load_before"][0] for r in (one, two))
    lines = [f"# 1 against 2 ranks at {result['devices']} devices (CPU, gloo)", "",
             f"Machine: {result['machine']}. Commit {result['commit']}. Made by `experiments/cluster_scaling.py"
             + ("`" if result.get("default_out") else f" --devices {result['devices']} --rounds {result['rounds']}`")
             + f". Participation {result['participation']} (devices trained a round), 2 rounds, threads 1 a rank.", "",
             "| ranks | wall s | CPU s (all processes) | s/round | load avg before -> after | accuracy |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in (one, two):
        lines.append(f"| {r['ranks']} | {r['wall_s']} | {r['cpu_s']} | {', '.join(map(str, r['round_s']))} | "
                     f"{r['load_before'][0]} -> {r['load_after'][0]} | {r['final']['accuracy']:.4f} |")
    lines += ["", f"Speed-up (wall, 1 rank / 2 ranks): {result['speedup_wall']}; CPU seconds, 2 ranks / 1 rank: "
              f"{result['cpu_ratio']}; same metrics on both: {result['same_metrics']}.", ""]
    if load > cores:
        lines.append(f"Reading: the load average ({load:g} on {cores} cores) exceeded the cores, so wall times measure "
                     "the share of the machine each run got more than the run itself (more processes get a larger "
                     "share): only the CPU seconds compare. They say what sharding costs: the second rank builds "
                     "its own copy of the world and the ranks exchange each round's updates.")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
