"""Batched local training: the devices of a round train together, in one pass per local step.

Running devices one at a time spends most of a tiny model's step on per-operation overhead, not on
arithmetic. Here the devices' module states are stacked along a leading device axis and one model
over the union of their modalities and tasks runs under `torch.func.vmap` (as multi-LoRA serving
batches adapters): the frozen trunk is the bank's own, passed unstacked, so its matmuls run once over
every device's tokens. What keeps the devices apart:

- a device's missing modalities and tasks are masked out of attention (`M3TModel.forward_masked`),
  and its task losses are masked, so its outputs are those of its own sub-model;
- the loss is the sum over devices of per-device losses, so no gradient mixes devices;
- the loss is `hffm.modules.objective`'s, as a device training alone computes it, with the masks added;
- the optimizer steps each device's slice as the device's own optimizer would (`StackedOptimizer`, one fused
  update of a flat buffer): slices of modules a device does not train, or of an expert none of its task
  prompts reached, are skipped;
- each device draws its batches from its own seeded generator, in `train_device`'s order; a device
  whose batch is short is masked (its padding rows count for no loss and no routing statistic).

The result per device is what `train_device` returns, equal up to float summation order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from lightning.fabric import Fabric
from torch import Tensor, nn
from torch.func import functional_call, vmap

from hffm.engine.batch_groups import MIN_PASS_DEVICES, Member, plan_groups
from hffm.engine.jobs import DeviceJob, LocalConfig, TrainResult
from hffm.engine.local import _batches, _rows, train_device
from hffm.engine.packed import PackedLoss, stacked_key
from hffm.engine.packed_batch import WaveLayout, pack
from hffm.engine.stacked_optim import StackedOptimizer
from hffm.engine.workers import pass_workers, run_units
from hffm.modules.bank import ModuleBank
from hffm.modules.model import M3TModel
from hffm.modules.objective import task_losses, total_loss


def batched_unsupported(bank: ModuleBank) -> str | None:
    """Why this bank's models cannot train batched (None when they can)."""
    cfg = bank.cfg
    if cfg.hf_trunk:
        return f"model.trunk={cfg.trunk!r}: a Hugging Face trunk runs its adapters through hooks, one device at a time"
    if cfg.dropout > 0:
        return f"model.dropout={cfg.dropout}: batched training draws no per-device dropout masks (set it to 0)"
    if cfg.text_encoder != "native":
        return f"model.text_encoder={cfg.text_encoder!r}: only native encoders are stacked over devices"
    if not cfg.freeze_trunk:
        return "model.freeze_trunk=false: batched training shares one frozen trunk"
    return None


def train_devices(fabric: Fabric, bank: ModuleBank, jobs: Sequence[DeviceJob], cfg: LocalConfig) -> list[TrainResult]:
    """The default ``Trainer``: `train_device` for every job, batched when ``cfg.batched`` and the model allows
    it; results in job order."""
    if cfg.batched and batched_unsupported(bank) is None:
        return train_batched(fabric, bank, jobs, cfg)
    return [train_device(fabric, bank, j, cfg) for j in jobs]


