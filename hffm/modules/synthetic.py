"""Tiny random batches and datasets in the benchmark's batch format, for tests and smoke runs.

They let the model be exercised without the benchmark package; targets are random, so they are
only good for checking shapes, gradients and that a fixed batch can be fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from hffm.spec import ModalitySpec, TaskSpec


def tiny_specs() -> tuple[list[ModalitySpec], list[TaskSpec]]:
    """Three modalities (image [1,16,16], text vocab 64 length 12, I/Q signal [2,128]) and four tasks."""
    modalities = [ModalitySpec("image", "image", (1, 16, 16)),
                  ModalitySpec("text", "text", (12,), vocab_size=64),
                  ModalitySpec("iq", "signal", (2, 128))]
    tasks = [TaskSpec("object", "classification", 10), TaskSpec("sentiment", "classification", 3),
             TaskSpec("modulation", "classification", 4), TaskSpec("snr", "regression")]
    return modalities, tasks


def random_input(spec: ModalitySpec, batch: int, gen: torch.Generator) -> Tensor:
    """Random input of one modality with a leading batch dimension."""
    if spec.kind == "text":
        ids = torch.randint(1, int(spec.vocab_size or 2), (batch, *spec.shape), generator=gen)
        lengths = torch.randint(1, spec.shape[0] + 1, (batch, 1), generator=gen)
        return ids * (torch.arange(spec.shape[0])[None] < lengths)  # trailing padding (id 0)
    return torch.randn((batch, *spec.shape), generator=gen)


def random_target(spec: TaskSpec, batch: int, gen: torch.Generator) -> Tensor:
    """Random classification ids (long) or regression values (float, mean 5, std 3)."""
    if spec.kind == "classification":
        return torch.randint(0, int(spec.num_classes or 2), (batch,), generator=gen)
    return 5.0 + 3.0 * torch.randn(batch, generator=gen)


def synthetic_batch(modalities: Sequence[ModalitySpec], tasks: Sequence[TaskSpec], batch: int, seed: int = 0,
                    missing: float = 0.0) -> dict[str, Any]:
    """A batch dict; each sample misses each modality with probability `missing` (never all of them)."""
    gen = torch.Generator().manual_seed(seed)
    inputs = {m.name: random_input(m, batch, gen) for m in modalities}
    present = {m.name: torch.rand(batch, generator=gen) >= missing for m in modalities}
    none = ~torch.stack(list(present.values())).any(0)
    present[modalities[0].name] |= none
    for m in modalities:
        inputs[m.name][~present[m.name]] = 0
    targets = {t.name: random_target(t, batch, gen) for t in tasks}
    return {"inputs": inputs, "present": present, "targets": targets}


class SyntheticDataset(Dataset):
    """n single samples (no batch dimension) that default_collate stacks into the batch format.

    Targets depend on the inputs (class = bucket of a fixed random projection; regression = a
    scaled projection), so a model can learn them.
    """

    def __init__(self, modalities: Sequence[ModalitySpec], tasks: Sequence[TaskSpec], n: int,
                 seed: int = 0) -> None:
        batch = synthetic_batch(modalities, tasks, n, seed)
        gen = torch.Generator().manual_seed(seed + 1)
        feats = torch.cat([batch["inputs"][m.name].float().reshape(n, -1) for m in modalities], 1)
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
        score = feats @ torch.randn(feats.shape[1], generator=gen) / feats.shape[1] ** 0.5
        for t in tasks:
            if t.kind == "classification":
                edges = torch.quantile(score, torch.linspace(0, 1, int(t.num_classes or 2) + 1)[1:-1])
                batch["targets"][t.name] = torch.bucketize(score, edges)
            else:
                batch["targets"][t.name] = 5.0 + 3.0 * score
        self.batch = batch
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {key: {k: v[i] for k, v in part.items()} for key, part in self.batch.items()}
