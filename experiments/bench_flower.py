"""hffm against Flower on the same FedAvg job: seconds per round and final accuracy, side by side.

Per client count, in one invocation, one side after the other on the same machine (``--cores`` each):

- ``hffm <cores> threads``: ``run_federation`` in this process with ``--cores`` torch threads; star mode
  (FedAvg: every client to the cloud every round), batched training;
- ``hffm <cores> ranks``: the same run as ``--cores`` Fabric processes of one thread (ddp_spawn, gloo),
  each training its share of the clients (``hffm.run.train``);
- ``hffm 1 thread`` (``--hffm thread``): the threads run with one torch thread, hffm's default, the other
  cores left idle;
- ``flower``: Flower's simulation engine (``flwr.simulation.run_simulation``, Ray backend, ``--cores``
  actors of 1 CPU each) running ``experiments/flower_job.py``: a ClientApp training each client with a
  plain PyTorch loop, and a FedAvg aggregating each module over the clients that trained it.

The job (``experiments/fedavg_job.py``) is the same for all: the ``tiny`` model's module bank, the scale
benchmark's partition (about 16 training samples a client), every client every round, 5 local AdamW
steps of batch 32, the same seed for each client's batches, a sample-weighted average per module. All
start from the same modules, and their final global modules are scored by one function on the whole
global test set (mean accuracy over the classification tasks); the untrained model's score is given too.

Reported per side: start-up (hffm threads: building the world; hffm ranks: spawning the ranks, each
building the world, and writing the run's files; Flower: from ``run_simulation`` until the first client
starts training, i.e. Ray and its actors; each actor then builds the job's world during round 1), the
first round, steady seconds per round (hffm: rounds 2..R-1, as its last round also evaluates; Flower:
rounds 2..R) and Flower's steady median over that side's. The machine: a 2-core CPU container shared with
other jobs, so the load average before each side is recorded; the ratios come from one run.

``--compute`` needs no Flower: the CPU seconds of a round of hffm's batched training against the
per-client loop Flower's actors run, in one process of one thread (what batching alone saves).

Needs Flower: ``pip install -e '.[bench]'``. Usage:
    python experiments/bench_flower.py --clients 100 --rounds 4
    python experiments/bench_flower.py --clients 1000 --rounds 3 --hffm ranks
    python experiments/bench_flower.py --compute --clients 100
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hffm  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE; a run took 436 s instead of 14 under load)

# isort: split
import torch
from fedavg_job import JobSpec, build_job_world, fedavg, global_accuracy, local_train, rank_run, trunk_checksum
from scale_bench import MACHINE, engine_version

OUT = Path(__file__).resolve().parent / "results" / "bench_flower"
MISSING_FLOWER = ("experiments/bench_flower.py needs Flower with its Ray backend, which hffm does not install: "
                  "pip install -e '.[bench]'  (flwr[simulation]==1.42.0)")


def require_flower() -> None:
    """Stop with the install command when Flower or Ray is missing."""
    missing = [name for name in ("flwr", "ray") if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"{' and '.join(missing)} not installed. {MISSING_FLOWER}")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def steady(times: list[float], skip_last: bool) -> list[float]:
    """The steady rounds: not the first (warm-up), nor hffm's last (it evaluates); all rounds if too few."""
    kept = times[1:-1] if skip_last else times[1:]
    return kept or times


def summary(startup_s: float, rounds: list[float], cpu: list[float], skip_last: bool, acc: dict[str, float],
            load_before: list[float], extra: dict[str, Any]) -> dict[str, Any]:
    """``rounds``: wall seconds of each round; ``cpu``: CPU seconds of each round, all the side's processes."""
    kept, kept_cpu = steady(rounds, skip_last), steady(cpu, skip_last)
    return {"startup_s": startup_s, "first_round_s": rounds[0], "round_s": rounds, "round_cpu_s": cpu,
            "steady_s_median": statistics.median(kept), "steady_s_min": min(kept), "steady_rounds": len(kept),
            "steady_cpu_s_median": statistics.median(kept_cpu),
            "final_accuracy": acc["accuracy"], "final_metrics": acc, "load_before": load_before,
            "load_after": load(), **extra}


