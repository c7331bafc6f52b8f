"""Two checkouts of hffm timed against each other on one job, repeats alternated: the CPU-second ratio B / A.

On a shared machine the load moves between runs, so numbers from two runs do not compare; this script runs
two worker processes side by side, one importing hffm from checkout A and one from checkout B (each builds
the same world from the same seed once), and asks them in turn, A B A B ..., to run the job once and report
its CPU and wall seconds. A repeat of A and the repeat of B after it see about the same load.

Jobs (``--job``):

- ``packed``: one round's local training of ``--devices`` devices with the packed engine
  (`bench_engine.py`'s ``packed`` case: the scale benchmark's world, ``tiny`` model, 5 local AdamW steps);
- ``round``: the hffm side of ``bench_flower.py`` (star mode, every client every round, ``--rounds`` rounds from
  the same initial modules), reporting the CPU seconds of the steady rounds (not the first, not the last, which
  evaluates).

Reported per side: every repeat's CPU and wall seconds, the minimum and median, and the ratio B / A of the
minima and of the medians (below 1: B is cheaper); the workers' losses (``packed``: every device's last loss,
``round``: the final accuracy) and their largest difference, so a faster B that computes something else shows.
Results go to ``experiments/results/bench_ab/<name>.json`` with the load averages and both commits.

Usage (A: a checkout of main, e.g. ``git archive main | tar -x -C /tmp/a``; B: this one):
    python experiments/bench_ab.py --a /tmp/a --label-a main@abc1234 --b . --job packed --devices 100 --repeats 7
    python experiments/bench_ab.py --a /tmp/a --b . --job round --clients 100 --rounds 3 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results" / "bench_ab"


def _worker(root: Path, job: str, devices: int, rounds: int, steps: int) -> None:
    """Serve ``run`` requests on stdin: run the job once, print one JSON line (CPU s, wall s, result)."""
    sys.path.insert(0, str(root / "experiments"))
    sys.path.insert(0, str(root))
    import warnings

    import hffm  # noqa: F401  (before torch: OMP_WAIT_POLICY=PASSIVE)

    # isort: split
    import dataclasses

    import torch
    from lightning.fabric import Fabric
    from scale_bench import bench_config

    from hffm.engine import train_devices
    from hffm.federation.loop import run_federation
    from hffm.run import make_world

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    fabric = Fabric(accelerator="cpu", devices=1)
    if job == "packed":
        cfg = bench_config(devices, 1, local_steps=steps)
        cfg = cfg.replace(federation={"mode": "star", "rounds": 1, "batched": True}, seed=0)
        world = make_world(cfg)
        calls: list[tuple] = []

        def spy(*args):
            calls.append(args)
            return train_devices(*args)

        run_federation(fabric, world, cfg, loggers=[], trainer=spy)
        _, bank, jobs, local = calls[0]
        local = dataclasses.replace(local, batched=True, packed=True)

        def once() -> tuple[float, float, list[float]]:
            wall, cpu = time.perf_counter(), time.process_time()
            results = train_devices(fabric, bank, jobs, local)
            return time.process_time() - cpu, time.perf_counter() - wall, [r.losses["loss"] for r in results]
    else:
        from fedavg_job import JobSpec, global_accuracy

        spec = JobSpec(clients=devices, rounds=rounds, local_steps=steps)
        world = make_world(spec.config())
        initial = world.bank.state_of(world.bank.names())

        def once() -> tuple[float, float, list[float]]:
            world.bank.load_states(initial)
            cpu_rounds: list[float] = []
            wall_rounds: list[float] = []
            clock = [time.process_time(), time.perf_counter()]

            def record(metrics, round_index, plan, outcome) -> None:
                now = [time.process_time(), time.perf_counter()]
                cpu_rounds.append(now[0] - clock[0])
                wall_rounds.append(now[1] - clock[1])
                clock[:] = now

            result = run_federation(fabric, world, spec.config(), loggers=[record])
            kept = slice(1, -1) if len(cpu_rounds) > 2 else slice(None)
            acc = global_accuracy(world, result.state.cloud_state)["accuracy"]
            return statistics.mean(cpu_rounds[kept]), statistics.mean(wall_rounds[kept]), [acc]

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        cpu, wall, values = once()
        print(json.dumps({"cpu_s": cpu, "wall_s": wall, "values": values}), flush=True)


def _commit(root: Path) -> str:
    """The checkout's commit, with ``+changes`` when its work tree differs from it."""
    if not (root / ".git").exists():
        return f"(not a git checkout: {root}; name it with --label-a/--label-b)"
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _start(root: Path, args: argparse.Namespace) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(root), WANDB_MODE="disabled", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(root), "--job", args.job,
           "--devices", str(args.devices), "--rounds", str(args.rounds), "--steps", str(args.steps)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    if not ready:
        raise SystemExit(f"the worker for {root} did not start (its error is above)")
    return proc


