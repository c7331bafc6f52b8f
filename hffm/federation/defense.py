"""Defenses between screening and aggregation, built for few holders per module.

An edge often sees one to four holders of a module, too few for a median or Krum to outvote anyone. What
the hierarchy does offer is history: the aggregator's own previous state of the module (what the last
rounds agreed on) and the scale of honest updates seen at the whole tier. So each update is judged against

1. **the trend**: its cosine with the module's last change at this aggregator (its state now minus its state
   the last time it aggregated the module, cloud averaging included). Updates pointing against it
   (``min_cosine``) are dropped: sign flipping, inner-product manipulation, most label flipping. Where no
   trend is known yet (first rounds), the coordinate-wise median of the current updates stands in (with 3+
   holders).
2. **the scale**: each update is clipped around the aggregator's state (centered clipping) to ``clip_factor``
   x the round's median update norm (3+ holders), or the tier's last such median (fewer holders): scaling
   and ALIE-style shifts move a module at most that far. An update above ``reject_factor`` x that scale
   is refused outright (one device sending x1e6 cannot move a module at all).

The edge and the cloud (edges as nodes) run the same function. Pure but for ``DefenseMemory``, which the loop
keeps in the federation state (so a resumed run continues with the same history).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from hffm.federation.aggregate import ModuleUpdate, StateDict, update_norm
from hffm.federation.screening import Rejection

MIN_HOLDERS = 3
"""With at least this many holders the round's own median (norm, direction) is trusted."""


@dataclass
class DefenseConfig:
    """The ``defense`` config group (conf/defense/*.yaml): none, screen or robust (see docs/security.md).

    Each option is a record of the fields below; the code reads the fields, never the name."""

    name: str = "robust"
    """The option's name (for logs and tables only)."""
    clip_factor: float | None = 2.0
    """Clip each update (around the aggregator's state) to this x the median honest update norm; null: no clip."""
    min_cosine: float | None = 0.0
    """Drop an update whose cosine with the module's trend is below this (in [-1, 1]); null: no direction check."""
    reject_factor: float | None = 100.0
    """Refuse an update whose norm exceeds this x the median update norm; null: no such screen."""

    def __post_init__(self) -> None:
        problems = []
        for key in ("clip_factor", "reject_factor"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, (int, float)) and 1.0 <= value < math.inf):
                problems.append(f"defense.{key}={value}: must be >= 1 and finite, or null (off)")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            problems.append(f"defense.min_cosine={self.min_cosine}: must be in [-1, 1], or null (off)")
        if problems:
            raise ValueError("invalid defense config:\n  " + "\n  ".join(problems))

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.clip_factor, self.min_cosine, self.reject_factor))


@dataclass
class DefenseMemory:
    """What the defense remembers across rounds: the last state each aggregator held of each module (the
    trend is the change since) and each tier's last median update norm per module."""

    last: dict[str, StateDict] = field(default_factory=dict)
    """'<tier>/<group>/<module>' -> the aggregator's state of the module when it last aggregated it."""
    scale: dict[str, float] = field(default_factory=dict)
    """'<tier>/<module>' -> the median update norm of the tier's last aggregation with 3+ holders."""

    def to_dict(self) -> dict[str, Any]:
        return {"last": self.last, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DefenseMemory:
        return cls(**d) if d else cls()


@dataclass(frozen=True)
class Defended:
    """The updates that go on to the rule (clipped where needed), and the ones the defense dropped."""

    kept: list[ModuleUpdate]
    dropped: list[Rejection]
    clipped: int


def _delta(state: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: state[k].to(torch.float64) - ref[k].to(torch.float64) for k in ref if ref[k].is_floating_point()}


def _dot(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    return float(sum(float((a[k] * b[k]).sum()) for k in a))


def _cosine(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float | None:
    na, nb = math.sqrt(_dot(a, a)), math.sqrt(_dot(b, b))
    if not (na > 0 and nb > 0 and math.isfinite(na * nb)):
        return None
    return _dot(a, b) / (na * nb)


def defend(
    updates: Sequence[ModuleUpdate], reference: Mapping[str, StateDict], cfg: DefenseConfig, memory: DefenseMemory,
    tier: str, group: int,
) -> Defended:
    """Judge one aggregator's updates (``reference``: its module states) against its trend and the tier's scale;
    updates ``memory`` with what this aggregation saw. Non-finite and misshapen updates must be screened first."""
    if not cfg.active:
        return Defended(list(updates), [], 0)
    by_module: dict[str, list[ModuleUpdate]] = {}
    for u in updates:
        by_module.setdefault(u.module, []).append(u)
    kept: list[ModuleUpdate] = []
    dropped: list[Rejection] = []
    clipped = 0
    for module, group_updates in by_module.items():
        ref = reference[module]
        k, d, c = _defend_module(group_updates, ref, cfg, memory, f"{tier}/{module}", f"{tier}/{group}/{module}")
        kept += k
        dropped += d
        clipped += c
    order = {id(u): i for i, u in enumerate(updates)}
    kept.sort(key=lambda u: order.get(id(u), len(order)))
    return Defended(kept, dropped, clipped)


def _defend_module(
    updates: list[ModuleUpdate], ref: StateDict, cfg: DefenseConfig, memory: DefenseMemory, scale_key: str,
    last_key: str,
) -> tuple[list[ModuleUpdate], list[Rejection], int]:
    deltas = [_delta(u.state, ref) for u in updates]
    norms = [update_norm(u.state, ref) for u in updates]
    many = len(updates) >= MIN_HOLDERS
    if many:
        base: float | None = statistics.median(norms)
    else:
        base = memory.scale.get(scale_key, min(norms) if len(norms) > 1 else None)
    trend = None
    last = memory.last.get(last_key)
    if last is not None:
        trend = _delta(ref, last)
        if not any(bool(t.abs().sum() > 0) for t in trend.values()):
            trend = None
    if trend is None and many:
        trend = {key: torch.stack([d[key] for d in deltas]).quantile(0.5, dim=0) for key in deltas[0]}
    memory.last[last_key] = {key: v.clone() for key, v in ref.items()}

    kept: list[ModuleUpdate] = []
    dropped: list[Rejection] = []
    clipped = 0
    kept_norms = []
    for u, delta, norm in zip(updates, deltas, norms):
        if cfg.reject_factor is not None and base is not None and base > 0 and norm > cfg.reject_factor * base:
            dropped.append(Rejection(u.node, u.module, "defense: norm far above the median",
                                     f"{norm:.3g} > defense.reject_factor={cfg.reject_factor:g} x {base:.3g}"))
            continue
        if cfg.min_cosine is not None and trend is not None:
            cos = _cosine(delta, trend)
            if cos is not None and cos < cfg.min_cosine:
                dropped.append(Rejection(u.node, u.module, "defense: against the trend",
                                         f"cosine {cos:.2f} < defense.min_cosine={cfg.min_cosine:g}"))
                continue
        if cfg.clip_factor is not None and base is not None and base > 0 and norm > cfg.clip_factor * base:
            factor = cfg.clip_factor * base / norm
            state = {key: (ref[key].to(torch.float64) + delta[key] * factor).to(ref[key].dtype) if key in delta
                     else u.state[key] for key in ref}
            u = ModuleUpdate(u.node, u.module, state, u.num_samples)
            norm = cfg.clip_factor * base
            clipped += 1
        kept.append(u)
        kept_norms.append(norm)
    if many and kept_norms:
        memory.scale[scale_key] = statistics.median(kept_norms)
    return kept, dropped, clipped
