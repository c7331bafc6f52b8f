"""Evidence from a server-held validation set: does a device's update teach its model the right labels?

Label flippers send updates that look honest in size and direction (they even agree with each other more than
non-IID honest devices do), so no geometric test of the updates finds them, and a plain validation loss or
accuracy does not either: an honest device with skewed labels also moves the model's class prior away from the
validation set's. What gives flippers away is the input-to-label mapping their updates teach. So the aggregator
keeps a small labelled validation set and, each round, applies every sending device's updates to the state the
device received and measures, on the validation samples of the device's modalities and classification tasks,
how much the log-probability of each sample's true class changed **beyond the shift of the class prior** (the
mean change of each class's log-probability over all samples, which a label-skewed honest device also makes).
Measured on the robustness study's 30 % label-flip run: honest devices score about +0.01 a round, flippers about
-0.015, one round alone ranks a flipper below an honest device 86-93 % of the time (a raw log-likelihood change:
51-66 %, and the cosine with an update trained on the validation set, as FLTrust does: 46-70 %).

The validation set never comes from the devices: with the built-in benchmark it is generated fresh, from the
benchmark's own generator under a seed stream of its own (``server_validation_set``), so it holds samples of the
same distribution that no device and no test set holds. ``defense.validation_samples`` sets its size (0: off).

Evidence (in [-1, 1], for ``hffm.federation.agreement.update_trust``) compares a device with the wave: 1 at or
above the median score, 0 at ``SPREAD`` median absolute deviations below it, -1 at twice that. Two absolute scales
failed in the clean run: evidence proportional to the score, and 0 at minus half the median |score|, each left
out most honest devices (a clean model gains little from any one update, so honest scores sit near 0).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch
    from lightning.fabric import Fabric

    from hffm.data.dataset import M3TDataset
    from hffm.engine.batched_eval import EvalJob
    from hffm.federation.aggregate import ModuleUpdate
    from hffm.federation.defense import DefenseConfig
    from hffm.federation.state import FederationState
    from hffm.federation.world import World
    from hffm.modules.bank import ModuleBank

log = logging.getLogger(__name__)

SPREAD = 1.5
"""Median absolute deviations below the wave's median score at which a device's evidence is 0 (-1 at twice): the
default of ``defense.validation_spread``."""

_STREAM = 0x5A11D
"""Tag of the validation set's seed stream (the world's streams use small tags, the faults' 0xFA17)."""

K = TypeVar("K", int, tuple[int, str])
"""What a score belongs to: a device, or a (device, task) pair (``pair_evidence``)."""



@dataclass(frozen=True)
class Candidate:
    """One device of the wave: the module states it received (its full model), the updates it sent."""

    device: int
    received: Mapping[str, Mapping[str, torch.Tensor]]
    sent: Mapping[str, Mapping[str, torch.Tensor]]
    modalities: tuple[str, ...]
    tasks: tuple[str, ...]
    shares: Mapping[str, np.ndarray] | None = None
    """Task -> the share of each class among the labels the device trained on (``label_shares``); None: unknown."""


def wave_candidates(world: World, state: FederationState, leaving: Sequence[tuple[int, Sequence[ModuleUpdate]]],
                    shares: Mapping[int, Mapping[str, np.ndarray]] | None = None) -> list[Candidate]:
    """The wave's sending devices (``leaving``: (edge group, its screened updates)): what each received (its edge's
    and its personal module states) and what it sent, in device order; ``shares``: device -> its label shares."""
    sent: dict[tuple[int, int], dict[str, Mapping[str, torch.Tensor]]] = {}
    for group, updates in leaving:
        for u in updates:
            sent.setdefault((group, u.node), {})[u.module] = u.state
    return [Candidate(d, state.device_states(g, d), s, tuple(world.parts[d].modalities), tuple(world.parts[d].tasks),
                      None if shares is None else shares.get(d))
            for (g, d), s in sorted(sent.items(), key=lambda kv: kv[0][1])]


def label_shares(data: M3TDataset) -> dict[str, np.ndarray]:
    """Task -> the share of each class among ``data``'s labelled samples (classification tasks with a label)."""
    out = {}
    for task in data.tasks:
        if task.kind != "classification" or not task.num_classes:
            continue
        labels = data.targets[task.name]
        y = labels[labels >= 0].long().numpy()
        if len(y):
            out[task.name] = np.bincount(y, minlength=int(task.num_classes)) / len(y)
    return out


