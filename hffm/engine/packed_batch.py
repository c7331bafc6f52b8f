"""One local step's batches of a whole wave of devices, packed: no padding rows, no masked modality tokens.

Each device's samples keep their own sequence (its task prompts in bank order, then its modalities' tokens
in bank order, as the device's own model lays them out); the sequences of all devices' samples lie one
after another in a flat token array. This module computes, on the host, every index the packed forward
(`hffm.engine.packed`) needs to read that array: where each token comes from (a prompt or an encoder's
output), which tokens attend to which (sequences of one length share one attention call), where the heads
read, and the per-device `Segments` of every row space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hffm.engine.segments import Segments
from hffm.spec import ModalitySpec, TaskSpec


@dataclass(frozen=True)
class WaveLayout:
    """What stays fixed over a wave's steps: the union's modalities and tasks, and who holds which."""

    modalities: list[ModalitySpec]
    tasks: list[TaskSpec]
    tokens: dict[str, int]
    """Tokens each modality's encoder emits per sample."""
    prompt_len: int
    holds_modality: np.ndarray
    """Bool [D, modalities]."""
    holds_task: np.ndarray
    """Bool [D, tasks]."""

    @classmethod
    def of(cls, modalities: Sequence[ModalitySpec], tasks: Sequence[TaskSpec], tokens: Mapping[str, int],
           prompt_len: int, signatures: Sequence[tuple[Sequence[str], Sequence[str]]]) -> WaveLayout:
        """signatures: each device's (modalities, tasks)."""
        hm = np.array([[m.name in s[0] for m in modalities] for s in signatures], dtype=bool)
        ht = np.array([[t.name in s[1] for t in tasks] for s in signatures], dtype=bool)
        return cls(list(modalities), list(tasks), {m.name: int(tokens[m.name]) for m in modalities}, prompt_len,
                   hm, ht)

    @property
    def lengths(self) -> np.ndarray:
        """Long [D]: each device's sequence length."""
        per_modality = np.array([self.tokens[m.name] for m in self.modalities], dtype=np.int64)
        return self.prompt_len * self.holds_task.sum(1) + self.holds_modality.astype(np.int64) @ per_modality


@dataclass
class Bucket:
    """Samples whose sequences have one length: one attention call."""

    index: Tensor
    """Long [samples, length]: each position's token."""
    attend: Tensor | None
    """None where every key may be attended, else bool [samples, 1, 1, length]: True where the key may be
    attended (not text padding, not an absent modality's)."""


@dataclass
class PackedBatch:
    """Indices and data of one packed step (see the module docstring); D devices, in the wave's order."""

    inputs: dict[str, Tensor]
    """Per modality: the samples of the devices holding it, device by device."""
    samples: dict[str, Segments]
    """Per modality: its samples by device."""
    source: Tensor
    """Long [tokens]: each token's row in cat(prompt rows [tasks * D * prompt_len], each encoder's flat tokens)."""
    counted: Tensor
    """Bool [tokens]: the token counts for the balance loss (not padding, not an absent modality's)."""
    tokens: Segments
    buckets: list[Bucket]
    bucket_rows: Tensor
    """Long [tokens]: cat(buckets' flattened indices)."""
    restore: Tensor
    """Long [tokens]: the rows of cat(buckets' flattened outputs) in token order."""
    prompt_rows: Tensor
    """Long [prompt tokens]: the tokens the experts and heads read (every sample's prompts)."""
    prompts: Segments
    heads: dict[str, Tensor]
    """Per task: Long [samples, prompt_len], rows of the prompt tokens a sample's head pools."""
    targets: dict[str, Tensor]
    task_samples: dict[str, Segments]
    rows: np.ndarray
    """Long [D]: each device's batch size."""


