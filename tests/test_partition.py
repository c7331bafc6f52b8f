"""Federated partitioners: label skew, modality and task skew, determinism and error cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hffm.data import (
    BenchmarkConfig,
    M3TDataset,
    PartitionConfig,
    device_dataset,
    label_skew_stats,
    make_benchmark,
    partition,
)


@pytest.fixture(scope="module")
def ds() -> M3TDataset:
    # Small images and bursts: partitioning only looks at labels, so keep generation cheap.
    return make_benchmark(BenchmarkConfig(num_samples=1200, image_size=8, iq_len=32, iq_sps=4), seed=0)


def _max_share(counts: np.ndarray) -> float:
    return float((counts.max(1) / counts.sum(1)).mean())


def _check_valid(ds: M3TDataset, parts, cfg: PartitionConfig) -> None:
    assert [p.device for p in parts] == list(range(cfg.num_devices))
    allidx = np.concatenate([p.indices for p in parts])
    assert len(np.unique(allidx)) == len(allidx), "devices must hold disjoint samples"
    assert allidx.min() >= 0 and allidx.max() < len(ds)
    for p in parts:
        assert p.num_samples >= cfg.min_samples_per_device
        assert p.modalities and p.tasks
        for t in p.tasks:
            assert set(ds.task_modalities[t]) & set(p.modalities), (p.device, t, p.modalities)


def test_deterministic_disjoint_covering_valid(ds: M3TDataset) -> None:
    cfg = PartitionConfig(num_devices=40, alpha=0.5)
    a, b, c = partition(ds, cfg, seed=7), partition(ds, cfg, seed=7), partition(ds, cfg, seed=8)
    assert all(np.array_equal(x.indices, y.indices) and x.modalities == y.modalities and x.tasks == y.tasks
               for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x.indices, y.indices) for x, y in zip(a, c, strict=True))
    _check_valid(ds, a, cfg)
    assert sum(p.num_samples for p in a) == len(ds), "the Dirichlet split hands out every sample"
    # Random modality / task choices actually vary across devices.
    assert len({p.modalities for p in a}) > 2 and len({p.tasks for p in a}) > 2


def test_dirichlet_skew_follows_alpha(ds: M3TDataset) -> None:
    share = {}
    for alpha in (0.1, 1.0, 100.0, None):
        cfg = PartitionConfig(num_devices=20, alpha=alpha)
        parts = partition(ds, cfg, seed=1)
        _check_valid(ds, parts, cfg)
        counts = label_skew_stats(ds, parts, "object")
        assert counts.shape == (20, 6) and counts.sum() == len(ds)
        share[alpha] = _max_share(counts)
    glob = np.bincount(ds.labels("object")).max() / len(ds)
    assert share[0.1] > 0.6 > share[1.0] > share[100.0]
    assert share[0.1] > 2 * share[100.0]
    assert abs(share[None] - glob) < 0.12 and abs(share[100.0] - glob) < 0.12
    iid = partition(ds, PartitionConfig(num_devices=20, alpha=float("inf")), seed=1)
    sizes = [p.num_samples for p in iid]
    assert max(sizes) - min(sizes) <= 1


def test_tiny_alpha_still_gives_every_device_its_minimum(ds: M3TDataset) -> None:
    cfg = PartitionConfig(num_devices=100, alpha=0.01, min_samples_per_device=10, max_redraws=2)
    parts = partition(ds, cfg, seed=3)
    _check_valid(ds, parts, cfg)
    assert sum(p.num_samples for p in parts) == len(ds)


def test_modality_and_task_sets_as_configured(ds: M3TDataset) -> None:
    sets = [["image"], ["text", "iq"], ["iq"]]
    cfg = PartitionConfig(num_devices=9, alpha=None, modality_sets=sets)
    parts = partition(ds, cfg, seed=0)
    for p in parts:
        assert set(p.modalities) == set(sets[p.device % 3])
    assert all(set(p.tasks) <= {"object", "color"} for p in parts[0::3])
    assert all(set(p.tasks) <= {"modulation", "snr"} for p in parts[2::3])
    full = PartitionConfig(num_devices=4, alpha=None, min_modalities=3, min_tasks=4)
    assert all(p.tasks == ("object", "color", "modulation", "snr") and len(p.modalities) == 3
               for p in partition(ds, full, seed=0))
    one = PartitionConfig(num_devices=30, alpha=None, max_modalities=1, max_tasks=1)
    for p in partition(ds, one, seed=0):
        assert len(p.modalities) == 1 and len(p.tasks) == 1
    fixed = PartitionConfig(num_devices=4, alpha=None, modality_sets=[["iq"]], task_sets=[["snr"]])
    assert {(p.modalities, p.tasks) for p in partition(ds, fixed, seed=0)} == {(("iq",), ("snr",))}


def test_device_dataset_is_the_restricted_view(ds: M3TDataset) -> None:
    cfg = PartitionConfig(num_devices=5, alpha=0.5, modality_sets=[["iq", "image"]], task_sets=[["modulation"]])
    p = partition(ds, cfg, seed=2)[3]
    d = device_dataset(ds, p)
    assert len(d) == p.num_samples and d.modality_names == ["image", "iq"] and d.task_names == ["modulation"]
    assert torch.equal(d.inputs["iq"], ds.inputs["iq"][torch.as_tensor(p.indices)])
    assert np.array_equal(d.labels("modulation"), ds.labels("modulation")[p.indices])


def test_errors_name_the_problem(ds: M3TDataset) -> None:
    with pytest.raises(ValueError, match="too many devices"):
        partition(ds, PartitionConfig(num_devices=200, min_samples_per_device=8), seed=0)
    with pytest.raises(ValueError, match="sonar"):
        partition(ds, PartitionConfig(num_devices=4, modality_sets=[["sonar"]]), seed=0)
    with pytest.raises(ValueError, match="'snr'"):
        partition(ds, PartitionConfig(num_devices=4, modality_sets=[["image"]], task_sets=[["snr"]]), seed=0)
    with pytest.raises(ValueError, match="label_task"):
        partition(ds, PartitionConfig(num_devices=4, label_task="snr"), seed=0)
    with pytest.raises(ValueError, match="weather"):
        partition(ds, PartitionConfig(num_devices=4, label_task="weather"), seed=0)
    for field, value in (("num_devices", 0), ("alpha", 0.0), ("min_tasks", 0), ("modality_sets", [[]]),
                         ("min_samples_per_device", 0)):
        with pytest.raises(ValueError, match=field):
            PartitionConfig(**{field: value})
    with pytest.raises(ValueError, match="classification"):
        label_skew_stats(ds, partition(ds, PartitionConfig(num_devices=2), seed=0), "snr")