def server_validation_set(benchmark: object, source: str, seed: int, defense: DefenseConfig) -> M3TDataset | None:
    """``defense.validation_samples`` fresh samples of the built-in benchmark, from a seed stream no device's or test
    data uses; None when the option is off. Other data sources have no generator to draw unseen samples from: with
    ``defense.validation_fallback`` a warning says so and names how to provide one (None: agreement alone), else
    the run is refused."""
    from hffm.data.benchmark import BenchmarkConfig, make_benchmark

    samples = defense.validation_samples
    if not samples:
        return None
    if source != "benchmark" or not isinstance(benchmark, BenchmarkConfig):
        missing = (f"defense.validation_samples={samples} needs a server validation set, which only data.source="
                   f"benchmark can draw (a generator of unseen samples); data.source={source!r} has none")
        if not defense.validation_fallback:
            raise ValueError(f"{missing}: set defense.validation_samples=0 (agreement alone)")
        log.warning("defense=%s: %s. Judging devices by their agreement alone, which does not hold label flipping "
                    "(docs/faults-and-security.md). To provide one, run on data.source=benchmark; to choose agreement "
                    "alone without this warning, set defense.validation_samples=0", defense.name, missing)
        return None
    import dataclasses

    stream = int(np.random.SeedSequence([int(seed), _STREAM]).generate_state(1)[0])
    return make_benchmark(dataclasses.replace(benchmark, num_samples=int(samples)), stream)


def reported_shares(world: World, flipped: frozenset[int] = frozenset(), misreported: frozenset[int] = frozenset()
                    ) -> dict[int, dict[str, np.ndarray]]:
    """Device -> ``label_shares`` of the labels it trains on, as it would report them: ``flipped`` devices (the
    label-flipping attackers) report their flipped labels, the ones they train on; ``misreported`` devices report,
    per task, all of their share on the class they train on least (the first such class): the report that judges
    them on the samples their update moves least (the aggregator cannot check a report)."""
    from hffm.federation.attacks import flip_labels

    out = {d: label_shares(flip_labels(data) if d in flipped else data) for d, data in enumerate(world.train)}
    for d in misreported:
        out[d] = {task: np.eye(len(share))[int(np.argmin(share))] for task, share in out[d].items()}
    return out


def validation_scores(
    fabric: Fabric, bank: ModuleBank, candidates: Sequence[Candidate], data: M3TDataset, packed: bool = True,
) -> dict[int, float]:
    """Device -> ``mapping_gain`` of its updates on the validation samples of its modalities and classification
    tasks (devices with no such task or sample are not scored): ``validation_task_scores`` averaged over tasks."""
    return {d: float(np.mean(list(g.values()))) if g else 0.0
            for d, g in validation_task_scores(fabric, bank, candidates, data, packed).items()}


def validation_task_scores(
    fabric: Fabric, bank: ModuleBank, candidates: Sequence[Candidate], data: M3TDataset, packed: bool = True,
    by_class: bool = False, infer_shares: bool = False, check: float | None = None,
    mismatches: dict[int, dict[str, float]] | None = None,
) -> dict[int, dict[str, float]]:
    """Device -> task -> ``task_gains`` of its updates on the validation samples of its modalities and
    classification tasks (devices with no such task or sample are not scored). ``check``, ``mismatches``: as in
    ``task_gains`` (``mismatches``: filled device -> task -> distance).

    Every 'before' (the states a device received; devices that received the same states share one) and 'after'
    (received + sent) model runs in the packed evaluation's passes (`hffm.engine.packed_eval`): a wave's ~80
    small models in a few passes, not one forward pass each. ``packed=False``, or a model packed passes cannot
    run (`batched_unsupported`), scores each model in its own pass (the reference the packed path is tested
    against)."""
    from hffm.engine.batched import batched_unsupported
    from hffm.engine.batched_eval import EvalJob

    jobs: list[EvalJob] = []
    befores: dict[tuple, int] = {}  # devices that received the same states share one 'before' model
    pairs: dict[int, tuple[int, int]] = {}  # device -> (its before job, its after job)
    for c in candidates:
        tasks = tuple(t for t in data.task_names if t in c.tasks and bank.tasks[t].kind == "classification")
        mods = tuple(m for m in data.modality_names if m in c.modalities)
        if not tasks or not _any_present(data, mods):
            continue
        needed = bank.required_modules(list(mods), list(tasks))
        received = (mods, tasks, *(id(c.received[n]) for n in needed))
        if received not in befores:
            befores[received] = len(jobs)
            jobs.append(EvalJob({n: c.received[n] for n in needed}, mods, tasks, data, restrict=True))
        after = {**c.received, **c.sent}
        pairs[c.device] = befores[received], len(jobs)
        jobs.append(EvalJob({n: after[n] for n in needed}, mods, tasks, data, restrict=True))
    if packed and batched_unsupported(bank) is None:
        from hffm.engine.packed_eval import packed_outputs

        outputs = [_joined(chunks) for chunks in packed_outputs(fabric, bank, jobs)]
    else:
        outputs = [_outputs(fabric, bank, job) for job in jobs]
    shares = {c.device: c.shares if by_class else None for c in candidates}
    out = {}
    for d, (b, a) in pairs.items():
        seen: dict[str, float] | None = None if mismatches is None else mismatches.setdefault(d, {})
        out[d] = task_gains(outputs[b][0], outputs[a][0], outputs[b][1], shares[d], infer_shares, check, seen)
    return out