def run_hffm_threads(world, spec: JobSpec, initial: dict, threads: int, build_s: float) -> dict[str, Any]:
    """hffm in this process with ``threads`` torch threads, on the world built here."""
    from lightning.fabric import Fabric

    from hffm.federation.loop import run_federation

    before = load()
    torch.set_num_threads(threads)
    world.bank.load_states(initial)
    rounds: list[float] = []
    cpu: list[float] = []
    clock = [time.process_time()]

    def record(metrics, round_index, plan, outcome) -> None:
        rounds.append(metrics["time/round_s"])
        now = time.process_time()  # both threads
        cpu.append(now - clock[0])
        clock[0] = now
        print(f"  hffm   round {round_index}/{spec.rounds}: {rounds[-1]:.2f} s"
              + (" (with the loop's final evaluation)" if round_index == spec.rounds else ""), flush=True)

    result = run_federation(Fabric(accelerator="cpu", devices=1), world, spec.config(), loggers=[record])
    acc = global_accuracy(world, result.state.cloud_state)
    return summary(build_s, rounds, cpu, True, acc, before, {"processes": 1, "threads": threads})


def run_hffm_ranks(world, spec: JobSpec, initial: dict, ranks: int, build_s: float) -> dict[str, Any]:
    """hffm as ``ranks`` Fabric processes of 1 thread (ddp_spawn, gloo; ``fedavg_job.rank_run``), each
    building the world; wall seconds are rank 0's, CPU seconds the sum over the ranks."""
    import tempfile

    from lightning.fabric import Fabric

    before = load()
    with tempfile.TemporaryDirectory(prefix="bench_flower_") as out:
        tic = time.perf_counter()
        Fabric(accelerator="cpu", devices=ranks, strategy="ddp_spawn").launch(rank_run, spec.as_dict(), out)
        total = time.perf_counter() - tic
        per_rank = [json.loads((Path(out) / f"rank{r}.json").read_text()) for r in range(ranks)]
        final = torch.load(Path(out) / "final.pt", weights_only=True)
    rounds = [wall for wall, _ in per_rank[0]]
    cpu = [sum(rank[i][1] for rank in per_rank) for i in range(len(rounds))]
    acc = global_accuracy(world, final)
    # start-up: spawning the ranks, importing, building the world in each
    return summary(total - sum(rounds), rounds, cpu, True, acc, before,
                   {"processes": ranks, "threads": 1, "total_s": total})


def run_hffm_thread(world, spec: JobSpec, initial: dict, cores: int, build_s: float) -> dict[str, Any]:
    """hffm as it runs by default (``threads: 1``), leaving the other cores idle."""
    return run_hffm_threads(world, spec, initial, 1, build_s)


HFFM_VARIANTS = {"threads": run_hffm_threads, "ranks": run_hffm_ranks, "thread": run_hffm_thread}
"""How hffm uses the cores: one process of N threads, N Fabric processes of one thread, or its default of one
thread (``thread``: the other cores idle)."""


def run_flower(world, spec: JobSpec, initial: dict, actors: int, threads: int) -> dict[str, Any]:
    import flower_job
    from flwr.simulation import run_simulation

    before = load()
    torch.set_num_threads(threads)  # this process runs the ServerApp (aggregation)
    record = flower_job.FlowerRecord()

    def on_round(server_round: int, seconds: float) -> None:
        print(f"  flower round {server_round}/{spec.rounds}: {seconds:.2f} s", flush=True)

    server = flower_job.make_server_app(spec, initial, trunk_checksum(world), record, on_round)
    logging.getLogger("flwr").setLevel(logging.WARNING)  # (set on importing flwr) progress is printed here
    backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": actors}}
    tic = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_simulation(server_app=server, client_app=flower_job.app, num_supernodes=spec.clients,
                       backend_name="ray", backend_config=backend)
    done = time.time()
    if record.final_states is None or len(record.round_end) != spec.rounds:
        raise RuntimeError(f"the Flower simulation ended after {len(record.round_end)} of {spec.rounds} rounds "
                           "(its log above says why)")
    # Round 1 waits for Ray and its actors (started by run_simulation beside the ServerApp): it is timed
    # from its first client's start, and what came before is the start-up.
    first = record.first_client[1]
    rounds = [record.round_end[1] - first] + [record.round_end[r] - record.round_start[r]
                                              for r in range(2, spec.rounds + 1)]
    cpu = [record.cpu_end[r] - record.cpu_start[r] for r in range(1, spec.rounds + 1)]
    acc = global_accuracy(world, record.final_states)
    return summary(first - tic, rounds, cpu, False, acc, before,
                   {"actors": actors, "client_torch_threads": sorted(record.client_threads),
                    "shutdown_s": done - record.round_end[spec.rounds], "total_s": done - tic})


