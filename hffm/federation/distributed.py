"""Sharding devices over Fabric ranks and gathering their results.

Each rank trains its share of the round's devices; the updates are then all-gathered and every rank
aggregates the same list in the same order, so a run on several processes gives the numbers of a
run on one (up to float summation order, which the fixed order removes).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from lightning.fabric import Fabric

T = TypeVar("T")


def shard(items: list[T], fabric: Fabric) -> list[T]:
    """This rank's share: round-robin, so shares differ by at most one item."""
    return items[fabric.global_rank :: fabric.world_size]


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # a record (TrainResult): its tensors too
        return dataclasses.replace(obj, **{f.name: _to_cpu(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    return obj


def gather(items: list[T], fabric: Fabric) -> list[T]:
    """Every rank's items, concatenated in rank order (identity on one process)."""
    if fabric.world_size == 1:
        return items
    out: list[Any] = [None] * fabric.world_size
    dist.all_gather_object(out, _to_cpu(items))
    return [item for part in out for item in part]
