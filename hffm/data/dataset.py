"""The in-memory multi-modal multi-task dataset every part of hffm trains on.

A sample is ``{"inputs": {modality: tensor}, "present": {modality: bool}, "targets": {task: tensor}}``.
The whole dataset is held as one tensor per modality / task, so subsets, splits and mini-batches are
tensor slices: federated simulation runs many tiny local epochs and cannot afford a Python loop per
sample. A user's own data plugs in through :meth:`M3TDataset.from_tensors` (see docs/datasets.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from hffm.spec import MISSING_LABEL, ModalitySpec, TaskSpec

Batch = dict[str, dict[str, torch.Tensor]]


def _as_index_tensor(indices: Sequence[int] | np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)
    if idx.numel() == 0:
        raise ValueError("device has no samples: subset() got an empty list of indices")
    if int(idx.min()) < 0 or int(idx.max()) >= n:
        raise IndexError(f"subset indices must lie in [0, {n}), got min {int(idx.min())} max {int(idx.max())}")
    return idx


def _check_names(kind: str, wanted: Iterable[str] | None, known: Sequence[str]) -> list[str]:
    if wanted is None:
        return list(known)
    wanted = list(wanted)
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(f"unknown {kind}(s) {unknown}; this dataset has {list(known)}")
    return [k for k in known if k in wanted]  # keep the dataset's order, drop duplicates


class M3TDataset(Dataset):
    """Whole-dataset tensors for a set of modalities and tasks (see the module docstring).

    Attributes: ``modalities`` / ``tasks`` (specs), ``vocab`` (index 0 is ``"<pad>"``; empty when
    there is no text), ``task_modalities`` (task -> modalities that carry its information),
    ``inputs`` / ``present`` / ``targets`` (dicts of tensors with first dimension ``len(self)``),
    ``extras`` (per-sample side information such as the un-normalised SNR, kept through subsets).
    """

    def __init__(
        self,
        inputs: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor],
        modalities: Sequence[ModalitySpec],
        tasks: Sequence[TaskSpec],
        task_modalities: Mapping[str, Sequence[str]],
        vocab: Sequence[str] | None = None,
        extras: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        # Trusted constructor (used by subset / split / the generator); users go through from_tensors.
        self.modalities = list(modalities)
        self.tasks = list(tasks)
        self.inputs = dict(inputs)
        self.present = dict(present)
        self.targets = dict(targets)
        self.task_modalities = {t: tuple(ms) for t, ms in task_modalities.items()}
        self.vocab = list(vocab) if vocab is not None else []
        self.extras = dict(extras or {})
        self._n = int(next(iter(self.inputs.values())).shape[0]) if self.inputs else 0

    # ------------------------------------------------------------------ user protocol
    @classmethod
    def from_tensors(
        cls,
        inputs: Mapping[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor],
        modalities: Sequence[ModalitySpec],
        tasks: Sequence[TaskSpec],
        present: Mapping[str, torch.Tensor] | None = None,
        task_modalities: Mapping[str, Sequence[str]] | None = None,
        vocab: Sequence[str] | None = None,
    ) -> M3TDataset:
        """Wrap a user's own data after checking it against the specs.

        ``inputs[m]`` has shape ``(N, *spec.shape)``: float for image/signal, integer ids in
        ``[0, vocab_size)`` for text (0 = padding). ``targets[t]`` has shape ``(N,)``: integer class ids
        in ``[0, num_classes)`` for classification (``hffm.spec.MISSING_LABEL`` where a sample has no
        label: losses and metrics skip it), float for regression. ``present[m]`` (optional,
        default all True) is a bool ``(N,)`` mask; inputs of absent entries are zeroed. ``task_modalities``
        (optional, default: every modality) says which modalities can solve each task; the partitioner
        uses it to give devices only tasks they can learn. Errors name the offending key.
        """
        modalities, tasks = list(modalities), list(tasks)
        if not modalities:
            raise ValueError("modalities: give at least one ModalitySpec")
        if not tasks:
            raise ValueError("tasks: give at least one TaskSpec")
        mnames = [m.name for m in modalities]
        tnames = [t.name for t in tasks]
        for kind, names in (("modality", mnames), ("task", tnames)):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"duplicate {kind} name(s) {dup}")
        for kind, given, names in (("inputs", inputs, mnames), ("targets", targets, tnames)):
            missing = [n for n in names if n not in given]
            extra = [k for k in given if k not in names]
            if missing:
                raise ValueError(f"{kind}: missing key(s) {missing} (one tensor per spec is needed)")
            if extra:
                raise ValueError(f"{kind}: key(s) {extra} have no spec; add a spec or drop them")
        n, first = None, ""
        out_inputs: dict[str, torch.Tensor] = {}
        for spec in modalities:
            x = torch.as_tensor(inputs[spec.name])
            if tuple(x.shape[1:]) != tuple(spec.shape) or x.dim() != len(spec.shape) + 1:
                raise ValueError(
                    f"inputs[{spec.name!r}]: shape {tuple(x.shape)} does not match (N, *{tuple(spec.shape)})"
                )
            if spec.kind == "text":
                if x.dtype.is_floating_point or x.dtype == torch.bool or x.is_complex():
                    raise ValueError(f"inputs[{spec.name!r}]: text needs integer token ids, got {x.dtype}")
                x = x.long()
                if x.numel() and (int(x.min()) < 0 or int(x.max()) >= int(spec.vocab_size or 0)):
                    raise ValueError(
                        f"inputs[{spec.name!r}]: token ids must lie in [0, {spec.vocab_size}), "
                        f"got [{int(x.min())}, {int(x.max())}]"
                    )
            else:
                if not x.dtype.is_floating_point:
                    raise ValueError(f"inputs[{spec.name!r}]: {spec.kind} needs a float tensor, got {x.dtype}")
                x = x.float()
                if not torch.isfinite(x).all():
                    raise ValueError(f"inputs[{spec.name!r}]: contains NaN or inf")
            if n is None:
                n, first = int(x.shape[0]), spec.name
            elif int(x.shape[0]) != n:
                raise ValueError(f"inputs[{spec.name!r}]: has {x.shape[0]} samples but inputs[{first!r}] has {n}; "
                                 "every tensor needs the same first dimension")
            out_inputs[spec.name] = x
        assert n is not None
        if n == 0:
            raise ValueError("inputs: the dataset has no samples")
        out_targets: dict[str, torch.Tensor] = {}
        for task in tasks:
            y = torch.as_tensor(targets[task.name])
            if tuple(y.shape) != (n,):
                raise ValueError(f"targets[{task.name!r}]: shape {tuple(y.shape)}, expected ({n},) "
                                 f"(one target per sample, as in inputs[{first!r}])")
            if task.kind == "classification":
                if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
                    raise ValueError(f"targets[{task.name!r}]: classification needs integer class ids, got {y.dtype}")
                y = y.long()
                ids = y[y != MISSING_LABEL]
                if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= int(task.num_classes or 0)):
                    raise ValueError(
                        f"targets[{task.name!r}]: class ids must lie in [0, {task.num_classes}) (or be "
                        f"MISSING_LABEL={MISSING_LABEL} where a sample has no label), "
                        f"got [{int(ids.min())}, {int(ids.max())}]"
                    )
            else:
                if not y.dtype.is_floating_point:
                    raise ValueError(f"targets[{task.name!r}]: regression needs a float tensor, got {y.dtype}")
                y = y.float()
                if not torch.isfinite(y).all():
                    raise ValueError(f"targets[{task.name!r}]: contains NaN or inf")
            out_targets[task.name] = y
        out_present: dict[str, torch.Tensor] = {}
        present = present or {}
        extra = [k for k in present if k not in mnames]
        if extra:
            raise ValueError(f"present: key(s) {extra} are not modalities {mnames}")
        for name in mnames:
            if name in present:
                p = torch.as_tensor(present[name])
                if p.dtype != torch.bool or tuple(p.shape) != (n,):
                    raise ValueError(f"present[{name!r}]: needs a bool tensor of shape ({n},), got {p.dtype} "
                                     f"{tuple(p.shape)}")
            else:
                p = torch.ones(n, dtype=torch.bool)
            out_present[name] = p.clone()
            mask = (~p).view(-1, *([1] * (out_inputs[name].dim() - 1)))
            out_inputs[name] = out_inputs[name].masked_fill(mask, 0)
        if task_modalities is None:
            tm = {t: tuple(mnames) for t in tnames}
        else:
            tm = {}
            for t in tnames:
                if t not in task_modalities:
                    raise ValueError(f"task_modalities: missing task {t!r} (list the modalities that can solve it)")
                ms = tuple(task_modalities[t])
                bad = [m for m in ms if m not in mnames]
                if not ms or bad:
                    raise ValueError(f"task_modalities[{t!r}]: needs a non-empty list of modalities from {mnames}, "
                                     f"got {list(ms)}")
                tm[t] = ms
            extra = [k for k in task_modalities if k not in tnames]
            if extra:
                raise ValueError(f"task_modalities: key(s) {extra} are not tasks {tnames}")
        text_specs = [m for m in modalities if m.kind == "text"]
        if vocab is not None:
            vocab = list(vocab)
            for m in text_specs:
                if len(vocab) != m.vocab_size:
                    raise ValueError(f"vocab: has {len(vocab)} words but modality {m.name!r} has vocab_size "
                                     f"{m.vocab_size}")
        return cls(out_inputs, out_present, out_targets, modalities, tasks, tm, vocab)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> Batch:
        return {
            "inputs": {k: v[i] for k, v in self.inputs.items()},
            "present": {k: v[i] for k, v in self.present.items()},
            "targets": {k: v[i] for k, v in self.targets.items()},
        }

    def __repr__(self) -> str:
        return (f"M3TDataset(n={self._n}, modalities={self.modality_names}, tasks={self.task_names})")

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.modalities]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def modality(self, name: str) -> ModalitySpec:
        """The spec of one modality (ValueError naming the known ones if absent)."""
        for m in self.modalities:
            if m.name == name:
                return m
        raise ValueError(f"unknown modality {name!r}; this dataset has {self.modality_names}")

    def task(self, name: str) -> TaskSpec:
        """The spec of one task (ValueError naming the known ones if absent)."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise ValueError(f"unknown task {name!r}; this dataset has {self.task_names}")

    def labels(self, task: str) -> np.ndarray:
        """Targets of one task as a numpy array (class ids or regression values)."""
        self.task(task)
        return self.targets[task].numpy().copy()

    def observable(self, task: str) -> torch.Tensor:
        """Bool ``(N,)``: the sample has at least one present modality that carries ``task``.

        Useful to mask losses when modalities are missing (a sample without its I/Q cannot tell its SNR).
        """
        self.task(task)
        ms = [m for m in self.task_modalities[task] if m in self.present]
        out = torch.zeros(self._n, dtype=torch.bool)
        for m in ms:
            out |= self.present[m]
        return out

    # ------------------------------------------------------------------ views
    def subset(
        self,
        indices: Sequence[int] | np.ndarray | torch.Tensor,
        modalities: Iterable[str] | None = None,
        tasks: Iterable[str] | None = None,
    ) -> M3TDataset:
        """The samples at ``indices``, keeping only the named modalities and tasks (None = all)."""
        idx = _as_index_tensor(indices, self._n)
        mnames = _check_names("modality", modalities, self.modality_names)
        tnames = _check_names("task", tasks, self.task_names)
        if not mnames:
            raise ValueError("subset: modalities is empty; keep at least one modality")
        if not tnames:
            raise ValueError("subset: tasks is empty; keep at least one task")
        tm = {t: tuple(m for m in self.task_modalities[t] if m in mnames) for t in tnames}
        return M3TDataset(
            inputs={m: self.inputs[m].index_select(0, idx) for m in mnames},
            present={m: self.present[m].index_select(0, idx) for m in mnames},
            targets={t: self.targets[t].index_select(0, idx) for t in tnames},
            modalities=[m for m in self.modalities if m.name in mnames],
            tasks=[t for t in self.tasks if t.name in tnames],
            task_modalities=tm,
            vocab=self.vocab,
            extras={k: v.index_select(0, idx) for k, v in self.extras.items()},
        )

    def split(self, test_fraction: float, seed: int) -> tuple[M3TDataset, M3TDataset]:
        """A seeded random (train, test) split; both parts get at least one sample."""
        train, test = self._split_rows(test_fraction, seed)
        return self.subset(train), self.subset(test)

    def _split_rows(self, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The (train, test) rows of both splits, after checking the fraction and the size."""
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        if self._n < 2:
            raise ValueError(f"split needs at least 2 samples, the dataset has {self._n}")
        return split_indices(self._n, test_fraction, seed)

    def split_consuming(self, test_fraction: float, seed: int) -> tuple[M3TDataset, M3TDataset]:
        """The same (train, test) as :meth:`split`, made one tensor at a time while this dataset gives up
        each tensor once copied: the peak is the dataset plus one tensor, not twice the dataset. This
        dataset is empty afterwards; for a dataset nothing else holds (a freshly generated benchmark)."""
        rows = [torch.from_numpy(i) for i in self._split_rows(test_fraction, seed)]
        halves: list[dict[str, dict[str, torch.Tensor]]] = [{}, {}]
        for group in ("inputs", "present", "targets", "extras"):
            tensors = getattr(self, group)
            for half in halves:
                half[group] = {}
            for key in list(tensors):
                t = tensors.pop(key)
                for half, idx in zip(halves, rows, strict=True):
                    half[group][key] = t.index_select(0, idx)
                del t
        self._n = 0
        train, test = (M3TDataset(modalities=self.modalities, tasks=self.tasks, task_modalities=self.task_modalities,
                                  vocab=self.vocab, **half) for half in halves)
        return train, test

    def batches(
        self,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Mini-batches sliced straight from the tensors (same content as default_collate of samples).

        The order is ``torch.randperm(len(self), generator=generator)`` when shuffling, else sequential.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = torch.randperm(self._n, generator=generator) if shuffle else torch.arange(self._n)
        for start in range(0, self._n, int(batch_size)):
            idx = order[start:start + int(batch_size)]
            if drop_last and idx.numel() < batch_size:
                return
            yield self.batch(idx)

    def batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> Batch:
        """One batch dict for the given sample indices."""
        if isinstance(indices, torch.Tensor):
            idx = indices.long().reshape(-1)
        else:
            idx = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)
        return {
            "inputs": {k: v.index_select(0, idx) for k, v in self.inputs.items()},
            "present": {k: v.index_select(0, idx) for k, v in self.present.items()},
            "targets": {k: v.index_select(0, idx) for k, v in self.targets.items()},
        }


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) sample indices of ``M3TDataset.split`` on ``n`` samples (both parts non-empty)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(max(int(round(n * float(test_fraction))), 1), n - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