def mapping_gain(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
                 targets: Mapping[str, torch.Tensor]) -> float:
    """Mean over tasks of the change in each labelled sample's true-class log-probability, less its class's
    prior shift (the mean change of that class's log-probability over all the samples): how much better the
    model maps inputs to their labels, whatever the update did to the class prior. Labels < 0 are missing."""
    gains = task_gains(before, after, targets)
    return float(np.mean(list(gains.values()))) if gains else 0.0


def task_gains(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
               targets: Mapping[str, torch.Tensor], shares: Mapping[str, np.ndarray] | None = None,
               infer_shares: bool = False, check: float | None = None, mismatch: dict[str, float] | None = None,
               ) -> dict[str, float]:
    """Task -> ``mapping_gain`` on that task alone (tasks with no labelled sample left out). ``shares`` (task ->
    the device's label shares): each class's mean gain weighted by the device's share of it, so the device is
    judged on the classes it learns (tasks where it holds no class with a validation sample left out).
    ``infer_shares``: the shares read from the update itself instead of a report: each class's prior shift (its
    mean log-probability change over the samples), where positive, since an update raises the prior of the labels
    it trained on (no shift anywhere: every sample alike). ``check`` (with ``shares``): where the report and the
    inferred shares are further apart than this (``share_mismatch``), the report is overruled and the inferred
    shares score the task: an honest report is kept, one that hides the labels the update trains on is not.
    ``mismatch``: filled task -> that distance (tasks with a report and a shift)."""
    import torch

    gains = {}
    for task, logits in before.items():
        y = targets[task]
        labelled = y >= 0
        if not bool(labelled.any()):
            continue
        change = (torch.log_softmax(after[task][labelled].double(), -1)
                  - torch.log_softmax(logits[labelled].double(), -1))
        shift = change.mean(0, keepdim=True)
        change = change - shift
        own = change.gather(1, y[labelled].long()[:, None])[:, 0]
        share = None if shares is None else shares.get(task)
        raised = shift[0].clamp(min=0.0).numpy()
        inferred = raised if float(raised.sum()) > 0 else None
        if infer_shares:
            share = inferred
        elif share is not None and inferred is not None and (check is not None or mismatch is not None):
            distance = share_mismatch(share, inferred)
            if mismatch is not None:
                mismatch[task] = distance
            if check is not None and distance > check:
                share = inferred
        if share is None:
            gains[task] = float(own.mean())
            continue
        labels = y[labelled].long()
        counts = torch.bincount(labels, minlength=len(share)).double()
        weight = torch.as_tensor(share, dtype=torch.float64)[labels] / counts[labels]
        if float(weight.sum()) > 0:
            gains[task] = float((weight * own).sum() / weight.sum())
    return gains