def measure(spec: JobSpec, variants: list[str], cores: int) -> dict[str, Any]:
    """Each hffm variant, then Flower, on one job; every side's final modules scored by one function."""
    print(f"{spec.clients} clients, {spec.rounds} rounds: building the job's world", flush=True)
    torch.set_num_threads(cores)
    tic = time.perf_counter()
    world = build_job_world(spec)
    build_s = time.perf_counter() - tic
    initial = world.bank.state_of(world.bank.names())
    untrained = global_accuracy(world, initial)["accuracy"]
    print(f"  world built in {build_s:.1f} s; untrained accuracy {untrained:.4f}", flush=True)
    sides: dict[str, dict[str, Any]] = {}
    for variant in variants:
        label = "hffm 1 thread" if variant == "thread" else f"hffm {cores} {variant}"
        print(f"  {label}:", flush=True)
        sides[label] = HFFM_VARIANTS[variant](world, spec, initial, cores, build_s)
    print(f"  flower, {cores} Ray actors x 1 CPU (start-up: Ray and its actors):", flush=True)
    flower = sides["flower"] = run_flower(world, spec, initial, cores, cores)
    for name, side in sides.items():
        side["flower_over_this"] = flower["steady_s_median"] / side["steady_s_median"]
        side["flower_over_this_cpu"] = flower["steady_cpu_s_median"] / side["steady_cpu_s_median"]
        print(f"  -> {name}: steady {side['steady_s_median']:.2f} s/round (Flower / this "
              f"{side['flower_over_this']:.2f}x), {side['steady_cpu_s_median']:.2f} CPU s/round (Flower / this "
              f"{side['flower_over_this_cpu']:.2f}x), final accuracy {side['final_accuracy']:.4f}", flush=True)
    return {"clients": spec.clients, "rounds": spec.rounds, "job": spec.as_dict(),
            "test_samples": len(world.global_test), "untrained_accuracy": untrained, "sides": sides}