def pack(layout: WaveLayout, batches: Sequence[Mapping[str, Mapping[str, Tensor]]],
         device: torch.device) -> PackedBatch:
    """The packed step of one batch per device (`M3TDataset.batches` dicts), moved to ``device``."""
    n_dev = len(batches)
    rows = np.array([int(next(iter(b["targets"].values())).shape[0]) for b in batches], dtype=np.int64)
    plen = layout.prompt_len
    length = layout.lengths
    n_tasks = layout.holds_task.sum(1)
    token_start = np.concatenate([[0], np.cumsum(rows * length)[:-1]])
    prompt_start = np.concatenate([[0], np.cumsum(rows * n_tasks * plen)[:-1]])

    inputs: dict[str, Tensor] = {}
    samples: dict[str, Segments] = {}
    pads: list[Tensor] = [torch.zeros(len(layout.tasks) * n_dev * plen, dtype=torch.bool)]
    base = len(layout.tasks) * n_dev * plen  # the encoders' tokens follow the prompt rows
    modality_base, modality_start = {}, {}
    for j, spec in enumerate(layout.modalities):
        held = layout.holds_modality[:, j]
        counts = np.where(held, rows, 0)
        x = torch.cat([b["inputs"][spec.name] for b, h in zip(batches, held) if h])
        present = torch.cat([b["present"][spec.name] for b, h in zip(batches, held) if h]).bool()
        pad = ~present[:, None].expand(-1, layout.tokens[spec.name])
        if spec.kind == "text":
            pad = pad | (x.long() == 0)
        inputs[spec.name] = x
        samples[spec.name] = Segments(counts, device)
        modality_base[spec.name], modality_start[spec.name] = base, np.concatenate([[0], np.cumsum(counts)[:-1]])
        pads.append(pad.reshape(-1))
        base += int(counts.sum()) * layout.tokens[spec.name]

    source_parts, prompt_parts = [], []
    for d in range(n_dev):
        b = int(rows[d])
        cols = [np.broadcast_to((k * n_dev + d) * plen + np.arange(plen), (b, plen))
                for k in np.flatnonzero(layout.holds_task[d])]
        for held_modality in np.flatnonzero(layout.holds_modality[d]):
            spec = layout.modalities[held_modality]
            per_sample = layout.tokens[spec.name]
            first = modality_base[spec.name] + (modality_start[spec.name][d] + np.arange(b)) * per_sample
            cols.append(first[:, None] + np.arange(per_sample)[None, :])
        source_parts.append(np.concatenate(cols, 1).reshape(-1))
        starts = token_start[d] + np.arange(b) * length[d]
        prompt_parts.append((starts[:, None] + np.arange(n_tasks[d] * plen)[None, :]).reshape(-1))
    source = np.concatenate(source_parts)
    counted = ~torch.cat(pads)[torch.as_tensor(source)]

    buckets, placed = [], []
    sample_start = np.concatenate([token_start[d] + np.arange(rows[d]) * length[d] for d in range(n_dev)])
    sample_length = np.repeat(length, rows)
    for s in np.unique(sample_length):
        index = sample_start[sample_length == s][:, None] + np.arange(s)[None, :]
        index_t = torch.as_tensor(index)
        attend = counted[index_t]
        if attend.all():  # no key to mask: the attention kernel without a mask
            buckets.append(Bucket(index_t.to(device), None))
        else:
            buckets.append(Bucket(index_t.to(device), attend[:, None, None, :].to(device)))
        placed.append(index.reshape(-1))

    heads, targets, task_samples = {}, {}, {}
    for k, task in enumerate(layout.tasks):
        held = layout.holds_task[:, k]
        counts = np.where(held, rows, 0)
        position = np.cumsum(layout.holds_task, 1)[:, k] - 1  # the task's place among the device's prompts
        first = [prompt_start[d] + np.arange(rows[d]) * n_tasks[d] * plen + position[d] * plen
                 for d in range(n_dev) if held[d]]
        heads[task.name] = torch.as_tensor(np.concatenate(first)[:, None] + np.arange(plen)[None, :], device=device)
        targets[task.name] = torch.cat([b["targets"][task.name] for b, h in zip(batches, held) if h]).to(device)
        task_samples[task.name] = Segments(counts, device)

    return PackedBatch(
        inputs={k: v.to(device) for k, v in inputs.items()}, samples=samples,
        source=torch.as_tensor(source, device=device), counted=counted.to(device),
        tokens=Segments(rows * length, device), buckets=buckets,
        bucket_rows=torch.as_tensor(np.concatenate(placed), device=device),
        restore=torch.as_tensor(np.argsort(np.concatenate(placed), kind="stable"), device=device),
        prompt_rows=torch.as_tensor(np.concatenate(prompt_parts), device=device),
        prompts=Segments(rows * n_tasks * plen, device), heads=heads, targets=targets, task_samples=task_samples,
        rows=rows)
