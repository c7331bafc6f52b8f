"""Where a run's data comes from: one record per ``data.source``, chosen in one place.

Each source turns its own config into a :class:`Prepared`: the training pool, the global test set and,
for a dataset with a natural client split, the device group of each training sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hffm.data.benchmark import make_benchmark

if TYPE_CHECKING:
    from hffm.data.dataset import M3TDataset


@dataclass(frozen=True)
class Prepared:
    train: M3TDataset
    """The pool the devices' data is drawn from."""
    test: M3TDataset
    """The global test set (held-out samples, or held-out users)."""
    groups: np.ndarray | None = None
    """Natural device of each training sample (0..G-1), or None: data.partition splits the pool."""
    group_names: tuple[str, ...] = ()


def _benchmark(data: Any, seed: int) -> Prepared:
    # nothing else holds the generated benchmark: split it without holding two copies
    train, test = make_benchmark(data.benchmark, seed).split_consuming(data.global_test_fraction, seed)
    return Prepared(train, test)


def _hapt(data: Any, seed: int) -> Prepared:
    from hffm.data.hapt import make_hapt

    split = make_hapt(data.hapt)
    return Prepared(split.train, split.test, split.groups, split.group_names)


def _easyvqa(data: Any, seed: int) -> Prepared:
    from hffm.data.easyvqa import make_easyvqa

    train, test = make_easyvqa(data.easyvqa, seed)
    return Prepared(train, test)


@dataclass(frozen=True)
class Source:
    name: str
    prepare: Callable[[Any, int], Prepared]
    """(the run's DataConfig, seed) -> Prepared."""
    held_out: str
    """What the global test set is (for docs and errors)."""
    uses_global_test_fraction: bool


SOURCES: dict[str, Source] = {
    "benchmark": Source("benchmark", _benchmark, "a seeded data.global_test_fraction of the samples", True),
    "hapt": Source("hapt", _hapt, "the users in data.hapt.test_users", False),
    "easyvqa": Source("easyvqa", _easyvqa, "easy-VQA's own test split", False),
}


def source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"data.source={name!r}: choose one of {list(SOURCES)}")
    return SOURCES[name]
