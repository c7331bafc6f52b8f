"""Per-round evaluation at each tier.

- ``device/``: each device's own model (its edge's modules + its personal ones) on its held-out data;
- ``global/``: the same models on ``federation.eval_device_samples`` of the global test sample (a seeded
  sub-sample, the same for every device and round), restricted to each device's modalities and tasks (how
  well what a device holds generalizes beyond its skewed labels; the headline accuracy);
- ``edge/``: each edge's (or in star mode the cloud's) modules on the whole global test sample, and with
  one modality at a time (``edge/<task>/acc@<modality>``). Not reported in local mode.

Every tier uses one seeded sample of the global test set (``federation.eval_samples``), and all the
round's models are evaluated together in packed passes (`hffm.engine.packed_eval`) when
``federation.batched`` is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from lightning.fabric import Fabric

from hffm.data.dataset import M3TDataset
from hffm.engine.batched_eval import EvalJob, evaluate_jobs
from hffm.federation.config import FederationConfig
from hffm.federation.distributed import gather, shard
from hffm.federation.policy import Mode, TierPolicy
from hffm.federation.state import FederationState
from hffm.federation.world import World


def weighted_mean(results: Sequence[tuple[dict[str, float], float]]) -> dict[str, float]:
    """Average metric dicts key by key, weighting each by its sample count, over those that have the key."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for metrics, w in results:
        for key, value in metrics.items():
            sums[key] = sums.get(key, 0.0) + w * value
            weights[key] = weights.get(key, 0.0) + w
    return {k: sums[k] / weights[k] for k in sorted(sums) if weights[k] > 0}


@dataclass(frozen=True)
class RoundJobs:
    """One evaluation round's jobs on this rank, per tier, with the weights its metrics are averaged by."""

    device: list[EvalJob]
    """Each evaluated device's model on its own test data (weight: its test samples)."""
    device_weights: list[float]
    global_: list[EvalJob]
    """The same models on the global sample through their modalities and tasks (weight: samples seen)."""
    global_weights: list[float]
    edge: list[EvalJob]
    """Per evaluated edge (or the cloud in star mode): all modalities, then each modality alone."""
    per_edge: int
    """Jobs an edge has in ``edge`` (1 + the modalities that solve a task alone)."""
    single: tuple[str, ...]
    """The modalities of an edge's single-modality jobs, in order."""

    def all(self) -> list[EvalJob]:
        return self.device + self.global_ + self.edge

    def tiers(self) -> dict[str, list[EvalJob]]:
        return {"device": self.device, "global": self.global_, "edge": self.edge}


def evaluation_jobs(world: World, state: FederationState, cfg: FederationConfig, policy: TierPolicy,
                    group_of: np.ndarray, fabric: Fabric) -> RoundJobs:
    """This rank's evaluation jobs of a round: which model runs on which data, restricted to what."""
    sample = world.global_sample(cfg.eval_samples)
    seen = world.device_sample(cfg.eval_device_samples, cfg.eval_samples)
    devices = shard(list(world.eval_devices), fabric)
    device_jobs, device_weights, global_jobs, global_weights = [], [], [], []
    for device in devices:  # each device's model on its own test data ...
        states = state.device_states(int(group_of[device]), device)
        test = world.test[device]
        device_jobs.append(EvalJob(states, tuple(test.modality_names), tuple(test.task_names), test))
        device_weights.append(float(len(test)))
        # ... and on the global sample, through its modalities and tasks
        mods, tasks = tuple(world.parts[device].modalities), tuple(world.parts[device].tasks)
        global_jobs.append(EvalJob(states, _ordered(seen.modality_names, mods), _ordered(seen.task_names, tasks),
                                   seen, restrict=True))
        global_weights.append(float(_seen(seen, mods).sum()))
    single = _single_modality_tasks(sample)
    edge_jobs = []
    if policy.mode != Mode.local:
        groups = list(range(len(state.group_states)))
        if len(groups) > len(world.eval_edges):  # star mode has one group; otherwise the sampled edges
            groups = list(world.eval_edges)
        for group in shard(groups, fabric):
            states = state.group_states[group]
            edge_jobs.append(EvalJob(states, tuple(sample.modality_names), tuple(sample.task_names), sample))
            edge_jobs += [EvalJob(states, (m,), tasks, sample, restrict=True) for m, tasks in single.items()]
    return RoundJobs(device_jobs, device_weights, global_jobs, global_weights, edge_jobs, len(single) + 1,
                     tuple(single))


def evaluate_round(
    fabric: Fabric, world: World, state: FederationState, cfg: FederationConfig, policy: TierPolicy,
    group_of: np.ndarray,
) -> dict[str, float]:
    """Metrics of every tier on the same seeded sample of the global test set (``cfg.eval_samples``)."""
    jobs = evaluation_jobs(world, state, cfg, policy, group_of, fabric)
    metrics = evaluate_jobs(fabric, world.bank, jobs.all(), cfg.batched, cfg.max_batch_devices)
    n, g = len(jobs.device), len(jobs.global_)
    out = _prefixed("device/", weighted_mean(gather(list(zip(metrics[:n], jobs.device_weights)), fabric)))
    out |= _prefixed("global/", weighted_mean(gather(list(zip(metrics[n:n + g], jobs.global_weights)), fabric)))
    if policy.mode != Mode.local:
        edge_metrics = metrics[n + g:]
        mine_edge = []
        for start in range(0, len(edge_metrics), jobs.per_edge):
            merged = dict(edge_metrics[start])
            for modality, one in zip(jobs.single, edge_metrics[start + 1:start + jobs.per_edge]):
                merged |= {f"{k}@{modality}": v for k, v in one.items()}
            mine_edge.append((merged, 1.0))
        out |= _prefixed("edge/", weighted_mean(gather(mine_edge, fabric)))
    out |= _headline(out)
    return out


def _ordered(order: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
    return tuple(n for n in order if n in set(names))


def _seen(data: M3TDataset, modalities: Sequence[str]) -> np.ndarray:
    """Bool per sample: at least one of ``modalities`` is present."""
    keep = np.zeros(len(data), dtype=bool)
    for m in modalities:
        keep |= data.present[m].numpy().astype(bool)
    return keep


def _single_modality_tasks(data: M3TDataset) -> dict[str, tuple[str, ...]]:
    """For each modality, the tasks it can solve alone (the edge tier's ``<task>/acc@<modality>``)."""
    out = {}
    for m in data.modality_names:
        tasks = tuple(t for t in data.task_names if m in data.task_modalities[t])
        if tasks:
            out[m] = tasks
    return out


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {prefix + k: v for k, v in metrics.items()}


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    """One accuracy to compare methods by: the mean over classification tasks of ``global/<task>/acc``."""
    accs = [v for k, v in metrics.items() if k.startswith("global/") and k.endswith("/acc")]
    return {"accuracy": float(np.mean(accs))} if accs else {}