def _ask(proc: subprocess.Popen) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("run\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("a worker stopped (its error is above)")
    return json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, help="checkout A (the reference)")
    parser.add_argument("--b", type=Path, help="checkout B (the change)")
    parser.add_argument("--label-a", default=None, help="what A is (default: its git commit)")
    parser.add_argument("--label-b", default=None, help="what B is (default: its git commit)")
    parser.add_argument("--job", choices=["packed", "round"], default="packed")
    parser.add_argument("--devices", "--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of a --job round run")
    parser.add_argument("--steps", type=int, default=5, help="local steps a device runs")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--name", default=None, help="result file name (default: <job>_<devices>)")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        _worker(args.worker.resolve(), args.job, args.devices, args.rounds, args.steps)
        return
    if args.a is None or args.b is None:
        parser.error("--a and --b: give both checkouts")
    roots = {"A": args.a.resolve(), "B": args.b.resolve()}
    labels = {"A": args.label_a, "B": args.label_b}
    for side, root in roots.items():
        if not (root / "hffm" / "__init__.py").exists():
            raise SystemExit(f"--{side.lower()} {root}: not an hffm checkout (no hffm/__init__.py)")
    load_before = [round(x, 2) for x in os.getloadavg()]
    workers = {side: _start(root, args) for side, root in roots.items()}
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    try:
        for r in range(args.repeats):
            for side in ("A", "B"):
                runs[side].append(_ask(workers[side]))
                print(f"repeat {r + 1}/{args.repeats} {side}: CPU {runs[side][-1]['cpu_s']:.3f} s, "
                      f"wall {runs[side][-1]['wall_s']:.3f} s, load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for proc in workers.values():
            proc.communicate("stop\n", timeout=60)
    out: dict[str, Any] = {"job": args.job, "devices": args.devices, "rounds": args.rounds, "steps": args.steps,
                           "repeats": args.repeats, "machine": "2-core CPU container, shared with other jobs",
                           "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]}
    for side, root in roots.items():
        cpu = [x["cpu_s"] for x in runs[side]]
        out[side] = {"checkout": str(root), "commit": labels[side] or _commit(root), "cpu_s": cpu,
                     "wall_s": [x["wall_s"] for x in runs[side]], "cpu_min": min(cpu),
                     "cpu_median": statistics.median(cpu), "values": runs[side][-1]["values"]}
    out["ratio_min"] = out["B"]["cpu_min"] / out["A"]["cpu_min"]
    out["ratio_median"] = out["B"]["cpu_median"] / out["A"]["cpu_median"]
    out["max_value_diff"] = max(abs(a - b) for a, b in zip(out["A"]["values"], out["B"]["values"]))
    for side in ("A", "B"):
        print(f"{side} ({out[side]['commit']}): CPU min {out[side]['cpu_min']:.3f} s, "
              f"median {out[side]['cpu_median']:.3f} s")
    print(f"B / A CPU: {out['ratio_min']:.3f} (minima), {out['ratio_median']:.3f} (medians); load "
          f"{load_before} -> {out['load_after']}; largest difference of the results: {out['max_value_diff']:.2e}")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{args.name or f'{args.job}_{args.devices}'}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
