"""Split an M3T dataset over federated devices: label skew, modality skew and task skew.

Each device gets disjoint sample indices (Dirichlet(alpha) label skew over one classification task,
or IID), a subset of modalities (fixed per device from ``modality_sets`` or drawn at random) and a
non-empty random subset of the tasks those modalities can solve (per ``dataset.task_modalities``).
A seed fixes everything; indices and modality/task choices use independent streams of it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hffm.lazy import LazyModule

if TYPE_CHECKING:
    import torch

    from hffm.data.dataset import M3TDataset
else:
    torch = LazyModule("torch")

GROUPS = ("inputs", "present", "targets", "extras")


@dataclass
class DevicePartition:
    """What one device holds: its sample indices into the full dataset, modalities and tasks."""

    device: int
    indices: np.ndarray
    modalities: tuple[str, ...]
    tasks: tuple[str, ...]

    @property
    def num_samples(self) -> int:
        return int(len(self.indices))


@dataclass
class PartitionConfig:
    """How to split a dataset over devices (default: Dirichlet(0.5) skew on ``object``)."""

    num_devices: int | None = None
    """Number of devices (>= 1). In a run the topology decides it (num_edges x devices_per_edge): leave
    it unset there; a different value is an error, not silently replaced."""
    alpha: float | None = 0.5
    """Dirichlet concentration of the label skew over ``label_task``: small = each device sees few
    classes, large = close to the global mix; None or inf = IID (equal-size random split)."""
    label_task: str = "object"
    """Classification task whose labels are skewed."""
    modality_sets: list[list[str]] | None = None
    """If given, device i gets ``modality_sets[i % len(modality_sets)]``; else a random subset."""
    min_modalities: int = 1
    """Smallest random modality subset (ignored when ``modality_sets`` is given)."""
    max_modalities: int | None = None
    """Largest random modality subset (None = all modalities)."""
    task_sets: list[list[str]] | None = None
    """If given, device i gets ``task_sets[i % len(task_sets)]`` (each must be solvable from its modalities)."""
    min_tasks: int = 1
    """Smallest random task subset (capped at the number of tasks the device can solve)."""
    max_tasks: int | None = None
    """Largest random task subset (None = all solvable tasks)."""
    min_samples_per_device: int = 8
    """Every device gets at least this many samples (>= 1)."""
    max_redraws: int = 50
    """Dirichlet redraws to meet ``min_samples_per_device`` before samples are moved from the largest devices."""

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"PartitionConfig.{msg}")

        ok = self.num_devices is None or int(self.num_devices) >= 1
        need(ok, f"num_devices must be >= 1, got {self.num_devices}")
        if self.alpha is not None:
            self.alpha = float(self.alpha)
            need(self.alpha > 0, f"alpha must be > 0 (or None / inf for IID), got {self.alpha}")
        need(int(self.min_modalities) >= 1, f"min_modalities must be >= 1, got {self.min_modalities}")
        need(self.max_modalities is None or self.max_modalities >= self.min_modalities,
             f"max_modalities ({self.max_modalities}) must be >= min_modalities ({self.min_modalities})")
        need(int(self.min_tasks) >= 1, f"min_tasks must be >= 1, got {self.min_tasks}")
        need(self.max_tasks is None or self.max_tasks >= self.min_tasks,
             f"max_tasks ({self.max_tasks}) must be >= min_tasks ({self.min_tasks})")
        need(int(self.min_samples_per_device) >= 1,
             f"min_samples_per_device must be >= 1, got {self.min_samples_per_device}")
        need(int(self.max_redraws) >= 1, f"max_redraws must be >= 1, got {self.max_redraws}")
        for field in ("modality_sets", "task_sets"):
            sets = getattr(self, field)
            if sets is None:
                continue
            sets = [[str(x) for x in s] for s in sets]  # also accepts Hydra ListConfig
            need(len(sets) > 0 and all(len(s) > 0 for s in sets),
                 f"{field} must be None or a non-empty list of non-empty name lists, got {sets}")
            setattr(self, field, sets)

    @property
    def iid(self) -> bool:
        return self.alpha is None or math.isinf(self.alpha)


def _skew_labels(dataset: M3TDataset, cfg: PartitionConfig) -> np.ndarray:
    """The labels the Dirichlet skew splits by: a classification task's, or an integer label in
    ``dataset.extras`` (easy-VQA's ``answer``, since each of its tasks labels a third of the questions).
    Missing labels form one more group."""
    if cfg.label_task in dataset.extras and cfg.label_task not in dataset.task_names:
        labels = dataset.extras[cfg.label_task]
        if labels.dtype.is_floating_point or labels.dim() != 1:
            raise ValueError(f"PartitionConfig.label_task {cfg.label_task!r}: dataset.extras holds it, but not as "
                             "integer labels (N,)")
        return labels.numpy().copy()
    if cfg.label_task not in dataset.task_names:
        raise ValueError(f"PartitionConfig.label_task {cfg.label_task!r}: not a task of this dataset "
                         f"{dataset.task_names} (nor an integer label in dataset.extras {sorted(dataset.extras)})")
    spec = dataset.task(cfg.label_task)
    if spec.kind != "classification":
        raise ValueError(f"PartitionConfig.label_task {cfg.label_task!r} is a {spec.kind} task; "
                         "label skew needs a classification task (or alpha=None for IID)")
    return dataset.labels(cfg.label_task)


def _check_against(dataset: M3TDataset, cfg: PartitionConfig) -> None:
    if not cfg.iid:
        _skew_labels(dataset, cfg)
    for field, known in (("modality_sets", dataset.modality_names), ("task_sets", dataset.task_names)):
        for s in getattr(cfg, field) or []:
            bad = [x for x in s if x not in known]
            if bad:
                raise ValueError(f"PartitionConfig.{field}: unknown name(s) {bad}; the dataset has {known}")
    n, d, m = len(dataset), _num_devices(cfg), cfg.min_samples_per_device
    if d * m > n:
        raise ValueError(f"too many devices for the data: {n} samples cannot give {d} devices at least {m} each "
                         "(lower num_devices or min_samples_per_device, or generate more samples)")


def _dirichlet_indices(labels: np.ndarray, cfg: PartitionConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, split its samples over devices by Dirichlet(alpha) shares (devices already holding
    their fair share n/D are skipped for further classes, which keeps sizes balanced); redraw until every
    device has ``min_samples_per_device``, then move random samples from the largest devices.

    Vectorised over devices (a draw is one owner per sample); a device's samples keep the order a
    per-device list would have (class by class), since the repair draws positions in that order."""
    d, n, need = _num_devices(cfg), len(labels), cfg.min_samples_per_device
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    best: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (owners, samples, sizes) of a draw
    for _ in range(cfg.max_redraws):
        sizes = np.zeros(d, dtype=np.int64)
        owners, samples = [], []
        for members_c in members:
            idx = rng.permutation(members_c)
            p = rng.dirichlet(np.full(d, cfg.alpha))
            p = p * (sizes < n / d)
            p = p / p.sum() if p.sum() > 0 else np.full(d, 1.0 / d)
            cuts = (np.cumsum(p)[:-1] * len(idx)).astype(int)
            counts = np.diff(np.clip(np.concatenate(([0], cuts, [len(idx)])), 0, len(idx)))  # np.split's chunks
            owners.append(np.repeat(np.arange(d), counts))
            samples.append(idx)
            sizes += counts
        if best is None or sizes.min() > best[2].min():
            best = (np.concatenate(owners), np.concatenate(samples), sizes)
        if sizes.min() >= need:
            break
    assert best is not None
    owner, sample, sizes = best
    lists = np.split(sample[np.argsort(owner, kind="stable")], np.cumsum(sizes)[:-1])
    sizes = sizes.copy()
    while sizes.min() < need:  # repair: feasible because D * need <= n was checked
        small, big = int(sizes.argmin()), int(sizes.argmax())
        k = min(need - sizes[small], sizes[big] - need)
        take = rng.choice(sizes[big], size=k, replace=False)
        keep = np.ones(sizes[big], dtype=bool)
        keep[take] = False
        lists[small] = np.concatenate([lists[small], lists[big][take]])
        lists[big] = lists[big][keep]
        sizes[small] += k
        sizes[big] -= k
    return [np.sort(q.astype(np.int64)) for q in lists]


def _solvable(dataset: M3TDataset, modalities: Sequence[str]) -> list[str]:
    have = set(modalities)
    return [t for t in dataset.task_names if have & set(dataset.task_modalities[t])]


def _modality_candidates(dataset: M3TDataset, cfg: PartitionConfig) -> dict[int, list[tuple[str, ...]]]:
    """Subset size -> the modality subsets of that size that can solve some task."""
    names = dataset.modality_names
    hi = len(names) if cfg.max_modalities is None else min(cfg.max_modalities, len(names))
    by_size = {}
    for k in range(cfg.min_modalities, hi + 1):
        cands = [c for c in itertools.combinations(names, k) if _solvable(dataset, c)]
        if cands:
            by_size[k] = cands
    if not by_size:
        raise ValueError(f"no subset of {cfg.min_modalities}..{hi} modalities of {names} can solve any task; "
                         "check PartitionConfig.min_modalities / max_modalities and dataset.task_modalities")
    return by_size


def _pick_modalities(by_size: dict[int, list[tuple[str, ...]]], rng: np.random.Generator) -> tuple[str, ...]:
    sizes = sorted(by_size)
    cands = by_size[sizes[int(rng.integers(len(sizes)))]]
    return cands[int(rng.integers(len(cands)))]


def _num_devices(cfg: PartitionConfig) -> int:
    if cfg.num_devices is None:
        raise ValueError("PartitionConfig.num_devices is unset: give the number of devices to split the data over")
    return int(cfg.num_devices)


def partition(dataset: M3TDataset, cfg: PartitionConfig, seed: int,
              groups: np.ndarray | None = None) -> list[DevicePartition]:
    """Deterministic (by ``seed``) split of ``dataset`` into ``cfg.num_devices`` device partitions.

    ``groups`` (one integer 0..D-1 per sample): a natural split (device i holds group i, e.g. a user's
    windows) instead of the label skew (``alpha`` and ``label_task`` are not used: leave alpha None)."""
    index_rng, choice_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2))
    if groups is not None:
        chunks = _natural_chunks(dataset, cfg, groups)
    else:
        _check_against(dataset, cfg)
        if cfg.iid:
            chunks = [np.sort(c) for c in np.array_split(index_rng.permutation(len(dataset)), _num_devices(cfg))]
        else:
            chunks = _dirichlet_indices(_skew_labels(dataset, cfg), cfg, index_rng)
    by_size = _modality_candidates(dataset, cfg) if cfg.modality_sets is None else {}
    parts = []
    for i, idx in enumerate(chunks):
        if cfg.modality_sets is not None:
            chosen = set(cfg.modality_sets[i % len(cfg.modality_sets)])
            mods = tuple(m for m in dataset.modality_names if m in chosen)
        else:
            mods = _pick_modalities(by_size, choice_rng)
        solvable = _solvable(dataset, mods)
        if cfg.task_sets is not None:
            chosen = set(cfg.task_sets[i % len(cfg.task_sets)])
            bad = [t for t in chosen if t not in solvable]
            if bad:
                raise ValueError(f"device {i}: task(s) {bad} from PartitionConfig.task_sets cannot be solved from its "
                                 f"modalities {list(mods)} (needs one of "
                                 f"{ {t: dataset.task_modalities[t] for t in bad} })")
            tasks = tuple(t for t in dataset.task_names if t in chosen)
        else:
            if not solvable:
                raise ValueError(f"device {i}: its modalities {list(mods)} solve none of the tasks "
                                 f"{dataset.task_modalities}; fix PartitionConfig.modality_sets")
            hi = len(solvable) if cfg.max_tasks is None else min(cfg.max_tasks, len(solvable))
            lo = min(cfg.min_tasks, hi)
            k = int(choice_rng.integers(lo, hi + 1))
            chosen = set(choice_rng.choice(solvable, size=k, replace=False).tolist())
            tasks = tuple(t for t in solvable if t in chosen)
        parts.append(DevicePartition(device=i, indices=idx, modalities=mods, tasks=tasks))
    return parts


