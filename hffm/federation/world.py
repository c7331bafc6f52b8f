"""Everything fixed for a run: data per device, topology, hardware, and the process's module bank.

Built once from the seed; the round loop only reads it (the channel is redrawn each round).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from hffm.data.benchmark import BenchmarkConfig, make_benchmark
from hffm.data.dataset import M3TDataset
from hffm.data.faults import DataFaults, apply_data_faults
from hffm.data.partition import DevicePartition, PartitionConfig, device_splits, partition
from hffm.data.sources import Prepared
from hffm.modules.bank import ModuleBank
from hffm.modules.config import ModelConfig
from hffm.network.channel import ChannelState, draw_channel
from hffm.network.compute import draw_cpu_hz
from hffm.network.config import NetworkConfig
from hffm.network.topology import Topology, make_topology


@dataclass
class World:
    bank: ModuleBank
    train: list[M3TDataset]
    """Each device's training data (its modalities, tasks and label-skewed samples)."""
    test: list[M3TDataset]
    """Each device's held-out data, from the same distribution as its training data."""
    global_test: M3TDataset
    parts: list[DevicePartition]
    topology: Topology
    network: NetworkConfig
    cpu_hz: np.ndarray
    memory_bytes: np.ndarray
    num_samples: np.ndarray
    module_bytes: dict[str, int]
    eval_devices: list[int]
    """Devices evaluated each evaluation round (all of them up to max_eval_devices, else a seeded sample)."""
    eval_edges: list[int]
    """Edges whose modules are evaluated on the global test set (all up to max_eval_edges, else a sample)."""
    seed: int = 0
    """The run's seed (draws the evaluation sample)."""
    _views: dict = field(default_factory=dict, repr=False)

    @property
    def num_devices(self) -> int:
        return len(self.train)

    def draw_channel(self, rng: np.random.Generator) -> ChannelState:
        return draw_channel(self.topology, self.network.channel, rng)

    def global_test_view(self, device: int) -> M3TDataset:
        """The global test set seen through one device: its modalities and tasks only."""
        # Not cached: a view copies its tensors, and a 1,000-device run has dozens of distinct
        # (modalities, tasks) combinations (hundreds of MB, experiments/results/scale_bench/notes.md).
        return _restricted(self.global_test, self.parts[device].modalities, self.parts[device].tasks)

    def global_sample(self, size: int) -> M3TDataset:
        """A seeded sample of ``size`` samples of the global test set (all of it when 0 or not smaller)."""
        if size <= 0 or size >= len(self.global_test):
            return self.global_test
        key = ("sample", size)
        if key not in self._views:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 3]))
            self._views[key] = self.global_test.subset(np.sort(rng.choice(len(self.global_test), size, replace=False)))
        return self._views[key]

    def device_sample(self, size: int, of: int) -> M3TDataset:
        """A seeded sub-sample of ``size`` samples of ``global_sample(of)`` (all of it when 0 or not smaller):
        what every device's model is evaluated on, nested in what the edges see."""
        sample = self.global_sample(of)
        if size <= 0 or size >= len(sample):
            return sample
        key = ("device_sample", size, of)
        if key not in self._views:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 4]))
            self._views[key] = sample.subset(np.sort(rng.choice(len(sample), size, replace=False)))
        return self._views[key]

    def single_modality_views(self) -> dict[str, M3TDataset]:
        """For each modality, the global test set with only that modality and the tasks it can solve."""
        if "single" not in self._views:
            views = {}
            for spec in self.global_test.modalities:
                tasks = [t for t, mods in self.global_test.task_modalities.items() if spec.name in mods]
                if tasks:
                    views[spec.name] = _restricted(self.global_test, (spec.name,), tasks)
            self._views["single"] = views
        return self._views["single"]


