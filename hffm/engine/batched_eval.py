"""Batched evaluation: many models (devices' or edges') on their data, in packed passes (`packed_eval`, the
default) or in one vmapped pass per batch (below, ``packed=False``).

The counterpart of `local.evaluate` for a list of jobs: each job is one model (its module states)
restricted to some modalities and tasks, on a dataset. Module states are stacked as in batched
training (`hffm.engine.batched`); a job's missing modalities and tasks are masked, and with
``restrict`` only the samples having one of its modalities count (as `World.global_test_view` keeps).
Metrics are `hffm.modules.objective.task_metrics` (accuracy, macro F1, MAE), per job, as for one model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from lightning.fabric import Fabric
from torch import Tensor, nn
from torch.func import functional_call, vmap

from hffm.data.dataset import M3TDataset
from hffm.engine.batch_groups import MIN_PASS_DEVICES, Member, plan_groups
from hffm.engine.batched import StackedGroup, batched_unsupported, stack_states, stacked_batch
from hffm.engine.local import evaluate
from hffm.engine.packed_eval import evaluate_packed
from hffm.modules.bank import ModuleBank
from hffm.modules.model import M3TModel
from hffm.modules.objective import task_metrics
from hffm.spec import MISSING_LABEL


@dataclass(frozen=True)
class EvalJob:
    """One model to evaluate: its module states, the modalities and tasks it uses, the data."""

    states: Mapping[str, Mapping[str, Tensor]]
    modalities: tuple[str, ...]
    tasks: tuple[str, ...]
    data: M3TDataset
    restrict: bool = False
    """Count only samples with at least one of ``modalities`` present (a device's view of shared data)."""


def evaluate_jobs(fabric: Fabric, bank: ModuleBank, jobs: Sequence[EvalJob], batched: bool = True,
                  max_devices: int = 64, batch_size: int = 256, packed: bool = True) -> list[dict[str, float]]:
    """Per-task metrics of each job's model, in job order.

    Batched, the jobs run ``packed`` (`hffm.engine.packed_eval`: slices of every job in one pass, no padding,
    at most ``max_devices`` jobs stacked at a time) or as vmapped passes over padded groups (below).

    Jobs that would compute the same thing (the same module tensors, by identity, through the same
    modalities and tasks on the same data) run once: in star mode every device holds the cloud's modules,
    and the evaluated devices of one modality and task set are one model on the global sample.
    """
    first: dict[tuple, int] = {}
    index = [first.setdefault(_identity(job), i) for i, job in enumerate(jobs)]
    unique = sorted(set(index))
    if len(unique) < len(jobs):
        done = dict(zip(unique, _evaluate_unique(fabric, bank, [jobs[i] for i in unique], batched, max_devices,
                                                 batch_size, packed)))
        return [dict(done[i]) for i in index]
    return _evaluate_unique(fabric, bank, jobs, batched, max_devices, batch_size, packed)


def _identity(job: EvalJob) -> tuple:
    """What a job's result depends on: its modules' tensors (their objects), modalities, tasks, data, restrict."""
    tensors = tuple((name, key, id(t)) for name in sorted(job.states) for key, t in sorted(job.states[name].items()))
    return tensors, job.modalities, job.tasks, id(job.data), job.restrict


def _evaluate_unique(fabric: Fabric, bank: ModuleBank, jobs: Sequence[EvalJob], batched: bool, max_devices: int,
                     batch_size: int, packed: bool) -> list[dict[str, float]]:
    if not batched or batched_unsupported(bank) is not None:
        return [_one(fabric, bank, job, batch_size) for job in jobs]
    if packed:
        return evaluate_packed(fabric, bank, jobs, max_devices)
    if len(jobs) < MIN_PASS_DEVICES:
        return [_one(fabric, bank, job, batch_size) for job in jobs]
    # Passes as batched training groups devices: one modality set to a pass unless merging saves more
    # than the masked tokens it adds (a text-only job in an image pass pays for the image's tokens).
    members = [Member(frozenset(j.modalities), frozenset(j.tasks), min(batch_size, len(j.data))) for j in jobs]
    tokens = {m: cast(int, bank.module(f"encoder/{m}").num_tokens) for m in bank.modalities}
    out: list[dict[str, float]] = [{} for _ in jobs]
    for group in plan_groups(members, tokens, bank.cfg.prompt_len, max_devices):
        if len(group) < MIN_PASS_DEVICES:
            results = [_one(fabric, bank, jobs[i], batch_size) for i in group]
        else:
            results = _evaluate_group(fabric, bank, [jobs[i] for i in group], batch_size)
        for i, metrics in zip(group, results, strict=True):
            out[i] = metrics
    return out


def _one(fabric: Fabric, bank: ModuleBank, job: EvalJob, batch_size: int) -> dict[str, float]:
    data = job.data
    if job.restrict:
        keep = torch.zeros(len(data), dtype=torch.bool)
        for m in job.modalities:
            keep |= data.present[m].bool()
        if not keep.any():
            return {}
        data = data.subset(torch.nonzero(keep).flatten().numpy(), modalities=job.modalities, tasks=job.tasks)
    elif (data.modality_names, data.task_names) != (list(job.modalities), list(job.tasks)):
        data = data.subset(range(len(data)), modalities=job.modalities, tasks=job.tasks)
    return evaluate(fabric, bank, data, job.states, batch_size)


class _Outputs(nn.Module):
    def __init__(self, model: M3TModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: dict, present: dict, targets: dict, held: dict, rows: Tensor) -> dict[str, Tensor]:
        return self.model.forward_masked(inputs, present, held, rows, mapped=True)[0]


def _view(batch: dict, job: EvalJob) -> dict:
    """A batch of the job's data with only the job's modalities and tasks."""
    return {"inputs": {m: batch["inputs"][m] for m in job.modalities},
            "present": {m: batch["present"][m] for m in job.modalities},
            "targets": {t: batch["targets"][t] for t in job.tasks}}


PASS_SAMPLES = 1024
"""Most samples in one vmapped pass, all jobs together: a pass's activations (attention maps above all)
grow with jobs x batch. At 100 devices (192 jobs, tiny model) 1,024 took as long as 4,096 with a peak
about 500 MB lower; 64 jobs x 256 samples took about 1.5 GB (experiments/results/scale_bench/large)."""


@torch.no_grad()
def _evaluate_group(fabric: Fabric, bank: ModuleBank, jobs: list[EvalJob], batch_size: int) -> list[dict[str, float]]:
    device = fabric.device
    batch_size = max(1, min(batch_size, PASS_SAMPLES // len(jobs)))
    group = StackedGroup(bank, [(j.modalities, j.tasks) for j in jobs], [() for _ in jobs])
    stacked = stack_states(bank, group, [j.states for j in jobs], device)
    run = _Outputs(group.model).eval()
    mapped = vmap(lambda p, b, batch: functional_call(run, (p, b), args=(), kwargs=batch, strict=False))
    collected: list[dict[str, list[tuple[Tensor, Tensor]]]] = [{t: [] for t in j.tasks} for j in jobs]
    streams = [j.data.batches(batch_size, shuffle=False) for j in jobs]
    while True:
        batches = [next(s, None) for s in streams]
        if all(b is None for b in batches):
            break
        live = [i for i, b in enumerate(batches) if b is not None]
        views = [_view(b, jobs[i]) for i, b in enumerate(batches) if b is not None]
        batch = stacked_batch(group, views, device)
        index = torch.as_tensor(live, device=device)
        outputs = mapped({k: v.index_select(0, index) for k, v in stacked.params.items()},
                         {k: v.index_select(0, index) for k, v in stacked.buffers.items()}, batch)
        for row, i in enumerate(live):
            counted = batch["rows"][row]
            if jobs[i].restrict:
                counted = counted & torch.stack([batch["present"][m][row] for m in jobs[i].modalities]).any(0)
            for t in jobs[i].tasks:
                target = batch["targets"][t][row]
                keep = counted & (target != MISSING_LABEL) if bank.tasks[t].kind == "classification" else counted
                collected[i][t].append((outputs[t][row][keep], target[keep]))
    return [_metrics(bank, pairs) for pairs in collected]


def _metrics(bank: ModuleBank, pairs: dict[str, list[tuple[Tensor, Tensor]]]) -> dict[str, float]:
    """`M3TLightningModule.compute_metrics` of one job from its outputs and targets."""
    out: dict[str, float] = {}
    for task, chunks in pairs.items():
        scores = task_metrics(bank.tasks[task], torch.cat([p for p, _ in chunks]), torch.cat([y for _, y in chunks]))
        out |= {f"{task}/{key}": value for key, value in scores.items()}
    return dict(sorted(out.items()))