def _natural_chunks(dataset: M3TDataset, cfg: PartitionConfig, groups: np.ndarray) -> list[np.ndarray]:
    groups = np.asarray(groups)
    if groups.shape != (len(dataset),):
        raise ValueError(f"groups: one device group per sample is needed ({len(dataset)}), got shape {groups.shape}")
    d = _num_devices(cfg)
    found = int(groups.max()) + 1 if len(groups) else 0
    if found != d:
        raise ValueError(f"the data's natural split has {found} devices but {d} were asked for; make the topology "
                         f"hold {found} devices (topology.num_edges x topology.devices_per_edge, e.g. "
                         f"{_factor_hint(found)})")
    for field in ("modality_sets", "task_sets"):
        for s in getattr(cfg, field) or []:
            known = dataset.modality_names if field == "modality_sets" else dataset.task_names
            bad = [x for x in s if x not in known]
            if bad:
                raise ValueError(f"PartitionConfig.{field}: unknown name(s) {bad}; the dataset has {known}")
    return [np.flatnonzero(groups == g).astype(np.int64) for g in range(d)]


def _factor_hint(n: int) -> str:
    """Ways to write n as num_edges x devices_per_edge, for error messages."""
    pairs = [(e, n // e) for e in range(2, n) if n % e == 0 and n // e >= 2]
    pairs = pairs or [(n, 1), (1, n)]
    return " or ".join(f"topology.num_edges={e} topology.devices_per_edge={k}" for e, k in pairs[:3])


def device_dataset(dataset: M3TDataset, part: DevicePartition) -> M3TDataset:
    """The device's view: its samples, restricted to its modalities and tasks."""
    return dataset.subset(part.indices, modalities=part.modalities, tasks=part.tasks)


def device_splits(
    dataset: M3TDataset, parts: Sequence[DevicePartition], test_fraction: float, seed: int
) -> tuple[list[M3TDataset], list[M3TDataset]]:
    """Every device's (train, test): the rows of ``device_dataset(dataset, part).split(test_fraction,
    seed + part.device)``, gathered with one copy per tensor for all devices and sliced per device (the
    devices' datasets are views of those copies). 10,000 devices then cost a few large copies instead of
    30,000 small datasets; each device still holds only its modalities and tasks."""
    from hffm.data.dataset import M3TDataset, split_indices  # torch's Dataset: only when one is made
    pieces: list[tuple[DevicePartition, np.ndarray]] = []  # device 0 train, device 0 test, device 1 train, ...
    for part in parts:
        if part.num_samples < 2:
            raise ValueError(f"device {part.device} has {part.num_samples} samples: too few to hold out a test split")
        train, test = split_indices(part.num_samples, test_fraction, seed + part.device)
        pieces += [(part, part.indices[train]), (part, part.indices[test])]
    views: list[dict[str, dict[str, torch.Tensor]]] = [{g: {} for g in GROUPS} for _ in pieces]

    def gather(group: str, key: str, holds) -> None:  # noqa: ANN001 - a predicate on a partition
        mine = [j for j, (part, _) in enumerate(pieces) if holds(part)]
        if not mine:
            return
        rows = np.concatenate([pieces[j][1] for j in mine])
        whole = getattr(dataset, group)[key].index_select(0, torch.from_numpy(rows.astype(np.int64)))
        for j, view in zip(mine, whole.split([len(pieces[j][1]) for j in mine]), strict=True):
            views[j][group][key] = view

    for m in dataset.modality_names:
        gather("inputs", m, lambda part, m=m: m in part.modalities)
        gather("present", m, lambda part, m=m: m in part.modalities)
    for t in dataset.task_names:
        gather("targets", t, lambda part, t=t: t in part.tasks)
    for k in dataset.extras:
        gather("extras", k, lambda part: True)
    out = []
    for (part, _), tensors in zip(pieces, views, strict=True):
        mods = [m for m in dataset.modality_names if m in part.modalities]
        tasks = [t for t in dataset.task_names if t in part.tasks]
        out.append(M3TDataset(
            modalities=[s for s in dataset.modalities if s.name in mods],
            tasks=[s for s in dataset.tasks if s.name in tasks],
            task_modalities={t: tuple(m for m in dataset.task_modalities[t] if m in mods) for t in tasks},
            vocab=dataset.vocab,
            **tensors,
        ))
    return out[0::2], out[1::2]


def label_skew_stats(dataset: M3TDataset, parts: Sequence[DevicePartition], task: str) -> np.ndarray:
    """``[num_devices, num_classes]`` label counts of ``task`` per device."""
    spec = dataset.task(task)
    if spec.kind != "classification":
        raise ValueError(f"label_skew_stats: task {task!r} is {spec.kind}, needs a classification task")
    labels = dataset.labels(task)
    return np.stack([np.bincount(labels[p.indices][labels[p.indices] >= 0], minlength=spec.num_classes or 0)
                     for p in parts])
