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
    """None where every key may be attended (a compact batch's buckets: its samples' kept tokens only), else bool
    [samples, 1, 1, length]: True where the key may be attended (not text padding, not an absent modality's)."""


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
    """Long [bucket positions]: cat(buckets' flattened indices)."""
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
    compact: bool = False
    """The token array holds the counted tokens only: text padding and absent modalities' tokens, keys that every
    query masks and whose own outputs no loss reads, are left out of every operation: a sample's attention runs over
    its kept tokens alone (the buckets group samples by their number of kept tokens, no mask; a key every query
    masks changes no output). Every token counts then."""


@dataclass
class _Skeleton:
    """What a packed step's indices are before the batch's own values (padding, absent modalities) are known: they
    depend on the batch sizes only, which the steps of a wave repeat (every device draws min(batch size, its
    samples)), so `pack` builds them once per batch sizes."""

    samples: dict[str, Segments]
    source: np.ndarray
    prompt_rows: np.ndarray
    indices: list[np.ndarray]
    """Per sequence length: [samples, length] token indices."""
    placed: np.ndarray
    sample_start: np.ndarray
    """Long [samples]: each sample's first token (sample by sample, device by device)."""
    sample_length: np.ndarray
    """Long [samples]: each sample's sequence length."""
    heads: dict[str, Tensor]
    task_samples: dict[str, Segments]
    prompts: Segments
    full: tuple[Segments, list[Tensor], Tensor, Tensor] | None = None
    """(tokens, buckets' indices, bucket rows, restore) of a batch that keeps every token, once built."""


def _skeleton(layout: WaveLayout, rows: np.ndarray, device: torch.device) -> _Skeleton:
    n_dev = len(rows)
    plen = layout.prompt_len
    length = layout.lengths
    n_tasks = layout.holds_task.sum(1)
    token_start = np.concatenate([[0], np.cumsum(rows * length)[:-1]])
    prompt_start = np.concatenate([[0], np.cumsum(rows * n_tasks * plen)[:-1]])
    samples: dict[str, Segments] = {}
    base = len(layout.tasks) * n_dev * plen  # the encoders' tokens follow the prompt rows
    modality_base, modality_start = {}, {}
    for j, spec in enumerate(layout.modalities):
        counts = np.where(layout.holds_modality[:, j], rows, 0)
        samples[spec.name] = Segments(counts, device)
        modality_base[spec.name], modality_start[spec.name] = base, np.concatenate([[0], np.cumsum(counts)[:-1]])
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
    sample_start = np.concatenate([token_start[d] + np.arange(rows[d]) * length[d] for d in range(n_dev)])
    sample_length = np.repeat(length, rows)
    indices = [sample_start[sample_length == s][:, None] + np.arange(s)[None, :] for s in np.unique(sample_length)]

    heads, task_samples = {}, {}
    for k, task in enumerate(layout.tasks):
        held = layout.holds_task[:, k]
        position = np.cumsum(layout.holds_task, 1)[:, k] - 1  # the task's place among the device's prompts
        first = [prompt_start[d] + np.arange(rows[d]) * n_tasks[d] * plen + position[d] * plen
                 for d in range(n_dev) if held[d]]
        heads[task.name] = torch.as_tensor(np.concatenate(first)[:, None] + np.arange(plen)[None, :], device=device)
        task_samples[task.name] = Segments(np.where(held, rows, 0), device)
    return _Skeleton(samples, np.concatenate(source_parts), np.concatenate(prompt_parts), indices,
                     np.concatenate([index.reshape(-1) for index in indices]), sample_start, sample_length, heads,
                     task_samples,
                     Segments(rows * n_tasks * plen, device))


