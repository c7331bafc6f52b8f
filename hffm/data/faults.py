"""Data faults of devices' training data, as FedMultimodal simulates them, on any dataset.

- missing modality: each training sample misses each of its device's modalities with probability
  ``missing_modality`` (its input zeroed, ``present`` False), never all of them;
- missing labels: each classification label is dropped (``MISSING_LABEL``) with probability
  ``missing_labels``; losses skip it;
- label noise: each remaining classification label is replaced, with probability ``label_noise``, by
  a different class drawn uniformly.

Test data (each device's and the global one) stays clean. A seed and the device index fix every draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hffm.lazy import LazyModule
from hffm.spec import MISSING_LABEL

if TYPE_CHECKING:
    import torch

    from hffm.data.dataset import M3TDataset
else:
    torch = LazyModule("torch")


@dataclass(frozen=True)
class DataFaults:
    missing_modality: float = 0.0
    missing_labels: float = 0.0
    label_noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("missing_modality", "missing_labels", "label_noise"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"data.{name} must lie in [0, 1), got {value}")

    @property
    def any(self) -> bool:
        return bool(self.missing_modality or self.missing_labels or self.label_noise)


def _faulty(data: M3TDataset, faults: DataFaults, rng: np.random.Generator) -> M3TDataset:
    from hffm.data.dataset import M3TDataset  # torch's Dataset: only when one is made
    n = len(data)
    inputs, present, targets = dict(data.inputs), dict(data.present), dict(data.targets)
    if faults.missing_modality and data.modality_names:
        names = data.modality_names
        had = np.stack([present[m].numpy() for m in names], 1)
        keep = had & (rng.random((n, len(names))) >= faults.missing_modality)
        lost = had.any(1) & ~keep.any(1)  # a sample keeps at least one modality it had
        for row in np.flatnonzero(lost):
            options = np.flatnonzero(had[row])
            keep[row, options[rng.integers(len(options))]] = True
        for j, m in enumerate(names):
            p = torch.from_numpy(keep[:, j].copy())
            present[m] = p
            inputs[m] = inputs[m].masked_fill((~p).view(-1, *([1] * (inputs[m].dim() - 1))), 0)
    for spec in data.tasks:
        if spec.kind != "classification":
            continue
        y = targets[spec.name].clone()
        labelled = y != MISSING_LABEL
        if faults.missing_labels:
            y[labelled & torch.from_numpy(rng.random(n) < faults.missing_labels)] = MISSING_LABEL
            labelled = y != MISSING_LABEL
        if faults.label_noise:
            flip = labelled & torch.from_numpy(rng.random(n) < faults.label_noise)
            shift = torch.from_numpy(rng.integers(1, int(spec.num_classes or 2), n))
            y[flip] = (y[flip] + shift[flip]) % int(spec.num_classes or 2)
        targets[spec.name] = y
    return M3TDataset(inputs, present, targets, data.modalities, data.tasks, data.task_modalities, data.vocab,
                      data.extras)


def apply_data_faults(train: Sequence[M3TDataset], faults: DataFaults, seed: int) -> list[M3TDataset]:
    """Each device's training data with the faults drawn (the same list when there are none)."""
    if not faults.any:
        return list(train)
    return [_faulty(d, faults, np.random.default_rng(np.random.SeedSequence([int(seed), 21, i])))
            for i, d in enumerate(train)]
