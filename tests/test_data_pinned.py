"""The generated benchmark, its partition and a world's data stay bit-identical for a seed.

The README's paper tables were produced from this data; a faster or leaner generator must draw the
same numbers. The digests below were computed before the generator was rewritten in chunks (commit
d508b5e); a change to them means every published result would have to be regenerated.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from hffm.data import BenchmarkConfig, make_benchmark
from hffm.data.partition import PartitionConfig, partition
from hffm.federation.world import build_world
from hffm.modules.config import ModelConfig
from hffm.network.config import NetworkConfig


def _digest(*items: object) -> str:
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, torch.Tensor):
            h.update(str((item.dtype, tuple(item.shape))).encode())
            h.update(item.contiguous().numpy().tobytes())
        elif isinstance(item, np.ndarray):
            h.update(str((item.dtype, item.shape)).encode())
            h.update(np.ascontiguousarray(item).tobytes())
        else:
            h.update(repr(item).encode())
    return h.hexdigest()[:16]


def _dataset_items(ds) -> list[object]:
    out: list[object] = [len(ds), ds.modality_names, ds.task_names]
    for group in (ds.inputs, ds.present, ds.targets, ds.extras):
        for k in sorted(group):
            out += [k, group[k]]
    return out


def test_benchmark_and_partition_digests_are_pinned() -> None:
    ds = make_benchmark(BenchmarkConfig(num_samples=301, missing_prob=0.3), seed=7)
    assert _digest(*_dataset_items(ds)) == "ec8e68443b60b191"
    parts = partition(ds, PartitionConfig(num_devices=9, alpha=0.3, min_samples_per_device=12), seed=5)
    iid = partition(ds, PartitionConfig(num_devices=7, alpha=None), seed=5)
    items = [(p.device, p.modalities, p.tasks, p.indices) for p in parts + iid]
    assert _digest(*[x for t in items for x in t]) == "7584290d4a52d4f0"


def test_world_data_digest_is_pinned() -> None:
    net = NetworkConfig()
    net.topology.num_edges, net.topology.devices_per_edge = 2, 5
    world = build_world(benchmark=BenchmarkConfig(num_samples=400), partition_cfg=PartitionConfig(),
                        model=ModelConfig(), network=net, seed=3)
    items: list[object] = _dataset_items(world.global_test)
    for p, tr, te in zip(world.parts, world.train, world.test, strict=True):
        items += [p.indices, p.modalities, p.tasks, *_dataset_items(tr), *_dataset_items(te)]
    assert _digest(*items) == "bba8acc94961d931"


def test_chunked_rendering_draws_the_same_numbers() -> None:
    from hffm.data.radio import synth_iq
    from hffm.data.render import render_images

    rng = np.random.default_rng(0)
    n = 203
    objects, colors, mods = rng.integers(0, 8, n), rng.integers(0, 6, n), rng.integers(0, 6, n)
    snr = rng.uniform(-5, 20, n)
    whole = render_images(objects, colors, 12, np.random.default_rng(1), 0.3, 0.25, 3, chunk=n)
    parts = render_images(objects, colors, 12, np.random.default_rng(1), 0.3, 0.25, 3, chunk=17)
    assert whole.dtype == np.float32 and np.array_equal(whole, parts)
    whole = synth_iq(mods, snr, 64, np.random.default_rng(2), 4, 0.35, 0.01, chunk=n)
    parts = synth_iq(mods, snr, 64, np.random.default_rng(2), 4, 0.35, 0.01, chunk=13)
    assert whole.dtype == np.float32 and np.array_equal(whole, parts)


def test_consuming_split_and_device_splits_give_the_rows_of_the_plain_ones() -> None:
    from hffm.data.partition import device_dataset, device_splits

    def same(a, b) -> None:  # noqa: ANN001
        assert (a.modality_names, a.task_names, a.task_modalities) == (b.modality_names, b.task_names,
                                                                        b.task_modalities)
        for group in ("inputs", "present", "targets", "extras"):
            x, y = getattr(a, group), getattr(b, group)
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), group

    cfg = BenchmarkConfig(num_samples=150, missing_prob=0.2)
    plain = make_benchmark(cfg, seed=2).split(0.2, seed=9)
    data = make_benchmark(cfg, seed=2)
    consumed = data.split_consuming(0.2, seed=9)
    assert len(data) == 0 and not data.inputs
    for a, b in zip(plain, consumed, strict=True):
        same(a, b)
    pool = plain[0]
    parts = partition(pool, PartitionConfig(num_devices=6, alpha=0.5, min_samples_per_device=4), seed=1)
    train, test = device_splits(pool, parts, 0.25, seed=4)
    for part, tr, te in zip(parts, train, test, strict=True):
        for a, b in zip(device_dataset(pool, part).split(0.25, 4 + part.device), (tr, te), strict=True):
            same(a, b)
