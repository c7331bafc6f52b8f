"""One FedAvg job, described once, that hffm and a Flower simulation both run (experiments/bench_flower.py).

The job is the scale benchmark's: the ``tiny`` model's module bank over the built-in benchmark, its
partition of about 16 training samples a client (clusters of 10), every client every round, 5 local
AdamW steps of batch 32, then a sample-weighted average of each module over the clients that trained
it (hffm's star mode; masked, as a client trains only the encoders, prompts and heads of its own
modalities and tasks). Everything is built from ``JobSpec`` and its seed, so a Ray worker that builds
the world again gets the same data, partition and bank (checked by ``trunk_checksum``).

This module needs no Flower: ``experiments/flower_job.py`` wraps it into a ClientApp and a ServerApp.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from scale_bench import bench_config

from hffm.engine.local import LocalConfig
from hffm.federation.aggregate import ModuleStates, ModuleUpdate, aggregate_modules, make_rule
from hffm.federation.config import FederationConfig
from hffm.federation.loop import device_seed  # the loop's per-(round, device) seed: same batches on both sides
from hffm.federation.world import World
from hffm.modules.optim import OPTIMIZERS

SEP = "::"
"""Between module name and tensor name in a flat state (``encoder/image::proj.weight``)."""


@dataclass(frozen=True)
class JobSpec:
    """What both frameworks must agree on; everything else follows from it."""

    clients: int
    rounds: int
    model: str = "tiny"
    seed: int = 0
    local_steps: int = 5
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.clients < 1 or (self.clients > 10 and self.clients % 10):
            raise ValueError(f"clients={self.clients}: must be 1..10 or a multiple of 10 (clusters of 10 clients)")
        if self.rounds < 1:
            raise ValueError(f"rounds={self.rounds}: must be >= 1")

    def config(self):
        """The resolved hffm Config of this job (the scale benchmark's, star mode: FedAvg)."""
        cfg = bench_config(self.clients, self.rounds, model=self.model, seed=self.seed,
                           local_steps=self.local_steps, batch_size=self.batch_size)
        # eval_every past the end: only the loop's last round evaluates (it always does), on a small
        # sample (the benchmark scores both frameworks' final modules itself, with global_accuracy).
        fed = dataclasses.replace(cfg.federation, mode="star", eval_every=self.rounds + 1, eval_samples=100,
                                  batched=True)
        return dataclasses.replace(cfg, federation=fed)

    def federation(self) -> FederationConfig:
        return self.config().federation

    def local(self) -> LocalConfig:
        fed = self.federation()
        return LocalConfig(fed.local_steps, fed.batch_size, fed.lr, fed.weight_decay, fed.optimizer, fed.batched,
                           fed.max_batch_devices)

    def as_dict(self) -> dict[str, int | str]:
        return dataclasses.asdict(self)


def build_job_world(spec: JobSpec) -> World:
    from hffm.run import make_world

    return make_world(spec.config())


@functools.lru_cache(maxsize=1)
def cached_world(spec: JobSpec) -> World:
    """The job's world, built once per process (a Flower actor serves many clients of one job)."""
    return build_job_world(spec)


def trunk_checksum(world: World) -> float:
    """A fingerprint of the frozen trunk (never sent): every process must have built the same one."""
    return float(sum(p.detach().double().abs().sum() for p in world.bank.trunk.parameters()))


def local_train(world: World, device: int, states: Mapping[str, Mapping[str, torch.Tensor]], local: LocalConfig,
                round_index: int, seed: int) -> tuple[ModuleStates, float]:
    """A client's local training as a plain PyTorch loop (what a Flower user writes): its sub-model of the
    bank from ``states``, ``local.steps`` optimizer steps; returns the trained modules' states and the
    last loss. Same seed, batches, optimizer and loss as hffm's loop (``hffm.engine.local.train_device``)."""
    bank, data = world.bank, world.train[device]
    required = bank.required_modules(data.modality_names, data.task_names)
    bank.load_states({name: states[name] for name in required})
    model = bank.submodel(data.modality_names, data.task_names, trainable=required)
    model.apply_trainable()
    seed_of = device_seed(seed, round_index, device)
    torch.manual_seed(seed_of)
    optimizer = OPTIMIZERS[local.optimizer].make(model.trainable_parameters(), local.lr, local.weight_decay)
    generator = torch.Generator().manual_seed(seed_of)
    batches: Iterator[dict] = iter(())
    model.train()
    loss = torch.zeros(())
    for _ in range(local.steps):
        batch = next(batches, None)
        if batch is None:  # as many passes over the client's data as the step budget needs
            batches = data.batches(local.batch_size, shuffle=True, generator=generator)
            batch = next(batches)
        outputs, aux = model(batch["inputs"], batch["present"])
        losses = [model.task_loss(t, outputs[t], y) for t, y in batch["targets"].items()]
        loss = sum(losses, torch.zeros(())) + model.cfg.moe_aux_weight * aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return bank.state_of(required), float(loss.detach())


def fedavg(global_states: ModuleStates, results: list[tuple[int, ModuleStates, float]]) -> ModuleStates:
    """Sample-weighted mean of each module over the clients that sent it (hffm's ``mean`` rule), as
    (client, trained modules, samples) results; modules no client sent keep their state."""
    updates = [ModuleUpdate(client, name, state, weight) for client, trained, weight in results
               for name, state in trained.items()]
    new, _ = aggregate_modules(global_states, updates, make_rule("mean"))
    return {**global_states, **new}


def flatten(states: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Module states as one flat dict (a Flower ArrayRecord holds one level of named arrays)."""
    return {f"{module}{SEP}{key}": value for module, state in states.items() for key, value in state.items()}


def unflatten(flat: Mapping[str, torch.Tensor]) -> ModuleStates:
    out: ModuleStates = {}
    for name, value in flat.items():
        module, sep, key = name.partition(SEP)
        if not sep:
            raise ValueError(f"array {name!r} has no {SEP!r}: expected '<module>{SEP}<tensor>'")
        out.setdefault(module, {})[key] = value
    return out


@torch.no_grad()
def global_accuracy(world: World, states: ModuleStates) -> dict[str, float]:
    """The global model (``states``) on the whole global test set, every modality and task: per-task
    accuracy and the mean over classification tasks (``accuracy``). One function for both frameworks."""
    from lightning.fabric import Fabric

    from hffm.engine.local import evaluate

    metrics = evaluate(Fabric(accelerator="cpu", devices=1), world.bank, world.global_test, states)
    accs = [v for k, v in metrics.items() if k.endswith("/acc")]
    return {"accuracy": sum(accs) / len(accs), **{k: float(v) for k, v in metrics.items()}}


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system, with reaped children's) of process ``root`` and all its descendants,
    from /proc: a Ray cluster started by ``run_simulation`` and Fabric's spawned ranks are descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()  # from field 3 (state) on
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])
        cpu[pid] = sum(int(v) for v in fields[11:15]) / ticks  # utime, stime, cutime, cstime
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def rank_run(fabric, job: dict, out: str) -> None:
    """One Fabric rank of the hffm side (one thread): the star run of ``JobSpec(**job)`` (a dict: Fabric's
    launcher refuses frozen dataclasses); every rank writes its rounds' (wall, CPU) seconds to
    ``out``/rank<r>.json, rank 0 the final global modules to ``out``/final.pt."""
    from hffm.federation.loop import run_federation

    spec = JobSpec(**job)
    torch.set_num_threads(1)
    world = build_job_world(spec)
    rounds: list[tuple[float, float]] = []
    clock = [time.process_time()]

    def record(metrics, round_index, plan, outcome) -> None:
        now = time.process_time()
        rounds.append((metrics["time/round_s"], now - clock[0]))
        clock[0] = now
        if fabric.global_rank == 0:
            print(f"  hffm   round {round_index}/{spec.rounds}: {rounds[-1][0]:.2f} s (rank 0)", flush=True)

    result = run_federation(fabric, world, spec.config(), loggers=[record])
    Path(out, f"rank{fabric.global_rank}.json").write_text(json.dumps(rounds))
    if fabric.global_rank == 0:
        torch.save(result.state.cloud_state, Path(out, "final.pt"))
