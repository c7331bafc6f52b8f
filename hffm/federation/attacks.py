"""What an attacker does, one record per attack (``ATTACKS``), chosen once by ``faults.attack``.

An attack either replaces what the device sends for a module (``send``: model poisoning, applied by
``fault_steps.send`` before screening) or poisons the device's training data (``data``: applied through the
loop's trainer seam by ``poisoned_trainer``). Updates are written as deltas from the state the device
received: ``delta`` = trained - received; ``honest`` = the deltas of the honest holders of the same module
at the same edge this round (what an omniscient attacker, as in ALIE and IPM, is assumed to know).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from hffm.lazy import LazyModule

if TYPE_CHECKING:
    import torch

    from hffm.data.dataset import M3TDataset
else:
    torch = LazyModule("torch")

if TYPE_CHECKING:
    from lightning.fabric import Fabric

    from hffm.engine.jobs import LocalConfig, Trainer, TrainResult
    from hffm.modules.bank import ModuleBank

Delta: TypeAlias = "dict[str, torch.Tensor]"
Send: TypeAlias = "Callable[[Delta, Sequence[Delta], float, torch.Generator | None], Delta | float]"
"""(own delta, honest deltas, strength, generator) -> the delta sent, or a float to fill every value with."""


def _mean(deltas: Sequence[Delta], fallback: Delta) -> Delta:
    if not deltas:
        return fallback
    return {k: torch.stack([d[k] for d in deltas]).mean(0) for k in fallback}


def _random(delta: Delta, honest: Sequence[Delta], s: float, generator: torch.Generator | None) -> Delta:
    noise = {k: torch.randn(d.shape, generator=generator, dtype=torch.float64) for k, d in delta.items()}
    size = math.sqrt(sum(float((d**2).sum()) for d in delta.values())) or 1.0
    norm = math.sqrt(sum(float((n**2).sum()) for n in noise.values())) or 1.0
    return {k: n * (s * size / norm) for k, n in noise.items()}


def _alie(delta: Delta, honest: Sequence[Delta], z: float, generator: torch.Generator | None) -> Delta:
    """A little is enough (Baruch et al. 2019): the honest mean shifted by z standard deviations per coordinate,
    small enough to hide among honest updates (with fewer than two honest holders: its own delta as the mean)."""
    pool = list(honest) or [delta]
    mean = _mean(pool, delta)
    if len(pool) < 2:
        return mean
    std = {k: torch.stack([d[k] for d in pool]).std(0) for k in delta}
    return {k: mean[k] - z * std[k] for k in delta}


def _ipm(delta: Delta, honest: Sequence[Delta], eps: float, generator: torch.Generator | None) -> Delta:
    """Inner-product manipulation (Xie et al. 2020): -eps x the honest mean update, small and inside any norm bound."""
    mean = _mean(honest, delta)
    return {k: -eps * v for k, v in mean.items()}


@dataclass(frozen=True)
class Attack:
    """One attack: what it sends (``send``) or whether it poisons the training data (``flips_labels``), and the
    faults field holding its strength."""

    name: str
    strength: str | None
    send: Send | None = None
    flips_labels: bool = False
    misreports: bool = False
    """With validation by held classes: reports, per task, all of its share on the class it trains on least
    (``hffm.federation.validation.reported_shares``), so that it is judged on samples its update barely moves."""
    doc: str = ""


ATTACKS: dict[str, Attack] = {a.name: a for a in (
    Attack("none", None, doc="honest"),
    Attack("nan", None, lambda d, h, s, g: math.nan, doc="every value NaN"),
    Attack("inf", None, lambda d, h, s, g: math.inf, doc="every value +Inf"),
    Attack("scale", "attack_scale", lambda d, h, s, g: {k: s * v for k, v in d.items()}, doc="received + s x delta"),
    Attack("signflip", "attack_scale", lambda d, h, s, g: {k: -s * v for k, v in d.items()},
           doc="received - s x delta"),
    Attack("random", "attack_scale", _random, doc="received + a random direction of norm s x |delta|"),
    Attack("alie", "alie_z", _alie, doc="received + honest mean - z x honest std (per coordinate)"),
    Attack("ipm", "ipm_epsilon", _ipm, doc="received - epsilon x honest mean"),
    Attack("labelflip", None, flips_labels=True, doc="trains on flipped labels (class c -> C - 1 - c)"),
    Attack("labelflip_misreport", None, flips_labels=True, misreports=True,
           doc="trains on flipped labels and reports its class shares all on the class it trains on least"),
)}
"""faults.attack -> its record."""


def attack_of(name: str) -> Attack:
    if name not in ATTACKS:
        raise ValueError(f"faults.attack={name!r}: choose one of {list(ATTACKS)}")
    return ATTACKS[name]


def floating_delta(trained: Mapping[str, torch.Tensor], received: Mapping[str, torch.Tensor]) -> Delta:
    return {k: trained[k].to(torch.float64) - received[k].to(torch.float64)
            for k, v in trained.items() if v.is_floating_point()}


def attack_state(
    kind: str, trained: Mapping[str, torch.Tensor], received: Mapping[str, torch.Tensor], strength: float,
    generator: torch.Generator | None = None, honest: Sequence[Delta] = (),
) -> dict[str, torch.Tensor]:
    """What an attacker sends for one module instead of ``trained`` (``received``: the state it started from).
    Counters and indices (non-floating tensors) pass unchanged; data attacks send what they trained."""
    attack = attack_of(kind)
    if attack.send is None:
        return {k: v.clone() for k, v in trained.items()}
    sent = attack.send(floating_delta(trained, received), honest, strength, generator)
    if isinstance(sent, float):
        return {k: torch.full_like(v, sent) if v.is_floating_point() else v.clone() for k, v in trained.items()}
    return {k: (received[k].to(torch.float64) + sent[k]).to(trained[k].dtype) if k in sent else trained[k].clone()
            for k in trained}


def flip_labels(data: M3TDataset) -> M3TDataset:
    """The same samples with every classification label c of C classes replaced by C - 1 - c."""
    from hffm.data.dataset import M3TDataset  # torch's Dataset: only when one is made
    targets = dict(data.targets)
    for task in data.tasks:
        if task.kind == "classification" and task.num_classes:
            targets[task.name] = task.num_classes - 1 - data.targets[task.name]
    return M3TDataset(data.inputs, data.present, targets, data.modalities, data.tasks, data.task_modalities,
                      data.vocab, data.extras)


def poisoned_trainer(trainer: Trainer, attackers: Collection[int]) -> Trainer:
    """``trainer`` with the attackers' jobs training on flipped labels (the data-poisoning seam)."""
    from hffm.engine.jobs import DeviceJob  # the engine (and lightning) only when an attack trains

    bad = frozenset(attackers)

    def train(fabric: Fabric, bank: ModuleBank, jobs: Sequence[DeviceJob], local: LocalConfig) -> list[TrainResult]:
        jobs = [DeviceJob(j.device, flip_labels(j.data), j.states, j.trainable, j.seed) if j.device in bad else j
                for j in jobs]
        return trainer(fabric, bank, jobs, local)

    train.__name__ = f"labelflip({getattr(trainer, '__name__', 'trainer')})"
    return train
