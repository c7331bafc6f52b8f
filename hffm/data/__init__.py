"""The built-in offline M3T benchmark, the dataset protocol and the federated partitioners."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hffm.data.benchmark import TASK_MODALITIES, BenchmarkConfig, class_names, make_benchmark
from hffm.data.partition import DevicePartition, PartitionConfig, device_dataset, label_skew_stats, partition
from hffm.lazy import lazy_getattr

if TYPE_CHECKING:
    from hffm.data.dataset import Batch, M3TDataset

# The dataset is a torch Dataset: imported on first use (PEP 562), so the config (which imports the benchmark's and
# the partition's dataclasses) and a config error do not wait for torch.
_LAZY = {
    "Batch": ("hffm.data.dataset", "Batch"),
    "M3TDataset": ("hffm.data.dataset", "M3TDataset"),
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = [
    "TASK_MODALITIES",
    "Batch",
    "BenchmarkConfig",
    "DevicePartition",
    "M3TDataset",
    "PartitionConfig",
    "class_names",
    "device_dataset",
    "label_skew_stats",
    "make_benchmark",
    "partition",
]
