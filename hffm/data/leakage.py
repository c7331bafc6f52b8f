"""Does a pretraining set hold samples of a federated run's global test set?

``hffm-pretrain`` records which benchmark, seed and test fraction it trained on; a federated run
that starts from it checks the record against its own. The benchmark's samples are drawn from its
config and seed, so two records with another config or seed share no sample; with the same ones,
the sample indices of the two splits tell exactly which test samples the pretraining saw.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from hffm.data.benchmark import BenchmarkConfig
from hffm.data.dataset import split_indices


def training_record(benchmark: BenchmarkConfig, seed: int, global_test_fraction: float) -> dict[str, Any]:
    """What a pretrained checkpoint stores about its data (plain JSON types)."""
    return {"benchmark": json.loads(json.dumps(dataclasses.asdict(benchmark))), "seed": int(seed),
            "global_test_fraction": float(global_test_fraction)}


def seen_test_samples(record: Mapping[str, Any], benchmark: BenchmarkConfig, seed: int,
                      global_test_fraction: float) -> int:
    """How many of the run's global test samples were in the pretraining's training split (0: none)."""
    run = training_record(benchmark, seed, global_test_fraction)
    if record.get("benchmark") != run["benchmark"] or record.get("seed") != run["seed"]:
        return 0  # other samples altogether
    n = benchmark.num_samples
    pre_train, _ = split_indices(n, float(record["global_test_fraction"]), int(record["seed"]))
    _, run_test = split_indices(n, global_test_fraction, seed)
    return len(set(pre_train.tolist()) & set(run_test.tolist()))


def check_no_test_leak(record: Mapping[str, Any] | None, benchmark: BenchmarkConfig, seed: int,
                       global_test_fraction: float, path: str) -> None:
    """Refuse a pretrained checkpoint that trained on this run's global test samples."""
    if record is None:
        return
    seen = seen_test_samples(record, benchmark, seed, global_test_fraction)
    if seen:
        raise ValueError(
            f"pretrained={path!r} was trained on {seen} samples of this run's global test set (it was pretrained "
            f"with seed={record['seed']}, data.global_test_fraction={record['global_test_fraction']}; this run has "
            f"seed={seed}, data.global_test_fraction={global_test_fraction}); pretrain with this run's seed and "
            "data settings, or run with the checkpoint's"
        )
