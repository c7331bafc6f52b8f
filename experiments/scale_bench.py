"""Scale benchmark of the federated engine: world build time, seconds per round and peak memory,
from 10 to 100,000 devices.

Each size runs in a fresh Python process (so its peak RSS is its own): build the world, run a few
hierarchical rounds (evaluation only at the end, as the loop always evaluates its last round), then
measure the final evaluation once more on its own. ``--participation`` samples that share of the
devices each round; ``--no-eval`` evaluates no device and no edge (the loop's last-round evaluation
then has nothing to do), for measuring the network model and memory at sizes where the evaluation
alone would take minutes. Reported per size:

- world build seconds, and of it the topology alone (positions and the sparse D2D graph), its links and
  bytes; one channel draw's seconds and bytes (per-link fading and rates),
- seconds per round (all rounds; the median of rounds 2..R-1, which exclude warm-up and evaluation),
- RSS after imports, after world building, after each round; peak RSS of the build and of the rounds,
- bytes of module state held by the FederationState (edge groups, cloud, personal) against one copy
  of the bank's federated modules and against the frozen trunk, with checks that the trunk is in no
  state, shares no storage with one, and exists once in the process.

Usage (the results in experiments/results/scale_bench were made with the first line, those in
experiments/results/scale_bench/large with the next three):
    .venv/bin/python experiments/scale_bench.py --devices 10 100 1000 --rounds 4
    .venv/bin/python experiments/scale_bench.py --devices 1000 10000 --rounds 2 --participation 0.01 \
        --out experiments/results/scale_bench/large
    .venv/bin/python experiments/scale_bench.py --devices 100000 --rounds 1 --participation 0.01 \
        --no-eval --samples-per-device 10 --out experiments/results/scale_bench/large
    .venv/bin/python experiments/scale_bench.py --cli 10000 --rounds 2 --participation 0.01 \
        --out experiments/results/scale_bench/large   # the issue's hffm-train command in a child process
    .venv/bin/python experiments/scale_bench.py --table-only        # rebuild results.json/md from runs/
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "scale_bench"
MACHINE = "2-core CPU container, shared with other jobs"
MB = 1e6


# ---- memory probes ------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS: resident now, VmHWM: peak resident)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} (this benchmark needs Linux)")


def rss_mb() -> float:
    return _status_kb("VmRSS") * 1024 / MB


def peak_rss_mb() -> float:
    return _status_kb("VmHWM") * 1024 / MB


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the next peak is of one phase only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def tensor_bytes(tree: Any) -> int:
    """Bytes of every tensor in nested dicts / lists (counting a tensor each time it appears)."""
    if isinstance(tree, torch.Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, dict):
        return sum(tensor_bytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(tensor_bytes(v) for v in tree)
    return 0


def _storages(tree: Any, out: set[int]) -> set[int]:
    if isinstance(tree, torch.Tensor):
        out.add(tree.untyped_storage().data_ptr())
    elif isinstance(tree, dict):
        for v in tree.values():
            _storages(v, out)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            _storages(v, out)
    return out


def engine_version() -> str:
    """HEAD of the repository, with '+dirty' when hffm/ has uncommitted edits (numbers depend on the engine)."""
    from code_version import commit

    return commit(("hffm",))


# ---- the run configuration ----------------------------------------------------------------------
def model_config(name: str):
    """The model preset of conf/model/<name>.yaml as a ModelConfig (one source of truth with Hydra)."""
    from hffm.modules.config import ModelConfig

    presets = files("hffm.conf") / "model"
    path = presets / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in presets.iterdir() if p.name.endswith(".yaml"))
        raise ValueError(f"--model {name!r}: no conf/model/{name}.yaml; choose one of {known}")
    values = OmegaConf.to_container(OmegaConf.create(path.read_text()))
    values.pop("defaults", None)
    return ModelConfig(**values)


def layout(n_devices: int, devices_per_edge: int = 10) -> tuple[int, int, float]:
    """(edges, devices per edge, area side in m): clusters of 10, the default density of edge servers.

    The default network puts 10 servers in 5 km x 5 km; 100 servers at 500 m separation do not fit
    there, so the side grows with sqrt(edges / 10) to keep that density.
    """
    if n_devices < 1:
        raise ValueError(f"devices={n_devices}: must be >= 1")
    per_edge = min(devices_per_edge, n_devices)
    if n_devices % per_edge:
        raise ValueError(f"devices={n_devices}: must be a multiple of {per_edge} devices per edge")
    edges = n_devices // per_edge
    return edges, per_edge, 5000.0 * max(1.0, (edges / 10) ** 0.5)


def bench_config(n_devices: int, rounds: int, model: str = "tiny", seed: int = 0, local_steps: int = 5,
                 batch_size: int = 32, samples_per_device: int = 20, participation: float = 1.0):
    """A hierarchical run (E_agg 2, no solver, no D2D, no logger) sized for ``n_devices``, with ``defense=screen``:
    the benchmarks time the engine (against plain FedAvg in bench_flower), not the default robust defense's
    validation scoring (docs/faults-and-security.md measures that)."""
    from hffm.config import Config, DataConfig, LoggerConfig, TopologyGroup, resolve
    from hffm.data.benchmark import BenchmarkConfig
    from hffm.data.partition import PartitionConfig
    from hffm.federation.config import FederationConfig
    from hffm.federation.defense import DefenseConfig

    edges, per_edge, area = layout(n_devices)
    cfg = Config(
        name=f"scale_bench_{n_devices}",
        seed=seed,
        model=model_config(model),
        data=DataConfig(
            benchmark=BenchmarkConfig(num_samples=max(2000, samples_per_device * n_devices)),
            partition=PartitionConfig(num_devices=n_devices, min_samples_per_device=min(10, samples_per_device // 2)),
        ),
        topology=TopologyGroup(num_edges=edges, devices_per_edge=per_edge, layout={"area_m": area}),
        federation=FederationConfig(rounds=rounds, e_agg=2, local_steps=local_steps, batch_size=batch_size,
                                    eval_every=rounds + 1, checkpoint_every=0, participation=participation),
        logger=LoggerConfig(kind="none"),
        defense=DefenseConfig.screen(),
        progress="none",
        plots=False,
    )
    return resolve(cfg)


def eval_view_cache(world) -> dict[str, float]:
    """Ask for every view ``evaluate_round`` asks for, then count what the world keeps cached.

    Before commit e40aa07, ``World.global_test_view`` cached one restricted copy of the global test set
    per (modalities, tasks) combination of the evaluated devices (384 MB at 1,000 devices); this
    measures what the cache holds now.
    """
    for device in world.eval_devices:
        world.global_test_view(device)
    world.single_modality_views()
    views = []
    for value in world._views.values():
        views += list(value.values()) if isinstance(value, dict) else [value]
    count = lambda d: tensor_bytes([d.inputs, d.present, d.targets, d.extras])  # noqa: E731
    return {"eval_views": len(views), "eval_view_bytes": sum(count(v) for v in views),
            "global_test_bytes": count(world.global_test), "global_test_samples": len(world.global_test)}


def network_probe(cfg, world, draws: int = 3) -> dict[str, Any]:
    """The network model alone: the world's topology rebuilt from the same seed (timed; the same
    graph, checked), its links and bytes, and ``draws`` channel draws (median seconds, bytes of one)."""
    import dataclasses

    import numpy as np

    from hffm.config import network_config
    from hffm.network.topology import make_topology

    net = network_config(cfg.topology)
    tic = time.perf_counter()
    topo = make_topology(net.topology, np.random.default_rng(np.random.SeedSequence([cfg.seed, 1])))
    topology_s = time.perf_counter() - tic
    if not np.array_equal(topo.link_ends, world.topology.link_ends):
        raise RuntimeError("the rebuilt topology differs from the world's: the probe no longer mirrors build_world")
    seconds, channel = [], None
    for r in range(draws):
        rng = np.random.default_rng(r)
        tic = time.perf_counter()
        channel = world.draw_channel(rng)
        seconds.append(time.perf_counter() - tic)
    arrays = [getattr(topo, f.name) for f in dataclasses.fields(topo)]
    per_round = [channel.uplink_gain, channel.link_gain, channel.link_rate]
    return {"topology_s": topology_s, "d2d_links": topo.num_links,
            "topology_bytes": sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)),
            "channel_s": statistics.median(seconds), "channel_bytes": sum(a.nbytes for a in per_round)}


def build_phases(n_devices: int, samples_per_device: int = 20, model: str = "tiny", seed: int = 0) -> dict[str, Any]:
    """Where the world build's time and memory go: the steps of ``build_world`` one by one (data,
    global split, topology, partition, per-device datasets, module bank), each with its seconds, the
    peak RSS while it ran (VmHWM reset before it) and the RSS after it."""
    from dataclasses import replace

    import numpy as np

    from hffm.config import network_config
    from hffm.data.benchmark import make_benchmark
    from hffm.data.partition import device_splits, partition
    from hffm.modules.bank import ModuleBank
    from hffm.network.topology import make_topology

    cfg = bench_config(n_devices, 1, model, seed, samples_per_device=samples_per_device)
    held: dict[str, Any] = {}
    phases = []

    def phase(name: str, step) -> None:  # noqa: ANN001 - a closure over held
        gc.collect()
        reset_peak()
        tic, cpu = time.perf_counter(), time.process_time()
        held[name] = step()
        phases.append({"phase": name, "seconds": time.perf_counter() - tic, "cpu_s": time.process_time() - cpu,
                       "peak_mb": peak_rss_mb(), "rss_after_mb": rss_mb()})

    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    phase("benchmark data", lambda: make_benchmark(cfg.data.benchmark, seed))
    phase("global test split", lambda: held.pop("benchmark data").split_consuming(cfg.data.global_test_fraction,
                                                                                  seed))
    phase("topology", lambda: make_topology(network_config(cfg.topology).topology, rng))
    train_pool = held["global test split"][0]
    part_cfg = replace(cfg.data.partition, num_devices=n_devices)
    phase("partition", lambda: partition(train_pool, part_cfg, seed))
    phase("device datasets", lambda: device_splits(train_pool, held["partition"], cfg.data.device_test_fraction, seed))
    phase("module bank", lambda: ModuleBank(cfg.model, train_pool.modalities, train_pool.tasks,
                                            vocab=getattr(train_pool, "vocab", None), seed=seed))
    return {"devices": n_devices, "samples": cfg.data.benchmark.num_samples, "engine": engine_version(),
            "phases": phases}


def network_only(n_devices: int, participation: float = 0.01, seed: int = 0, draws: int = 3) -> dict[str, Any]:
    """The network model of an ``n_devices`` world without data or model: build the topology, then
    ``draws`` rounds of a channel draw plus the D2D work a tree round does on it (the sparse rate
    matrix, the default aggregation trees over a ``participation`` share of the devices); seconds,
    bytes and the peak RSS of each part."""
    import dataclasses

    import numpy as np

    from hffm.config import network_config
    from hffm.federation.d2d import tree_parents
    from hffm.network.channel import draw_channel
    from hffm.network.topology import make_topology

    cfg = bench_config(n_devices, 1, seed=seed, participation=participation)
    net = network_config(cfg.topology)
    gc.collect()
    rss_before = rss_mb()
    reset_peak()
    tic = time.perf_counter()
    topo = make_topology(net.topology, np.random.default_rng(np.random.SeedSequence([seed, 1])))
    topology_s, peak_topology = time.perf_counter() - tic, peak_rss_mb()
    reset_peak()
    channel_s, tree_s = [], []
    for r in range(draws):
        rng = np.random.default_rng(r)
        tic = time.perf_counter()
        channel = draw_channel(topo, net.channel, rng)
        channel_s.append(time.perf_counter() - tic)
        participants = np.sort(rng.choice(n_devices, max(1, round(participation * n_devices)), replace=False))
        tic = time.perf_counter()
        tree_parents(participants.tolist(), topo.adjacency, channel.uplink_gain, channel.rate_matrix())
        tree_s.append(time.perf_counter() - tic)
    arrays = [getattr(topo, f.name) for f in dataclasses.fields(topo)]
    return {"devices": n_devices, "edges": topo.num_edges, "d2d_links": topo.num_links, "participation": participation,
            "engine": engine_version(), "rss_before_mb": rss_before, "topology_s": topology_s,
            "topology_bytes": sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)),
            "peak_topology_mb": peak_topology, "channel_s": statistics.median(channel_s),
            "channel_bytes": sum(a.nbytes for a in (channel.uplink_gain, channel.link_gain, channel.link_rate)),
            "tree_s": statistics.median(tree_s), "peak_rounds_mb": peak_rss_mb()}


# ---- one measurement (in this process) ----------------------------------------------------------
def measure(n_devices: int, rounds: int = 4, model: str = "tiny", seed: int = 0, local_steps: int = 5,
            batch_size: int = 32, threads: int | None = 1, participation: float = 1.0, evaluate: bool = True,
            samples_per_device: int = 20) -> dict[str, Any]:
    """Build a world of ``n_devices``, run ``rounds`` rounds and return times, RSS and state sizes.

    ``threads`` sets torch's intra-op threads (None leaves torch's default): on a shared 2-core
    machine two threads on these small tensors run several times slower than one. ``evaluate=False``
    empties the world's evaluated devices and edges, so no evaluation runs.
    """
    from hffm.federation.evaluation import evaluate_round
    from hffm.federation.loop import run_federation, tier_policy
    from hffm.modules.trunk import Trunk
    from hffm.run import make_fabric, make_world

    if rounds < 1:
        raise ValueError(f"rounds={rounds}: must be >= 1")
    if threads is not None:
        torch.set_num_threads(threads)
    rss_start = rss_mb()
    cfg = bench_config(n_devices, rounds, model, seed, local_steps, batch_size, samples_per_device, participation)
    reset_peak()
    tic, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(cfg.seed)
    world = make_world(cfg)
    build_s, build_cpu_s = time.perf_counter() - tic, time.process_time() - cpu
    gc.collect()
    rss_world, peak_build = rss_mb(), peak_rss_mb()
    if not evaluate:
        world.eval_devices, world.eval_edges = [], []
    network = network_probe(cfg, world)
    gc.collect()
    can_reset = reset_peak()

    fabric = make_fabric(cfg)
    fed = cfg.federation
    per_round: list[dict[str, float]] = []

    def record(metrics: dict[str, float], round_index: int, plan: object, outcome: object) -> None:
        per_round.append({"round": round_index, "seconds": metrics["time/round_s"], "rss_mb": rss_mb(),
                          "cloud_round": bool(metrics["cloud_round"])})

    tic = time.perf_counter()
    result = run_federation(fabric, world, cfg, loggers=[record])
    rounds_s = time.perf_counter() - tic
    peak_rounds = peak_rss_mb()
    state = result.state
    policy = tier_policy(fed)
    group_of = policy.group_of(world.topology.device_edge)
    eval_s = eval_cpu_s = None
    if evaluate:
        tic, cpu = time.perf_counter(), time.process_time()
        evaluate_round(fabric, world, state, fed, policy, group_of)
        eval_s, eval_cpu_s = time.perf_counter() - tic, time.process_time() - cpu
    gc.collect()

    trunk = world.bank.trunk
    with warnings.catch_warnings():  # isinstance on every live object touches deprecated torch aliases
        warnings.simplefilter("ignore")
        trunk_objects = sum(isinstance(o, Trunk) for o in gc.get_objects())
    trunk_bytes = tensor_bytes(dict(trunk.state_dict()))
    bank_module_bytes = sum(world.module_bytes.values())
    groups_bytes = tensor_bytes(state.group_states)
    cloud_bytes = tensor_bytes(state.cloud_state)
    personal_bytes = tensor_bytes(state.personal)
    held = [state.cloud_state, *state.group_states, *state.personal.values()]
    trunk_storages = _storages(dict(trunk.state_dict()), set())
    state_storages = _storages(held, set())
    # What a round holds at once before aggregation: every participant's trained modules.
    update_bytes = sum(world.module_bytes[m] for d in range(world.num_devices)
                       for m in world.bank.required_modules(world.parts[d].modalities, world.parts[d].tasks))
    data_bytes = sum(tensor_bytes([d.inputs, d.present, d.targets, d.extras])
                     for d in [*world.train, *world.test, world.global_test])
    views = eval_view_cache(world) if evaluate else {}
    seconds = [r["seconds"] for r in per_round]
    steady = seconds[1:-1]
    return {
        "devices": world.num_devices,
        "engine": engine_version(),
        "edges": world.topology.num_edges,
        "devices_per_edge": world.topology.num_devices // world.topology.num_edges,
        "area_m": cfg.topology.layout["area_m"],
        "samples": cfg.data.benchmark.num_samples,
        "participation": participation,
        "evaluated": evaluate,
        "min_train_samples": int(world.num_samples.min()),
        "model": model,
        "rounds": rounds,
        "local_steps": local_steps,
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,  # CPU seconds: what the build costs whatever else shares the machine
        **network,
        "round_s": seconds,
        "round_s_median_all": statistics.median(seconds),
        "round_s_median_steady": statistics.median(steady) if steady else None,
        "steady_rounds": "rounds 2..R-1: no warm-up, no evaluation" if steady else "none (rounds < 3)",
        "eval_s": eval_s,
        "eval_cpu_s": eval_cpu_s,
        "rounds_total_s": rounds_s,
        "rss_start_mb": rss_start,
        "rss_world_mb": rss_world,
        "rss_after_round_mb": [r["rss_mb"] for r in per_round],
        "rss_end_mb": rss_mb(),
        "peak_build_mb": peak_build,
        "peak_rounds_mb": peak_rounds if can_reset else None,
        # Resetting VmHWM per phase also lowers what ru_maxrss reports later: take the largest of all.
        "peak_rss_mb": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB, peak_rss_mb(),
                           peak_build, peak_rounds, *(r["rss_mb"] for r in per_round)),
        "trunk_bytes": trunk_bytes,
        "bank_module_bytes": bank_module_bytes,
        "state_bytes": groups_bytes + cloud_bytes + personal_bytes,
        "state_group_bytes": groups_bytes,
        "state_cloud_bytes": cloud_bytes,
        "state_personal_bytes": personal_bytes,
        "state_groups": len(state.group_states),
        "state_expected_bytes": (len(state.group_states) + 1) * bank_module_bytes + personal_bytes,
        "round_update_bytes": update_bytes,
        "data_bytes": data_bytes,
        "trunk_in_state": any("trunk" in s for s in held),
        "state_shares_trunk_storage": bool(trunk_storages & state_storages),
        "trunk_objects_in_process": trunk_objects,
        "group_module_names_equal_bank": all(sorted(g) == sorted(world.bank.names()) for g in state.group_states),
    } | views


# ---- driver: one fresh process per size, then the tables ---------------------------------------
def run_child(n_devices: int, args: argparse.Namespace, out: Path, command: str) -> dict[str, Any]:
    path = out / "runs" / f"n{n_devices}_{args.model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--single", str(n_devices), "--json", str(path),
           "--rounds", str(args.rounds), "--model", args.model, "--local-steps", str(args.local_steps),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads),
           "--participation", str(args.participation), "--samples-per-device", str(args.samples_per_device),
           *(["--no-eval"] if args.no_eval else [])]
    print("running:", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    result = json.loads(path.read_text())
    result["command"] = command
    path.write_text(json.dumps(result, indent=1))
    return result


def cli_overrides(n_devices: int, rounds: int = 2, participation: float = 0.01, model: str = "tiny",
                  samples_per_device: int = 20) -> list[str]:
    """The issue's ``hffm-train`` command at ``n_devices`` (20 samples a device, 1 % participation), as
    written: the area is left unset, so it grows to hold the servers (`TopologyConfig.side_m`)."""
    edges, per_edge, _ = layout(n_devices)
    return ["experiment=hffm", f"model={model}", f"topology.num_edges={edges}", f"topology.devices_per_edge={per_edge}",
            f"data.benchmark.num_samples={samples_per_device * n_devices}", f"federation.participation={participation}",
            f"federation.rounds={rounds}", "progress=lines"]


def run_cli(overrides: list[str], out: Path) -> dict[str, Any]:
    """Run ``hffm-train`` with these overrides in a child process: its wall time (imports, world build,
    rounds and every evaluation included) and peak RSS (the child's ru_maxrss, from wait4)."""
    import os
    import tempfile

    script = Path(sys.executable).with_name("hffm-train")
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [str(script), *overrides, f"hydra.run.dir={run_dir}"]
        print("running:", " ".join(cmd), flush=True)
        tic = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert child.stdout is not None
        lines = child.stdout.read().splitlines()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - tic
        child.returncode = os.waitstatus_to_exitcode(status)
        metrics = sorted(p.name for p in Path(run_dir).rglob("*") if p.is_file())
    result = {"command": "hffm-train " + " ".join(overrides), "returncode": child.returncode, "wall_s": wall,
              "peak_rss_mb": usage.ru_maxrss * 1024 / MB, "cpu_user_s": usage.ru_utime,
              "cpu_system_s": usage.ru_stime, "run_files": metrics, "output_tail": lines[-12:],
              "engine": engine_version(), "machine": MACHINE}
    out.mkdir(parents=True, exist_ok=True)
    name = next(o for o in overrides if o.startswith("topology.num_edges=")).split("=")[1]
    (out / f"cli_edges{name}.json").write_text(json.dumps(result, indent=1))
    return result


def _cell(run: dict[str, Any], key: str, fmt: str, scale: float = 1.0) -> str:
    """A table cell: the run's value formatted, or "-" where the run did not measure it."""
    return "-" if run.get(key) is None else format(run[key] / scale, fmt)


def write_tables(out: Path) -> list[dict[str, Any]]:
    runs = sorted((json.loads(p.read_text()) for p in (out / "runs").glob("*.json")),
                  key=lambda r: (r["model"], r["devices"]))
    meta = {"machine": MACHINE, "python": platform.python_version(), "torch": torch.__version__,
            "commands": sorted({r.get("command", "?") for r in runs})}
    (out / "results.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    lines = [
        "# Scale benchmark of the federated engine",
        "",
        f"Machine: {MACHINE}. Commands: {', '.join(f'`{c}`' for c in meta['commands'])} (each size in a "
        "fresh process, from the repository root; the docstring of `experiments/scale_bench.py` says what is "
        "measured).",
        "",
        "| model | devices | edges | participation | build s | topology s | D2D links | topology MB | channel draw s "
        "| channel MB | s/round (median, steady) | s/round (all) | final eval s | peak RSS MB | RSS after world MB "
        "| RSS after last round MB | federation state MB | bank modules MB | trunk MB | round updates MB | data MB |",
        "| --- " * 21 + "|",
    ]
    for r in runs:
        steady = r["round_s_median_steady"]
        opt = partial(_cell, r)
        lines.append(
            f"| {r['model']} | {r['devices']} | {r['edges']} | {r.get('participation', 1.0):g} "
            f"| {opt('build_s', '.1f')} | {opt('topology_s', '.2f')} | {opt('d2d_links', '.0f')} "
            f"| {opt('topology_bytes', '.1f', MB)} | {opt('channel_s', '.3f')} | {opt('channel_bytes', '.1f', MB)} "
            f"| {'-' if steady is None else f'{steady:.2f}'} "
            f"| {', '.join(f'{s:.2f}' for s in r['round_s'])} | {opt('eval_s', '.2f')} | {r['peak_rss_mb']:.0f} "
            f"| {r['rss_world_mb']:.0f} | {r['rss_after_round_mb'][-1]:.0f} | {r['state_bytes'] / MB:.3f} "
            f"| {r['bank_module_bytes'] / MB:.3f} | {r['trunk_bytes'] / MB:.3f} "
            f"| {r['round_update_bytes'] / MB:.3f} | {r['data_bytes'] / MB:.1f} |"
        )
    lines += [
        "",
        "Columns: *build s* is the whole world (data, partition, topology, bank); *topology s* rebuilds the "
        "topology alone (positions and the sparse D2D graph) and *topology MB* is its arrays; *channel draw s* / "
        "*channel MB* are one round's channel (uplink gains, per-link fading and rates). "
        "*s/round (median, steady)* is the median of rounds 2..R-1 (round 1 warms up, round R "
        "also runs the loop's final evaluation); *s/round (all)* lists every round; *final eval s* times that "
        "evaluation once more on its own. *peak RSS* is the process's ru_maxrss (imports, data, world, rounds, "
        "evaluation; the largest of ru_maxrss, VmHWM per phase and the sampled RSS). *federation state* is "
        "every tensor in FederationState (one copy of the bank's federated "
        "modules per edge group, one for the cloud, personal modules); *bank modules* is one copy of those "
        "modules; *trunk* is the frozen trunk, held once by the process's bank and in no state; *round updates* "
        "is what one round holds at once before aggregation (every device's trained modules); *data* is the "
        "tensors of all device train/test splits and the global test set.",
        "",
        "Checks per run (results.json): `trunk_in_state` false, `state_shares_trunk_storage` false, "
        "`trunk_objects_in_process` 1, `state_bytes == state_expected_bytes` "
        "((edge groups + 1) x bank modules + personal).",
    ]
    notes = out / "notes.md"  # hand-written context (engine versions, anomalies), kept under the table
    if notes.is_file():
        lines += ["", notes.read_text().strip()]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return runs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--model", default="tiny", help="a preset of conf/model (tiny or small)")
    p.add_argument("--local-steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch's default)")
    p.add_argument("--participation", type=float, default=1.0, help="share of devices drawn each round")
    p.add_argument("--no-eval", action="store_true", help="evaluate no device and no edge")
    p.add_argument("--samples-per-device", type=int, default=20, help="benchmark samples per device (>= 2,000 in all)")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--single", type=int, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--views-only", type=int, metavar="N",
                   help="only build the N-device world and count the evaluation view cache (out/eval_views_nN.json)")
    p.add_argument("--table-only", action="store_true", help="only rebuild results.json/md from out/runs")
    p.add_argument("--network-only", type=int, nargs="+", metavar="N",
                   help="only the network model (topology, channel draws, D2D trees) at N devices "
                        "(out/network_only.json)")
    p.add_argument("--phases", type=int, metavar="N",
                   help="only time the world build's steps at N devices, with their peak RSS (out/phases_nN.json)")
    p.add_argument("--cli", type=int, metavar="N",
                   help="only run hffm-train (the issue's command) at N devices in a child process: wall time and "
                        "peak RSS (out/cli_edgesE.json)")
    args = p.parse_args(argv)
    if args.cli is not None:
        result = run_cli(cli_overrides(args.cli, args.rounds, args.participation, args.model, args.samples_per_device),
                         args.out)
        print(json.dumps(result, indent=1))
        return
    if args.views_only is not None:
        from hffm.run import make_world

        world = make_world(bench_config(args.views_only, args.rounds, args.model))
        rss = rss_mb()
        views = eval_view_cache(world) | {"devices": world.num_devices, "model": args.model,
                                          "rss_added_mb": rss_mb() - rss, "engine": engine_version()}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"eval_views_n{args.views_only}.json").write_text(json.dumps(views, indent=1))
        print(json.dumps(views))
        return
    if args.network_only:
        rows = [network_only(n, args.participation) for n in args.network_only]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "network_only.json").write_text(json.dumps({"machine": MACHINE, "runs": rows}, indent=1))
        print(json.dumps(rows, indent=1))
        return
    if args.phases is not None:
        result = build_phases(args.phases, args.samples_per_device, args.model)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"phases_n{args.phases}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result))
        return
    if args.single is not None:
        result = measure(args.single, args.rounds, args.model, local_steps=args.local_steps,
                         batch_size=args.batch_size, threads=args.threads or None, participation=args.participation,
                         evaluate=not args.no_eval, samples_per_device=args.samples_per_device)
        args.json.write_text(json.dumps(result, indent=1))
        keys = ("devices", "build_s", "topology_s", "channel_s", "round_s", "peak_rss_mb", "state_bytes")
        print(json.dumps({k: result[k] for k in keys}), flush=True)
        return
    given = argv if argv is not None else sys.argv[1:]
    command = ".venv/bin/python experiments/scale_bench.py " + " ".join(given)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for n in args.devices:
            run_child(n, args, args.out, command)
            write_tables(args.out)
    for r in write_tables(args.out):
        print(r["model"], r["devices"], r["round_s_median_steady"], round(r["peak_rss_mb"]), r["state_bytes"])


if __name__ == "__main__":
    main()
