"""The built-in offline M3T benchmark, the dataset protocol and the federated partitioners."""

from hffm.data.benchmark import TASK_MODALITIES, BenchmarkConfig, class_names, make_benchmark
from hffm.data.dataset import Batch, M3TDataset
from hffm.data.partition import (
    DevicePartition,
    PartitionConfig,
    device_dataset,
    label_skew_stats,
    partition,
)

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
