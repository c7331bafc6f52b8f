"""The built-in offline M3T benchmark, the dataset protocol and the federated partitioners."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hffm.data.benchmark import TASK_MODALITIES, BenchmarkConfig, class_names, make_benchmark
    from hffm.data.dataset import Batch, M3TDataset
    from hffm.data.partition import (
        DevicePartition,
        PartitionConfig,
        device_dataset,
        label_skew_stats,
        partition,
    )

# Imported on first use (PEP 562), so importing this package stays cheap: a config error or --help
# does not wait for torch, Lightning or cvxpy.
_LAZY = {
    "TASK_MODALITIES": ("hffm.data.benchmark", "TASK_MODALITIES"),
    "BenchmarkConfig": ("hffm.data.benchmark", "BenchmarkConfig"),
    "class_names": ("hffm.data.benchmark", "class_names"),
    "make_benchmark": ("hffm.data.benchmark", "make_benchmark"),
    "Batch": ("hffm.data.dataset", "Batch"),
    "M3TDataset": ("hffm.data.dataset", "M3TDataset"),
    "DevicePartition": ("hffm.data.partition", "DevicePartition"),
    "PartitionConfig": ("hffm.data.partition", "PartitionConfig"),
    "device_dataset": ("hffm.data.partition", "device_dataset"),
    "label_skew_stats": ("hffm.data.partition", "label_skew_stats"),
    "partition": ("hffm.data.partition", "partition"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


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