def table(results: list[dict[str, Any]]) -> str:
    """One row per (clients, side); the ratios are Flower's steady medians over that side's."""
    lines = ["| clients | rounds | side | start-up (s) | first round (s) | steady s/round | Flower / this "
             "| steady CPU s/round | Flower / this (CPU) | final accuracy (untrained) | load average before |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for name, side in r["sides"].items():
            ratios = ("", "") if name == "flower" else (f"**{side['flower_over_this']:.2f}x**",
                                                         f"{side['flower_over_this_cpu']:.2f}x")
            lines.append(
                f"| {r['clients']:,} | {r['rounds']} | {name} | {side['startup_s']:.1f} | {side['first_round_s']:.2f} "
                f"| {side['steady_s_median']:.2f} | {ratios[0]} | {side['steady_cpu_s_median']:.2f} | {ratios[1]} "
                f"| {side['final_accuracy']:.3f} ({r['untrained_accuracy']:.3f}) | {side['load_before'][0]:.1f} |")
    return "\n".join(lines)


def compute_floor(spec: JobSpec) -> dict[str, Any]:
    """CPU seconds of a round's training and averaging, one process of one thread, no Flower: hffm's batched
    star round against the per-client loop that Flower's actors run (``local_train`` per client + ``fedavg``).
    Their ratio bounds what batching alone can give over a framework with no overhead at all."""
    from lightning.fabric import Fabric

    from hffm.federation.loop import run_federation

    torch.set_num_threads(1)
    world = build_job_world(spec)
    initial = world.bank.state_of(world.bank.names())
    loop_cpu = []
    states = initial
    for t in range(spec.rounds):
        tic = time.process_time()
        results = [(c, job_train(world, c, states, spec, t), float(world.num_samples[c])) for c in range(spec.clients)]
        states = fedavg(states, results)
        loop_cpu.append(time.process_time() - tic)
        print(f"  per-client loop round {t + 1}/{spec.rounds}: {loop_cpu[-1]:.2f} CPU s", flush=True)
    world.bank.load_states(initial)
    hffm_cpu: list[float] = []
    clock = [time.process_time()]

    def record(metrics, round_index, plan, outcome) -> None:
        now = time.process_time()
        hffm_cpu.append(now - clock[0])
        clock[0] = now
        print(f"  hffm batched round {round_index}/{spec.rounds}: {hffm_cpu[-1]:.2f} CPU s", flush=True)

    run_federation(Fabric(accelerator="cpu", devices=1), world, spec.config(), loggers=[record])
    loop, batched = statistics.median(loop_cpu[1:]), statistics.median(steady(hffm_cpu, skip_last=True))
    print(f"  -> {spec.clients} clients: per-client loop {loop:.2f}, hffm batched {batched:.2f} CPU s/round "
          f"({loop / batched:.2f}x)", flush=True)
    return {"clients": spec.clients, "loop_cpu_s": loop_cpu, "hffm_batched_cpu_s": hffm_cpu,
            "loop_cpu_s_median": loop, "hffm_batched_cpu_s_median": batched, "loop_over_hffm": loop / batched}


def job_train(world, client: int, states: dict, spec: JobSpec, round_index: int) -> dict:
    return local_train(world, client, states, spec.local(), round_index, spec.seed)[0]


def versions() -> dict[str, str]:
    import flwr
    import ray

    return {"python": platform.python_version(), "torch": torch.__version__, "flwr": flwr.__version__,
            "ray": ray.__version__, "engine": engine_version()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per run (>= 3: the first and hffm's last "
                        "are not steady)")
    parser.add_argument("--cores", type=int, default=2, help="what each side may use: hffm's threads or ranks, "
                        "Flower's Ray actors (1 CPU each)")
    parser.add_argument("--hffm", nargs="+", choices=sorted(HFFM_VARIANTS), default=["threads", "ranks"],
                        help="hffm in one process of --cores threads, as --cores Fabric ranks of 1 thread, "
                        "and/or in one thread (its default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compute", action="store_true", help="no Flower: CPU seconds a round of hffm's batched "
                        "training against the per-client loop Flower's actors run, one process of one thread")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.compute:
        specs = [JobSpec(clients=n, rounds=max(args.rounds, 3), seed=args.seed) for n in args.clients]
        rows = [compute_floor(spec) for spec in specs]
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"machine": MACHINE, "cpus": os.cpu_count(), "torch": torch.__version__, "engine": engine_version(),
                "command": "experiments/bench_flower.py " + " ".join(sys.argv[1:] if argv is None else argv),
                "load_average_end": load()}
        (args.out / "compute.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        return
    require_flower()
    if args.rounds < 3:
        parser.error(f"--rounds {args.rounds}: needs >= 3 (round 1 warms up and hffm's last round evaluates)")
    specs = [JobSpec(clients=n, rounds=args.rounds, seed=args.seed) for n in args.clients]  # checks them first
    warnings.filterwarnings("ignore", category=UserWarning)
    meta = {"machine": MACHINE, "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "versions": versions(), "cores": args.cores, "hffm": args.hffm,
            "command": "experiments/bench_flower.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "load_average_start": load()}
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for spec in specs:  # written after each size, so a cut-short run keeps what it measured
        results.append(measure(spec, args.hffm, args.cores))
        meta["load_average_end"] = load()
        (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        v = meta["versions"]
        start, end = meta["load_average_start"][0], meta["load_average_end"][0]
        md = (f"{table(results)}\n\nMachine: {MACHINE} ({meta['cpus']} CPUs; load average {start} at the start, "
              f"{end} at the end); {args.cores} cores a side (hffm threads or ranks, Flower Ray actors of 1 CPU); "
              f"torch {v['torch']}, flwr {v['flwr']}, ray {v['ray']}, engine {v['engine']}.\n"
              f"Command: `{meta['command']}`\n")
        (args.out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