def pack(layout: WaveLayout, batches: Sequence[Mapping[str, Mapping[str, Tensor]]],
         device: torch.device, compact: bool = False, cache: dict | None = None) -> PackedBatch:
    """The packed step of one batch per device (`M3TDataset.batches` dicts), moved to ``device``.

    ``compact``: the flat token array holds only the counted tokens (`PackedBatch.compact`). ``cache``: a dict
    kept over one layout's steps, where the indices that depend on the batch sizes only are kept."""
    n_dev = len(batches)
    rows = np.array([int(next(iter(b["targets"].values())).shape[0]) for b in batches], dtype=np.int64)
    cache = {} if cache is None else cache
    key = rows.tobytes()
    if key not in cache:
        cache[key] = _skeleton(layout, rows, device)
    sk: _Skeleton = cache[key]

    inputs: dict[str, Tensor] = {}
    pads: list[Tensor] = [torch.zeros(len(layout.tasks) * n_dev * layout.prompt_len, dtype=torch.bool)]
    for j, spec in enumerate(layout.modalities):
        held = layout.holds_modality[:, j]
        x = torch.cat([b["inputs"][spec.name] for b, h in zip(batches, held) if h])
        present = torch.cat([b["present"][spec.name] for b, h in zip(batches, held) if h]).bool()
        pad = ~present[:, None].expand(-1, layout.tokens[spec.name])
        if spec.kind == "text":
            pad = pad | (x.long() == 0)
        inputs[spec.name] = x
        pads.append(pad.reshape(-1))
    counted = ~torch.cat(pads).numpy()[sk.source]
    if compact:  # drop the tokens no query reads (masked keys) and no loss counts: renumber the kept ones
        new_id = np.cumsum(counted) - 1
        length = layout.lengths
        token_counts = np.bincount(np.repeat(np.arange(n_dev), rows * length)[counted], minlength=n_dev)
        # a sample's kept tokens are consecutive in the compact array: bucket the samples by their count
        before = np.concatenate([[0], np.cumsum(counted)])
        first = before[sk.sample_start]
        kept = before[sk.sample_start + sk.sample_length] - first
        index_arrays = [first[kept == s][:, None] + np.arange(s)[None, :] for s in np.unique(kept)]
        placed = np.concatenate([index.reshape(-1) for index in index_arrays])  # every kept token once
        restore = np.empty_like(placed)
        restore[placed] = np.arange(len(placed))
        indices = [torch.as_tensor(index, device=device) for index in index_arrays]
        attends: list[np.ndarray | None] = [None] * len(indices)
        tokens = Segments(token_counts, device)
        source, prompt_rows, counted = sk.source[counted], new_id[sk.prompt_rows], counted[counted]
        bucket_rows, restore_t = torch.as_tensor(placed, device=device), torch.as_tensor(restore, device=device)
        prompt_rows_t = torch.as_tensor(prompt_rows, device=device)
    else:
        attends = [counted[index] for index in sk.indices]
        if sk.full is None:
            sk.full = (Segments(rows * layout.lengths, device),
                       [torch.as_tensor(index, device=device) for index in sk.indices],
                       torch.as_tensor(sk.placed, device=device),
                       torch.as_tensor(np.argsort(sk.placed, kind="stable"), device=device))
        tokens, indices, bucket_rows, restore_t = sk.full
        source, prompt_rows_t = sk.source, torch.as_tensor(sk.prompt_rows, device=device)
    buckets = [Bucket(index, None if attend is None or attend.all()
                      else torch.as_tensor(attend[:, None, None, :], device=device))
               for index, attend in zip(indices, attends)]  # None: no key to mask, the kernel without a mask
    targets = {task.name: torch.cat([b["targets"][task.name] for b, h in zip(batches, layout.holds_task[:, k]) if h])
               .to(device) for k, task in enumerate(layout.tasks)}
    return PackedBatch(
        inputs={k: v.to(device) for k, v in inputs.items()}, samples=sk.samples,
        source=torch.as_tensor(source, device=device), counted=torch.as_tensor(counted, device=device),
        tokens=tokens, buckets=buckets, compact=compact, bucket_rows=bucket_rows, restore=restore_t,
        prompt_rows=prompt_rows_t, prompts=sk.prompts, heads=sk.heads, targets=targets,
        task_samples=sk.task_samples, rows=rows)
