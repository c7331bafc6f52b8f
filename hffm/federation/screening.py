"""Update screening: what a node sends is checked before any aggregate sees it.

A device can send a NaN (a diverged step, a bit flip), a state of the wrong shape (another model
version) or, if malicious, a huge update. One such update makes every aggregate it enters useless,
and through the cloud every edge's too, so each update is checked against the state the aggregator
holds and rejected alone; the round goes on with the others. Pure functions: the loop logs, counts
and records what they return.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from hffm.federation.aggregate import MIN_ROBUST_HOLDERS, ROBUST_RULES, ModuleUpdate, StateDict, update_norm
from hffm.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

log = logging.getLogger(__name__)

REASONS = ("unknown module", "wrong keys", "wrong shape", "non-finite", "bad weight", "norm above max")
"""Why an update is rejected, in the order they are checked (the first that applies is reported)."""


@dataclass(frozen=True)
class Rejection:
    """One update kept out of an aggregate: who sent it, which module and why."""

    node: int
    module: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"node {self.node}, module {self.module!r}: {self.reason}{extra}"


class Screening(NamedTuple):
    """The updates that may be aggregated and the ones that may not, each in the input order."""

    kept: list[ModuleUpdate]
    rejected: list[Rejection]


def check_update(
    update: ModuleUpdate, reference: Mapping[str, StateDict], max_update_norm: float | None = None,
    finite: bool | None = None,
) -> Rejection | None:
    """The first reason (``REASONS``) to keep ``update`` out of an aggregate holding ``reference``; None if none.

    ``finite``: True when every value of the update is known finite already (`screen_updates` checks them stacked);
    None or False: checked here."""

    def reject(reason: str, detail: str = "") -> Rejection:
        return Rejection(update.node, update.module, reason, detail)

    if update.module not in reference:
        return reject("unknown module", "the aggregator does not hold it")
    ref = reference[update.module]
    if set(update.state) != set(ref):
        diff = sorted(set(update.state) ^ set(ref))
        return reject("wrong keys", f"differs in {diff[:5]}")
    for key, value in update.state.items():
        if not isinstance(value, torch.Tensor) or value.shape != ref[key].shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return reject("wrong shape", f"{key}: {got} instead of {tuple(ref[key].shape)}")
    for key, value in ([] if finite else update.state.items()):
        if not bool(torch.isfinite(value).all()):
            return reject("non-finite", f"NaN or Inf in {key}")
    try:
        weight = float(update.num_samples)
    except (TypeError, ValueError):
        weight = math.nan
    if not (math.isfinite(weight) and weight >= 0):
        return reject("bad weight", f"num_samples={update.num_samples!r}")
    if max_update_norm is not None:
        norm = update_norm(update.state, ref)
        if norm > max_update_norm:
            return reject("norm above max", f"{norm:.3g} > federation.max_update_norm={max_update_norm:g}")
    return None


def screen_updates(
    updates: Sequence[ModuleUpdate], reference: Mapping[str, StateDict], max_update_norm: float | None = None
) -> Screening:
    """Split ``updates`` into those an aggregator holding ``reference`` may use and the rejected ones.

    ``reference`` maps module -> the aggregator's current state of it (shapes, keys and the point
    update norms are measured from). ``max_update_norm`` None checks no norm.
    """
    if max_update_norm is not None and not max_update_norm > 0:
        raise ValueError(f"federation.max_update_norm={max_update_norm}: must be > 0 or null (no norm check)")
    kept: list[ModuleUpdate] = []
    rejected: list[Rejection] = []
    finite = _all_finite(updates, reference)
    for i, update in enumerate(updates):
        problem = check_update(update, reference, max_update_norm, finite.get(i))
        if problem is None:
            kept.append(update)
        else:
            rejected.append(problem)
    return Screening(kept, rejected)


def _all_finite(updates: Sequence[ModuleUpdate], reference: Mapping[str, StateDict]) -> dict[int, bool]:
    """Index -> whether every value of the update is finite, for the updates whose keys and shapes match their
    module's reference: one isfinite a key over each module's updates stacked, not one (and a sync) a tensor."""
    groups: dict[tuple, list[int]] = {}
    for i, u in enumerate(updates):
        ref = reference.get(u.module)
        if ref is None or set(u.state) != set(ref):
            continue
        if all(isinstance(v, torch.Tensor) and v.shape == ref[k].shape for k, v in u.state.items()):
            groups.setdefault((u.module, tuple((k, v.dtype) for k, v in u.state.items())), []).append(i)
    out: dict[int, bool] = {}
    for (_, keys), rows in groups.items():
        ok = torch.ones(len(rows), dtype=torch.bool)
        for key, _ in keys:
            stacked = torch.stack([updates[i].state[key] for i in rows])
            ok &= torch.isfinite(stacked).reshape(len(rows), stacked[0].numel()).all(1)
        out |= dict(zip(rows, ok.tolist()))
    return out


def thin_modules(updates: Sequence[ModuleUpdate], rule: str, min_holders: int = MIN_ROBUST_HOLDERS) -> dict[str, int]:
    """Modules a robust ``rule`` aggregates over fewer than ``min_holders`` updates: module -> holders.

    With one or two holders a median or trimmed mean is just their (mean) value, so a bad update
    there is not outvoted. Empty for the mean rule, which never claims to be robust.
    """
    if rule not in ROBUST_RULES:
        return {}
    count: dict[str, int] = {}
    for update in updates:
        count[update.module] = count.get(update.module, 0) + 1
    return {m: c for m, c in sorted(count.items()) if c < min_holders}


def log_rejections(rejected: Sequence[Rejection], where: str) -> None:
    """One warning per rejected update (``where``: e.g. 'round 3, edge 1')."""
    for r in rejected:
        log.warning("%s: rejected the update of %s", where, r)