def train_batched(fabric: Fabric, bank: ModuleBank, jobs: Sequence[DeviceJob], cfg: LocalConfig) -> list[TrainResult]:
    """`train_device` for every job, in groups of at most ``cfg.max_batch_devices``; results in job order."""
    max_devices = cfg.max_batch_devices
    reason = batched_unsupported(bank)
    if reason is not None:
        raise ValueError(f"federation.batched=true: {reason}, or set federation.batched=false")
    if max_devices < 1:
        raise ValueError(f"federation.max_batch_devices={max_devices}: must be >= 1")
    members = [Member(frozenset(j.data.modality_names), frozenset(j.data.task_names), min(cfg.batch_size, len(j.data)))
               for j in jobs]
    # native encoders only (batched_unsupported rules out Hugging Face ones): each has an int num_tokens
    tokens = {m: cast(int, bank.module(f"encoder/{m}").num_tokens) for m in bank.modalities}
    results = [TrainResult(j.device, {}, {}) for j in jobs]
    if cfg.packed:  # one pass a step for each wave of at most max_devices devices, whatever they hold
        workers = pass_workers(fabric.device)
        waves = _waves(len(jobs), max_devices, workers)
        trained = run_units(lambda wave: _train_group(fabric, bank, [jobs[i] for i in wave], cfg, packed=True),
                            waves, workers)
        for wave, wave_results in zip(waves, trained):
            for i, result in zip(wave, wave_results):
                results[i] = result
        return results
    for group in plan_groups(members, tokens, bank.cfg.prompt_len, max_devices):
        if len(group) < MIN_PASS_DEVICES:
            for i in group:
                results[i] = train_device(fabric, bank, jobs[i], cfg)
            continue
        for i, result in zip(group, _train_group(fabric, bank, [jobs[i] for i in group], cfg)):
            results[i] = result
    return results