def _restricted(data: M3TDataset, modalities, tasks) -> M3TDataset:
    """Subset to these modalities and tasks, dropping samples that have none of the modalities."""
    keep = torch.zeros(len(data), dtype=torch.bool)
    for m in modalities:
        keep |= data.present[m].bool()
    return data.subset(torch.nonzero(keep).flatten().numpy(), modalities=modalities, tasks=tasks)


def build_world(
    *,
    benchmark: BenchmarkConfig,
    partition_cfg: PartitionConfig,
    model: ModelConfig,
    network: NetworkConfig,
    seed: int,
    global_test_fraction: float = 0.2,
    device_test_fraction: float = 0.2,
    device_memory_bytes: float = 64e6,
    max_eval_devices: int = 64,
    max_eval_edges: int = 16,
    dataset: M3TDataset | None = None,
    pretrained: str | None = None,
    prepared: Prepared | None = None,
    data_faults: DataFaults | None = None,
) -> World:
    """Data, partitions, topology and hardware from one seed.

    The number of devices is the topology's (edges x devices per edge); the partitioner is told so.
    ``dataset`` replaces the built-in benchmark with a user's own (see docs/datasets.md); ``prepared``
    with a real dataset's training pool, global test set and natural device groups (hffm.data.sources).
    ``data_faults`` are drawn on the devices' training data.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    groups = None
    if prepared is not None:
        if dataset is not None:
            raise ValueError("build_world: give dataset or prepared, not both")
        train_pool, global_test, groups = prepared.train, prepared.test, prepared.groups
    elif dataset is None:  # nothing else holds the generated benchmark: split it without holding two copies
        train_pool, global_test = make_benchmark(benchmark, seed).split_consuming(global_test_fraction, seed)
    else:
        train_pool, global_test = dataset.split(global_test_fraction, seed)
    topology = make_topology(network.topology, rng)
    n = topology.num_devices
    if partition_cfg.num_devices is None:
        partition_cfg = replace(partition_cfg, num_devices=n)
    elif partition_cfg.num_devices != n:
        raise ValueError(
            f"data.partition.num_devices={partition_cfg.num_devices} but the topology has {n} devices "
            "(topology.num_edges x topology.devices_per_edge decide it): leave data.partition.num_devices unset"
        )
    parts = partition(train_pool, partition_cfg, seed, groups=groups)
    train, test = device_splits(train_pool, parts, device_test_fraction, seed)
    train = apply_data_faults(train, data_faults or DataFaults(), seed)
    del train_pool  # the devices hold copies of their rows: the pool goes now, before the bank is built
    bank = ModuleBank(model, global_test.modalities, global_test.tasks, vocab=getattr(global_test, "vocab", None),
                      seed=seed)
    if pretrained:
        from hffm.data.leakage import check_no_test_leak
        from hffm.modules.pretrain import load_pretrained, pretrained_data

        load_pretrained(bank, pretrained)
        if dataset is None and prepared is None:  # the record describes the built-in benchmark
            check_no_test_leak(pretrained_data(pretrained), benchmark, seed, global_test_fraction, pretrained)
    eval_rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    eval_devices = list(range(n))
    if n > max_eval_devices:  # evaluating every device of a 1,000-device run each round would dominate
        eval_devices = sorted(eval_rng.choice(n, max_eval_devices, replace=False).tolist())
    e = topology.num_edges
    eval_edges = list(range(e))
    if e > max_eval_edges:
        eval_edges = sorted(eval_rng.choice(e, max_eval_edges, replace=False).tolist())
    return World(
        bank=bank,
        train=train,
        test=test,
        global_test=global_test,
        parts=parts,
        topology=topology,
        network=network,
        cpu_hz=draw_cpu_hz(network.compute, n, rng),
        memory_bytes=np.full(n, float(device_memory_bytes)),
        num_samples=np.array([float(len(d)) for d in train]),
        module_bytes={name: bank.num_bytes(name) for name in bank.names()},
        eval_devices=eval_devices,
        eval_edges=eval_edges,
        seed=seed,
    )
