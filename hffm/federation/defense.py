"""Defenses between screening and aggregation, built for few holders per module.

An edge often sees one to four holders of a module, too few for a median or Krum to outvote anyone. So the
defense judges each update against the **consensus of the whole wave** (the devices trained together, across
edges; the cloud would gather it as per-module sketches from its edges): per module, the coordinate-wise
median of every holder's delta (its direction) and the median delta norm (its scale).

1. **Direction**: an update whose cosine with the consensus direction is below ``min_cosine`` is dropped: sign
   flipping, inner-product manipulation, most label flipping.
2. **Scale**: each update is clipped around its aggregator's state (centered clipping) to ``clip_factor`` x the
   consensus norm: scaling and ALIE-style shifts move a module at most that far. An update above
   ``reject_factor`` x the consensus norm is refused outright (one device sending x1e6 moves nothing).

With fewer than 3 holders in the wave the consensus is not trusted: no direction check, and the scale is the
tier's last trusted median for the module (``DefenseMemory``, checkpointed with the state) or else the wave's
median per-coordinate update size over all modules x sqrt(the module's size). The cloud runs the same function
with the edges as holders. Measured, not assumed: the module's own last change (its trend across rounds) is a
poor reference with our optimizer: honest Adam updates often point against the previous round's change (see
docs/faults-and-security.md).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hffm.federation.aggregate import ModuleUpdate, StateDict, update_norm, update_norms
from hffm.federation.agreement import (
    direction_evidence,
    distrusted,
    leave_one_out_terms,
    pooled_cosines,
    scale_outliers,
    update_trust,
)
from hffm.federation.screening import Rejection
from hffm.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

MIN_HOLDERS = 3
"""With at least this many holders in the wave, its median (direction, norm) is trusted."""


@dataclass
class DefenseConfig:
    """The ``defense`` config group (conf/defense/*.yaml): none, screen or robust (see docs/faults-and-security.md).

    Each option is a record of the fields below; the code reads the fields, never the name."""

    name: str = "robust"
    """The option's name (for logs and tables only). The defaults are conf/defense/robust.yaml's (the default)."""
    clip_factor: float | None = 2.0
    """Clip each update (around the aggregator's state) to this x the median honest update norm; null: no clip."""
    min_cosine: float | None = None
    """Drop an update whose cosine with the module's trend is below this (in [-1, 1]); null: no direction check."""
    reject_factor: float | None = 100.0
    """Refuse an update whose norm exceeds this x the median update norm; null: no such screen."""
    min_trust: float | None = -0.25
    """Distrust a device whose trust (``hffm.federation.agreement``: its agreement with the wave's consensus over all
    its modules, across rounds) is below this (in [-1, 1]): its updates count at ``distrusted_weight``; null: no
    trust."""
    distrusted_weight: float = 0.25
    """With trust: the weight of a distrusted device's updates in the aggregation rule, as a share of its sample
    count (in [0, 1)), so a wrongly distrusted honest device still teaches a little. 0: left out. A device whose
    norm is off by more than ``norm_band`` this round is left out whatever this is."""
    trust_decay: float = 0.6
    """How much of a device's trust carries over to the next round (in [0, 1); 0: this round's evidence alone)."""
    norm_band: float | None = 2.0
    """With trust: a device whose median update norm (relative to each module's median) lies outside
    [1 / norm_band, norm_band] has evidence -1 for the round (>= 1); null: no such check."""
    validation_samples: int = 64
    """With trust: the size of the aggregator's own labelled validation set (``hffm.federation.validation``: fresh
    benchmark samples no device holds); each round a device's evidence is at most how well its updates teach its
    model the validation labels beyond a class-prior shift (catches label flipping). 0: off."""
    validation_fallback: bool = True
    """With validation, when the run's data has no server validation set (a ``data.source`` without a generator):
    true: warn, naming how to provide one, and judge devices by agreement alone; false: refuse to start."""
    validation_spread: float = 1.5
    """With validation: a device's validation evidence is 0 at this many median absolute deviations below the
    wave's median score, -1 at twice that (> 0; larger: more lenient, fewer honest devices left out)."""
    validation_by_task: bool = False
    """With validation: compare each task's score with the devices that train that task (true), or a device's
    score averaged over its tasks with every device's (false)."""
    validation_classes: str = "checked"
    """With validation: score a device on every validation sample of its tasks (all), or each class's samples
    weighted by the device's share of that class among the labels it trains on, as it reports them (held), or as
    its update's class-prior shift shows them (inferred: no report to misreport), or as reported unless the report
    and the shift disagree by more than ``validation_check`` (checked, the default: the shift's shares then; an
    honest report is kept, one that hides the labels the update trains on is not)."""
    validation_check: float = 0.99
    """With validation_classes=checked: the total-variation distance (in (0, 1]) between a device's reported and
    inferred shares of a task beyond which its report is overruled."""
    validation_scope: str = "device"
    """With validation: what a low validation score leaves out. device: the score (over the device's tasks) feeds
    the device's trust, and a distrusted device loses every update; task: each task's score feeds a trust of its
    own (device and task), and a device distrusted on a task loses only that task's modules (``head/<task>``,
    ``prompt/<task>``), its trust for the rest coming from agreement alone; both: as task, and the mean of its
    tasks' evidence also feeds the device's trust (a device bad on one task of several keeps its other modules,
    one bad on all of them loses every update)."""

    def __post_init__(self) -> None:
        problems = []
        for key in ("clip_factor", "reject_factor"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, (int, float)) and 1.0 <= value < math.inf):
                problems.append(f"defense.{key}={value}: must be >= 1 and finite, or null (off)")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            problems.append(f"defense.min_cosine={self.min_cosine}: must be in [-1, 1], or null (off)")
        if self.min_trust is not None and not -1.0 <= self.min_trust <= 1.0:
            problems.append(f"defense.min_trust={self.min_trust}: must be in [-1, 1], or null (off)")
        if not (isinstance(self.distrusted_weight, (int, float)) and 0.0 <= self.distrusted_weight < 1.0):
            problems.append(f"defense.distrusted_weight={self.distrusted_weight}: must be in [0, 1) (0: left out)")
        if not (isinstance(self.trust_decay, (int, float)) and 0.0 <= self.trust_decay < 1.0):
            problems.append(f"defense.trust_decay={self.trust_decay}: must be in [0, 1)")
        if self.norm_band is not None and not (isinstance(self.norm_band, (int, float)) and 1.0 <= self.norm_band
                                               < math.inf):
            problems.append(f"defense.norm_band={self.norm_band}: must be >= 1 and finite, or null (off)")
        if self.norm_band is not None and self.min_trust is None:
            problems.append(f"defense.norm_band={self.norm_band} needs defense.min_trust (the scale check feeds the "
                            "trust): set min_trust, or norm_band=null")
        if not (isinstance(self.validation_samples, int) and 0 <= self.validation_samples <= 1_000_000):
            problems.append(f"defense.validation_samples={self.validation_samples}: must be an integer in "
                            "[0, 1000000] (0: off)")
        elif self.validation_samples and self.min_trust is None:
            problems.append(f"defense.validation_samples={self.validation_samples} needs defense.min_trust (the "
                            "validation evidence feeds the trust): set min_trust, or validation_samples=0")
        if self.validation_by_task and not self.validation_samples:
            problems.append("defense.validation_by_task=true needs defense.validation_samples > 0 (it compares "
                            "validation scores task by task): set validation_samples, or validation_by_task=false")
        if self.validation_classes not in ("all", "held", "inferred", "checked"):
            problems.append(f"defense.validation_classes={self.validation_classes!r}: must be 'all', 'held', "
                            "'inferred' or 'checked'")
        if not (isinstance(self.validation_check, (int, float)) and 0.0 < self.validation_check <= 1.0):
            problems.append(f"defense.validation_check={self.validation_check}: must be in (0, 1] (a total-variation "
                            "distance)")
        if self.validation_scope not in ("device", "task", "both"):
            problems.append(f"defense.validation_scope={self.validation_scope!r}: must be 'device', 'task' or 'both'")
        if not (isinstance(self.validation_spread, (int, float)) and 0.0 < self.validation_spread < math.inf):
            problems.append(f"defense.validation_spread={self.validation_spread}: must be > 0 and finite")
        if problems:
            raise ValueError("invalid defense config:\n  " + "\n  ".join(problems))

    @classmethod
    def off(cls) -> DefenseConfig:
        """conf/defense/none.yaml: every screened update goes to the rule as sent."""
        return cls(name="none", clip_factor=None, min_cosine=None, reject_factor=None, min_trust=None, norm_band=None,
                   validation_samples=0, validation_fallback=False)

    @classmethod
    def screen(cls) -> DefenseConfig:
        """conf/defense/screen.yaml: only the adaptive screen (refuse an update 100 x the median update norm)."""
        return cls(name="screen", clip_factor=None, min_cosine=None, reject_factor=100.0, min_trust=None,
                   norm_band=None, validation_samples=0, validation_fallback=False)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.clip_factor, self.min_cosine, self.reject_factor, self.min_trust))


@dataclass
class DefenseMemory:
    """What the defense remembers across rounds: each tier's last trusted median update norm per module."""

    scale: dict[str, float] = field(default_factory=dict)
    """'<tier>/<module>' -> the median update norm of the tier's last wave with 3+ holders of the module;
    '<tier>/*' -> the median per-coordinate update size (norm / sqrt(numel)) of its last wave, over all modules."""
    trust: dict[int, float] = field(default_factory=dict)
    """Device -> its trust after the last round it took part in (``hffm.federation.agreement``)."""
    task_trust: dict[str, float] = field(default_factory=dict)
    """'<device>/<task>' -> the device's trust on that task (``defense.validation_scope=task``)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scale": self.scale, "trust": {str(k): v for k, v in self.trust.items()}}
        return out | ({"task_trust": dict(self.task_trust)} if self.task_trust else {})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DefenseMemory:
        d = d or {}
        return cls(scale=dict(d.get("scale", {})), trust={int(k): float(v) for k, v in d.get("trust", {}).items()},
                   task_trust={str(k): float(v) for k, v in d.get("task_trust", {}).items()})


@dataclass(frozen=True)
class Consensus:
    """One module's consensus over a wave's holders: the coordinate-wise median delta (only with a direction check,
    ``defense.min_cosine``) and the median norm."""

    direction: dict[str, torch.Tensor] | None
    norm: float | None
    holders: int
    norms: Mapping[tuple[int, int], float] = field(default_factory=dict)
    """The update norms ``consensus`` computed, by (node, id of the update's state): `defend` reads them back."""


@dataclass(frozen=True)
class Defended:
    """The updates that go on to the rule (clipped where needed), and the ones the defense dropped."""

    kept: list[ModuleUpdate]
    dropped: list[Rejection]
    clipped: int
    damped: int = 0
    """Kept updates of distrusted devices, weighted by ``defense.distrusted_weight``."""


class Untrusted(dict[int, float]):
    """``judge_devices``' answer: device -> trust for every device left out of the round, and ``dampable``: those
    left out for their trust alone (not a scale outlier this round), whose updates ``defense.distrusted_weight``
    may keep at a reduced weight. A plain dict passed to ``defend`` dampens nobody."""

    def __init__(self, trust: Mapping[int, float], dampable: frozenset[int] = frozenset()) -> None:
        super().__init__(trust)
        self.dampable = dampable


def _delta(state: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: state[k].to(torch.float64) - ref[k].to(torch.float64) for k in ref if ref[k].is_floating_point()}


def _dot(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    return float(sum(float((a[k] * b[k]).sum()) for k in a))


def _cosine(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float | None:
    na, nb = math.sqrt(_dot(a, a)), math.sqrt(_dot(b, b))
    if not (na > 0 and nb > 0 and math.isfinite(na * nb)):
        return None
    return _dot(a, b) / (na * nb)


def consensus(
    batches: Sequence[tuple[Sequence[ModuleUpdate], Mapping[str, StateDict]]], cfg: DefenseConfig,
    memory: DefenseMemory, tier: str,
) -> dict[str, Consensus]:
    """Module -> its consensus over every update of ``batches`` (each a list of updates and the state of their
    aggregator, which deltas are taken from); updates ``memory``'s trusted scale."""
    if not cfg.active:
        return {}
    directed = cfg.min_cosine is not None  # only the direction check reads the coordinate-wise median
    deltas: dict[str, list[dict[str, torch.Tensor]]] = {}
    norms: dict[str, list[float]] = {}
    known: dict[tuple[int, int], float] = {}
    sizes: dict[str, int] = {}
    sent = [(u, reference[u.module]) for updates, reference in batches for u in updates]
    for norm, (u, ref) in zip(update_norms([(u.state, ref) for u, ref in sent]), sent):
        if directed:
            deltas.setdefault(u.module, []).append(_delta(u.state, ref))
        known[u.node, id(u.state)] = norm
        norms.setdefault(u.module, []).append(norm)
        if u.module not in sizes:
            sizes[u.module] = sum(v.numel() for v in ref.values() if v.is_floating_point()) or 1
    # Adam-like steps move every coordinate about alike, so the per-coordinate size (norm / sqrt(numel)) of the
    # wave's updates, over all modules, bounds a module with too few holders of its own.
    rms = [n / math.sqrt(sizes[m]) for m, ns in norms.items() for n in ns]
    if len(rms) >= MIN_HOLDERS:
        memory.scale[f"{tier}/*"] = statistics.median(rms)
    wave_rms = memory.scale.get(f"{tier}/*")
    out = {}
    for module, ns in norms.items():
        key = f"{tier}/{module}"
        if len(ns) >= MIN_HOLDERS:
            ds = deltas.get(module)
            direction = {k: torch.stack([d[k] for d in ds]).quantile(0.5, dim=0) for k in ds[0]} if ds else None
            memory.scale[key] = statistics.median(ns)
            out[module] = Consensus(direction, memory.scale[key], len(ns), known)
        else:
            fallback = wave_rms * math.sqrt(sizes[module]) if wave_rms is not None else None
            out[module] = Consensus(None, memory.scale.get(key, fallback), len(ns), known)
    return out


def judge_devices(
    batches: Sequence[tuple[Sequence[ModuleUpdate], Mapping[str, StateDict]]], cfg: DefenseConfig,
    agreed: Mapping[str, Consensus], memory: DefenseMemory, validated: Mapping[int, float] | None = None,
) -> dict[int, float]:
    """Update each sending device's trust in ``memory`` from its updates in ``batches`` (as for ``consensus``);
    returns device -> trust for the devices below ``defense.min_trust`` (none when trust is off). ``validated``:
    device -> its validation evidence (``hffm.federation.validation``); a device's evidence is the lower of it and
    its direction evidence.

    Scale first: a device far from the typical norm gets evidence -1, is left out this round whatever its trust,
    and stays out of the direction reference, so a crowd of x10 updates cannot drag the median the honest devices
    are judged by."""
    if cfg.min_trust is None:
        return Untrusted({})
    ratios: dict[str, dict[int, float]] = {}
    for updates, reference in batches:
        for u in updates:
            agree = agreed.get(u.module)
            if agree is not None and agree.norm is not None and agree.norm > 0:
                norm = agree.norms.get((u.node, id(u.state)))  # consensus took it already
                norm = update_norm(u.state, reference[u.module]) if norm is None else norm
                ratios.setdefault(u.module, {})[u.node] = norm / agree.norm
    outliers = scale_outliers(ratios, cfg.norm_band) if cfg.norm_band is not None else set()
    flat: dict[str, dict[int, torch.Tensor]] = {}
    for updates, reference in batches:
        for u in updates:
            if u.node not in outliers:
                delta = _delta(u.state, reference[u.module])
                flat.setdefault(u.module, {})[u.node] = torch.cat([v.flatten() for _, v in sorted(delta.items())])
    terms = {m: dict(zip(by_node, leave_one_out_terms(torch.stack(list(by_node.values())))))
             for m, by_node in flat.items() if len(by_node) >= MIN_HOLDERS}
    evidence = direction_evidence(pooled_cosines(terms))
    for node, e in (validated or {}).items():
        evidence[node] = min(e, evidence.get(node, 1.0))
    evidence |= dict.fromkeys(outliers, -1.0)
    memory.trust = update_trust(memory.trust, evidence, cfg.trust_decay)
    senders = frozenset(u.node for updates, _ in batches for u in updates)
    # A scale outlier is left out this round whatever its trust: a slow trust must not let x10 or IPM updates in.
    low = distrusted(memory.trust, senders, cfg.min_trust)
    return Untrusted(dict(sorted((low | {n: memory.trust[n] for n in outliers & senders}).items())),
                     frozenset(low) - outliers)


def judge_tasks(
    batches: Sequence[tuple[Sequence[ModuleUpdate], Mapping[str, StateDict]]], cfg: DefenseConfig,
    memory: DefenseMemory, evidence: Mapping[tuple[int, str], float], task_of: Callable[[str], str | None],
) -> dict[tuple[int, str], float]:
    """``defense.validation_scope=task``: update each (device, task)'s trust in ``memory`` from ``evidence``
    (``hffm.federation.validation.pair_evidence``); returns (device, module) -> the device's trust on the
    module's task (``task_of``: a module's task, None for modules of no task) for every update of ``batches``
    whose task trust is below ``defense.min_trust``: those updates alone are left out (``defend``)."""
    if cfg.min_trust is None:
        return {}
    memory.task_trust = update_trust(memory.task_trust, {f"{d}/{t}": e for (d, t), e in evidence.items()},
                                     cfg.trust_decay)
    out = {}
    for updates, _ in batches:
        for u in updates:
            task = task_of(u.module)
            trust = memory.task_trust.get(f"{u.node}/{task}") if task is not None else None
            if trust is not None and trust < cfg.min_trust:
                out[u.node, u.module] = trust
    return out


def defend(
    updates: Sequence[ModuleUpdate], reference: Mapping[str, StateDict], cfg: DefenseConfig,
    agreed: Mapping[str, Consensus], untrusted: Mapping[int, float] | None = None,
    untrusted_tasks: Mapping[tuple[int, str], float] | None = None,
) -> Defended:
    """Judge one aggregator's updates (``reference``: its module states) against the wave's consensus
    (``consensus``); ``untrusted`` (``judge_devices``): nodes whose every update is left out, but for its
    ``dampable`` nodes (an ``Untrusted``), whose updates go on at ``defense.distrusted_weight`` of their sample
    weight; ``untrusted_tasks``
    (``judge_tasks``): (node, module) pairs left out for the node's trust on the module's task. Non-finite and
    misshapen updates must be screened out first."""
    if not cfg.active:
        return Defended(list(updates), [], 0)
    kept: list[ModuleUpdate] = []
    dropped: list[Rejection] = []
    clipped = damped = 0
    untrusted, untrusted_tasks = untrusted or {}, untrusted_tasks or {}
    dampable: frozenset[int] = frozenset()
    if cfg.distrusted_weight > 0 and isinstance(untrusted, Untrusted):
        dampable = untrusted.dampable
    for u in updates:
        if u.node in untrusted and u.node not in dampable:
            dropped.append(Rejection(u.node, u.module, "defense: distrusted device",
                                     f"trust {untrusted[u.node]:.2f} < defense.min_trust={cfg.min_trust:g}"))
            continue
        if (u.node, u.module) in untrusted_tasks:
            dropped.append(Rejection(u.node, u.module, "defense: distrusted on the module's task",
                                     f"task trust {untrusted_tasks[u.node, u.module]:.2f} < "
                                     f"defense.min_trust={cfg.min_trust:g}"))
            continue
        ref, agree = reference[u.module], agreed.get(u.module, Consensus(None, None, 0))
        norm = agree.norms.get((u.node, id(u.state)))
        norm, base = update_norm(u.state, ref) if norm is None else norm, agree.norm
        if cfg.reject_factor is not None and base is not None and base > 0 and norm > cfg.reject_factor * base:
            dropped.append(Rejection(u.node, u.module, "defense: norm far above the median",
                                     f"{norm:.3g} > defense.reject_factor={cfg.reject_factor:g} x {base:.3g}"))
            continue
        delta = _delta(u.state, ref) if cfg.min_cosine is not None or cfg.clip_factor is not None else {}
        if cfg.min_cosine is not None and agree.direction is not None:
            cos = _cosine(delta, agree.direction)
            if cos is not None and cos < cfg.min_cosine:
                dropped.append(Rejection(u.node, u.module, "defense: against the consensus",
                                         f"cosine {cos:.2f} < defense.min_cosine={cfg.min_cosine:g}"))
                continue
        if cfg.clip_factor is not None and base is not None and base > 0 and norm > cfg.clip_factor * base:
            factor = cfg.clip_factor * base / norm
            state = {key: (ref[key].to(torch.float64) + delta[key] * factor).to(ref[key].dtype) if key in delta
                     else u.state[key] for key in ref}
            u = ModuleUpdate(u.node, u.module, state, u.num_samples)
            clipped += 1
        if u.node in untrusted:
            u = ModuleUpdate(u.node, u.module, u.state, u.num_samples * cfg.distrusted_weight)
            damped += 1
        kept.append(u)
    return Defended(kept, dropped, clipped, damped)