def share_mismatch(reported: np.ndarray, inferred: np.ndarray) -> float:
    """Total-variation distance in [0, 1] between a reported share vector and an inferred one (non-negative
    weights, normalised here; a zero report counts as uniform): 0 when they agree, 1 when disjoint."""
    p = np.asarray(reported, dtype=np.float64)
    q = np.asarray(inferred, dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else np.full(len(p), 1.0 / len(p))
    q = q / q.sum() if q.sum() > 0 else np.full(len(q), 1.0 / len(q))
    return float(0.5 * np.abs(p - q).sum())


def validation_evidence(scores: Mapping[K, float], spread: float = SPREAD) -> dict[K, float]:
    """Device -> evidence in [-1, 1]: ``1 + (score - median) / (spread x MAD)``, at most 1, at least -1 (MAD: the
    wave's median absolute deviation from the median score): no objection to a device at or above the typical
    score, 0 at ``spread`` MADs below it, -1 at twice that; empty when the wave gives no scale (fewer than 3 devices
    scored, or all scored alike)."""
    if len(scores) < 3:
        return {}
    center = statistics.median(scores.values())
    mad = statistics.median(abs(s - center) for s in scores.values())
    if not mad > 0:
        return {}
    return {d: max(-1.0, min(1.0, 1.0 + (s - center) / (spread * mad))) for d, s in scores.items()}


def task_evidence(scores: Mapping[int, Mapping[str, float]], spread: float = SPREAD, by_task: bool = False
                  ) -> dict[int, float]:
    """Device -> evidence in [-1, 1] from its per-task gains (``validation_task_scores``). ``by_task=False``:
    ``validation_evidence`` of the gains averaged over the device's tasks. ``by_task=True``: each task's gain in
    MADs from the median of the devices that train that task (tasks with fewer than 3 such devices, or all alike,
    give none), averaged over the device's tasks: devices are compared with those that learn the same thing, so a
    device whose tasks are harder or easier to improve is not judged by the others'."""
    if not by_task:
        return validation_evidence({d: float(np.mean(list(g.values()))) if g else 0.0 for d, g in scores.items()},
                                   spread)
    by: dict[str, dict[int, float]] = {}
    for d, gains in scores.items():
        for task, gain in gains.items():
            by.setdefault(task, {})[d] = gain
    deviations: dict[int, list[float]] = {}
    for task_scores in by.values():
        if len(task_scores) < 3:
            continue
        center = statistics.median(task_scores.values())
        mad = statistics.median(abs(g - center) for g in task_scores.values())
        if mad > 0:
            for device, g in task_scores.items():
                deviations.setdefault(device, []).append((g - center) / mad)
    return {d: max(-1.0, min(1.0, 1.0 + float(np.mean(z)) / spread)) for d, z in deviations.items()}


def pair_evidence(scores: Mapping[int, Mapping[str, float]], spread: float = SPREAD, by_task: bool = False
                  ) -> dict[tuple[int, str], float]:
    """(device, task) -> evidence in [-1, 1] from each task's gain alone (``validation_task_scores``), for the
    per-task trust (``defense.validation_scope=task``): ``validation_evidence`` over every (device, task) gain of
    the wave (``by_task=False``), or over the gains of the devices that train the same task (``by_task=True``;
    tasks with fewer than 3 such devices, or all alike, give none)."""
    pairs = {(d, t): g for d, gains in scores.items() for t, g in gains.items()}
    if not by_task:
        return validation_evidence(pairs, spread)
    out: dict[tuple[int, str], float] = {}
    for task in sorted({t for _, t in pairs}):
        out |= validation_evidence({k: g for k, g in pairs.items() if k[1] == task}, spread)
    return out


def _any_present(data: M3TDataset, modalities: tuple[str, ...]) -> bool:
    return any(bool(data.present[m].bool().any()) for m in modalities)


def _joined(chunks: Mapping[str, Sequence[tuple[torch.Tensor, torch.Tensor]]]
            ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(task -> outputs, task -> labels) on the CPU from `packed_outputs`' chunks of one job."""
    import torch

    outs = {t: torch.cat([o for o, _ in c]).cpu() for t, c in chunks.items() if c}
    return outs, {t: torch.cat([y for _, y in c]).cpu() for t, c in chunks.items() if c}


def _outputs(fabric: Fabric, bank: ModuleBank, job: EvalJob) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(task -> logits, task -> labels) of one job's sub-model on the samples showing one of its modalities, in
    one pass of its own."""
    import torch

    from hffm.engine.local import lightning_module

    keep = torch.zeros(len(job.data), dtype=torch.bool)
    for m in job.modalities:
        keep |= job.data.present[m].bool()
    view = job.data.subset(torch.nonzero(keep).flatten().numpy(), modalities=job.modalities, tasks=job.tasks)
    modalities, tasks = list(job.modalities), list(job.tasks)
    bank.load_states({name: job.states[name] for name in bank.required_modules(modalities, tasks)})
    model = lightning_module(bank, modalities, tasks, [], None).model.eval()
    batch = next(iter(view.batches(len(view), shuffle=False)))
    with torch.no_grad():
        outputs, _ = model({m: v.to(fabric.device) for m, v in batch["inputs"].items()},
                           {m: v.to(fabric.device) for m, v in batch["present"].items()})
    return {t: outputs[t].cpu() for t in tasks}, {t: view.targets[t] for t in tasks}