def _waves(jobs: int, max_devices: int, workers: int) -> list[list[int]]:
    """Consecutive jobs of at most ``max_devices`` a wave. With several workers (`hffm.engine.workers`), at least
    one wave a worker and waves of equal size, so the workers finish together."""
    if workers <= 1:
        return [list(range(i, min(i + max_devices, jobs))) for i in range(0, jobs, max_devices)]
    count = -(-jobs // max_devices)
    count = min(jobs, -(-count // workers) * workers)  # a multiple of the workers (while devices last)
    return [part.tolist() for part in np.array_split(np.arange(jobs), count) if len(part)]


class StackedGroup:
    """What the devices of one pass share: the union model, and what each device holds and trains."""

    def __init__(self, bank: ModuleBank, signatures: Sequence[tuple[Sequence[str], Sequence[str]]],
                 trainable: Sequence[Sequence[str]]) -> None:
        """signatures: each device's (modalities, tasks); trainable: the modules each device may train."""
        mods = [m for m in bank.modalities if any(m in s[0] for s in signatures)]
        tasks = [t for t in bank.tasks if any(t in s[1] for s in signatures)]
        self.model = bank.submodel(mods, tasks, trainable=[], train_trunk=False)
        self.modalities = [bank.modalities[m] for m in mods]
        self.tasks = [bank.tasks[t] for t in tasks]
        required = [bank.required_modules(*s) for s in signatures]
        self.required = [set(r) for r in required]
        self.trained = [[m for m in r if m in set(t)] for r, t in zip(required, trainable)]


def _group_of(bank: ModuleBank, jobs: Sequence[DeviceJob]) -> StackedGroup:
    return StackedGroup(bank, [(j.data.modality_names, j.data.task_names) for j in jobs], [j.trainable for j in jobs])


@dataclass
class _Stacked:
    """The group's module tensors stacked over devices, keyed by their name in `_DeviceLoss`."""

    params: dict[str, Tensor]
    """Parameters (the optimizer copies those some device trains into its flat buffer)."""
    buffers: dict[str, Tensor]
    trains: dict[str, np.ndarray]
    """Per trained parameter: bool [D], the devices that train its module."""
    expert: dict[str, int]
    """Per trained parameter that only routed tokens reach: its expert's index."""


def stack_states(bank: ModuleBank, group: StackedGroup, states: Sequence[Mapping[str, Mapping[str, Tensor]]],
                 device: torch.device) -> _Stacked:
    """Each module tensor of the group stacked over its devices (a device lacking the module: the bank's)."""
    out = _Stacked({}, {}, {}, {})
    for name in group.model.module_names:
        module = bank.module(name)
        trains = np.array([name in trained for trained in group.trained])
        is_param = dict(module.named_parameters())
        routed = getattr(module, "routed_prefixes", ())
        for key, default in module.state_dict().items():
            slices = [own[name][key] if name in required else default
                      for own, required in zip(states, group.required)]
            stacked = torch.stack([s.detach().to(device=device, dtype=default.dtype) for s in slices])
            full = stacked_key(name) + key
            if key not in is_param:
                out.buffers[full] = stacked
                continue
            out.params[full] = stacked
            if trains.any():
                out.trains[full] = trains
                if key.startswith(routed):
                    out.expert[full] = int(name.split("/", 1)[1])
    return out


class _DeviceLoss(nn.Module):
    """One device's loss on its (padded) batch: its task losses + the weighted MoE balance loss."""

    def __init__(self, model: M3TModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: dict[str, Tensor], present: dict[str, Tensor], targets: dict[str, Tensor],
                held: dict[str, Tensor], rows: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        outputs, aux, routed = self.model.forward_masked(inputs, present, held, rows, mapped=True)
        losses = task_losses(self.model, outputs, targets, rows)  # the unbatched order: tasks in bank order
        return total_loss(self.model, losses, aux, held), losses, routed


def stacked_batch(group: StackedGroup, batches: Sequence[dict], device: torch.device) -> dict[str, Any]:
    """One step's batches of every device, padded to the longest and stacked: [D, B, ...].

    Built where the batches are (the host), then moved in one copy a tensor: on an accelerator, per-device
    slices copied one by one would each be a transfer.
    """
    n = len(batches)
    sizes = [next(iter(b["targets"].values())).shape[0] for b in batches]
    width = max(sizes)
    rows = torch.arange(width)[None, :] < torch.tensor(sizes)[:, None]
    inputs, present, targets, held = {}, {}, {}, {}
    for spec in group.modalities:
        sample = next(b["inputs"][spec.name] for b in batches if spec.name in b["inputs"])
        x = sample.new_zeros((n, width, *sample.shape[1:]))
        p = torch.zeros(n, width, dtype=torch.bool)
        on = torch.zeros(n, dtype=torch.bool)
        for d, (b, size) in enumerate(zip(batches, sizes)):
            if spec.name in b["inputs"]:
                x[d, :size] = b["inputs"][spec.name]
                p[d, :size] = b["present"][spec.name]
                on[d] = True
        inputs[spec.name], present[spec.name], held[spec.name] = x, p, on
    for task in group.tasks:
        sample = next(b["targets"][task.name] for b in batches if task.name in b["targets"])
        y = sample.new_zeros((n, width))
        on = torch.zeros(n, dtype=torch.bool)
        for d, (b, size) in enumerate(zip(batches, sizes)):
            if task.name in b["targets"]:
                y[d, :size] = b["targets"][task.name]
                on[d] = True
        targets[task.name], held[task.name] = y, on
    batch = {"inputs": inputs, "present": present, "targets": targets, "held": held, "rows": rows}
    return _moved(batch, device)


def _moved(tree: Any, device: torch.device) -> Any:
    """A nest of dicts of tensors on ``device`` (no copy where they are already)."""
    if isinstance(tree, dict):
        return {k: _moved(v, device) for k, v in tree.items()}
    return tree.to(device, non_blocking=True)


def _train_group(fabric: Fabric, bank: ModuleBank, jobs: list[DeviceJob], cfg: LocalConfig,
                 packed: bool = False) -> list[TrainResult]:
    """One pass a step for ``jobs``: vmapped over a padded union layout, or ``packed`` (`hffm.engine.packed`)."""
    results = [TrainResult(j.device, {}, {}) for j in jobs]
    group = _group_of(bank, jobs)
    active = [i for i, trained in enumerate(group.trained) if trained]  # train_device skips the others too
    if not active:
        return results
    if len(active) < len(jobs):
        jobs = [jobs[i] for i in active]
        group = _group_of(bank, jobs)
    device = fabric.device
    stacked = stack_states(bank, group, [j.states for j in jobs], device)
    keys = list(stacked.trains)
    optimizer = StackedOptimizer([stacked.params[k] for k in keys], cfg.optimizer, cfg.lr, cfg.weight_decay)
    trains = torch.as_tensor(np.stack([stacked.trains[k] for k in keys], 1), device=device)  # [D, tensors]
    # which routing column gates each tensor's step: 0 (always on), or 1 + its expert's index
    column = torch.tensor([stacked.expert[k] + 1 if k in stacked.expert else 0 for k in keys], device=device)
    step_loss = _packed_step(bank, group, jobs, stacked, device) if packed else _mapped_step(group, stacked, device)
    streams: list[Iterator[dict]] = [
        _batches(j.data, cfg.batch_size, torch.Generator().manual_seed(j.seed)) for j in jobs
    ]
    total: Tensor | None = None
    per_task_loss: dict[str, Tensor] = {}
    rows = [0] * len(jobs)
    for _ in range(cfg.steps):
        drawn = [next(s) for s in streams]
        rows = [r + _rows(b) for r, b in zip(rows, drawn)]
        params = stacked.params | dict(zip(keys, optimizer.tensors))
        total, per_task_loss, routed = step_loss(params, drawn)
        optimizer.zero_grad()
        fabric.backward(total.sum())  # a sum of per-device losses: each device's slice gets its own gradient
        reached = torch.cat([torch.ones_like(routed[:, :1]), routed], 1)  # [D, 1 + experts], on the device
        optimizer.step(trains & reached[:, column])
    assert total is not None
    totals = total.detach().tolist()
    per_task = {t: v.detach().tolist() for t, v in per_task_loss.items()}
    tensors = stacked.params | dict(zip(keys, optimizer.tensors)) | stacked.buffers
    # each module's keys once (a module's state_dict() walks its tensors: once a device and module cost more than
    # the clones)
    module_keys = {name: [(key, stacked_key(name) + key) for key in bank.module(name).state_dict()]
                   for name in {m for trained in group.trained for m in trained}}
    for d, i in enumerate(active):
        states = {name: {key: tensors[full][d].detach().clone() for key, full in module_keys[name]}
                  for name in group.trained[d]}
        losses = {f"{t}/loss": per_task[t][d] for t in jobs[d].data.task_names}
        losses["loss"] = totals[d]
        results[i] = TrainResult(jobs[d].device, states, losses, float(rows[d]))
    return results


StepLoss = Callable[[dict[str, Tensor], list[dict]], tuple[Tensor, dict[str, Tensor], Tensor]]
"""(parameters, one batch per device) -> (total loss [D], task losses {task: [D]}, experts reached [D, n])."""


def _mapped_step(group: StackedGroup, stacked: _Stacked, device: torch.device) -> StepLoss:
    loss_fn = _DeviceLoss(group.model).eval()  # dropout is 0 (batched_unsupported): eval changes nothing else

    def device_loss(params: dict, buffers: dict, batch: dict) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        return functional_call(loss_fn, (params, buffers), args=(), kwargs=batch, strict=False)

    mapped = vmap(device_loss)
    return lambda params, drawn: mapped(params, stacked.buffers, stacked_batch(group, drawn, device))


def _packed_step(bank: ModuleBank, group: StackedGroup, jobs: Sequence[DeviceJob], stacked: _Stacked,
                 device: torch.device) -> StepLoss:
    tokens = {m.name: cast(int, bank.module(f"encoder/{m.name}").num_tokens) for m in group.modalities}
    layout = WaveLayout.of(group.modalities, group.tasks, tokens, bank.cfg.prompt_len,
                           [(j.data.modality_names, j.data.task_names) for j in jobs])
    loss = PackedLoss(bank, layout)
    cache: dict = {}  # the indices of each batch-size pattern, built once over the wave's steps
    return lambda params, drawn: loss(params | stacked.buffers, pack(layout, drawn, device, compact=True, cache=cache))
