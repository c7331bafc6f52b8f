"""Aggregation rules as pure functions, and per-module masked aggregation.

Every rule has one signature, ``rule(results, reference) -> state``: ``results`` is a sequence of
``(state_dict, weight)`` pairs from the nodes that trained a module, ``reference`` the state the
aggregator held before (used by rules that look at updates, such as norm clipping). Edge and cloud
call the same rules, so a rule is written and tested once.

The robust rules (median, trimmed_mean, clip) first drop any update holding a NaN or an Inf, so a
broken value can neither pass through them nor turn the others into NaN; ``mean`` is plain FedAvg
(the screen in ``hffm.federation.screening`` keeps non-finite updates away from every rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeAlias

from hffm.lazy import LazyModule
from hffm.spec import ModuleStates, StateDict

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = LazyModule("torch")

Results: TypeAlias = "Sequence[tuple[Mapping[str, Tensor], float]]"
Rule: TypeAlias = "Callable[[Results, Mapping[str, Tensor] | None], StateDict]"


def _check(results: Results) -> None:
    if not results:
        raise ValueError("aggregation needs at least one (state, weight) result")
    keys = set(results[0][0])
    for state, weight in results:
        if set(state) != keys:
            raise ValueError(f"results disagree on keys: {sorted(keys ^ set(state))}")
        if not (weight >= 0 and math.isfinite(weight)):
            raise ValueError(f"aggregation weights must be finite and >= 0, got {weight}")


def is_finite_state(state: Mapping[str, Tensor]) -> bool:
    """True when no tensor of the state holds a NaN or an Inf."""
    return all(bool(torch.isfinite(v).all()) for v in state.values())


def _finite_only(results: Results, reference: Mapping[str, Tensor] | None) -> Results | None:
    """The results whose states are all finite; None when none is (the caller keeps ``reference``)."""
    _check(results)
    kept = [(s, w) for s, w in results if is_finite_state(s)]
    if kept:
        return kept
    if reference is None:
        raise ValueError("every update holds NaN or Inf and there is no reference state to keep")
    return None


def _keep(reference: Mapping[str, Tensor]) -> StateDict:
    return {k: v.clone() for k, v in reference.items()}


def update_norm(state: Mapping[str, Tensor], reference: Mapping[str, Tensor]) -> float:
    """L2 norm of ``state - reference`` over the whole module, without overflow for huge finite values."""
    deltas = [state[k].to(torch.float64) - reference[k].to(torch.float64) for k in reference]
    peak = max((float(d.abs().max()) for d in deltas if d.numel()), default=0.0)
    if peak == 0.0 or not math.isfinite(peak):
        return peak
    return peak * math.sqrt(sum(float(((d / peak) ** 2).sum()) for d in deltas))


def update_norms(pairs: Sequence[tuple[Mapping[str, Tensor], Mapping[str, Tensor]]]) -> list[float]:
    """``[update_norm(state, reference) for state, reference in pairs]``, the same floats, with the pairs of one
    reference (and the same keys and shapes) stacked: a few ops a key for all of them instead of a dozen an update.

    A defense takes every update's norm each round (a hundred devices send a thousand module updates); one at a
    time, those small ops cost more than the aggregation itself. Rows with a non-finite or zero peak, and pairs
    that cannot stack, go through `update_norm`."""
    out: list[float | None] = [None] * len(pairs)
    groups: dict[tuple, list[int]] = {}
    for i, (state, reference) in enumerate(pairs):
        try:
            key = (id(reference), tuple((k, tuple(state[k].shape), state[k].dtype) for k in reference))
        except (KeyError, AttributeError):
            out[i] = update_norm(state, reference)
            continue
        groups.setdefault(key, []).append(i)
    for rows in groups.values():
        reference = pairs[rows[0]][1]
        deltas = [(torch.stack([pairs[i][0][k] for i in rows]).to(torch.float64)
                   - reference[k].to(torch.float64)).reshape(len(rows), -1) for k in reference]
        shown = [d for d in deltas if d.shape[1]]
        peak = torch.stack([d.abs().amax(1) for d in shown]).amax(0) if shown else torch.zeros(len(rows),
                                                                                                dtype=torch.float64)
        total = torch.zeros(len(rows), dtype=torch.float64)
        for d in deltas:  # key by key, in the order update_norm sums them
            total = total + ((d / peak[:, None]) ** 2).sum(1)
        for i, p, t in zip(rows, peak.tolist(), total.tolist()):
            out[i] = p * math.sqrt(t) if p != 0.0 and math.isfinite(p) else update_norm(*pairs[i])
    return [float(v) for v in out]  # type: ignore[arg-type]


def weighted_average(results: Results, reference: Mapping[str, Tensor] | None = None) -> StateDict:
    """FedAvg: the sample-weighted mean (plain mean when every weight is zero)."""
    _check(results)
    weights = torch.tensor([float(w) for _, w in results], dtype=torch.float64)
    if weights.sum() <= 0:
        weights = torch.ones_like(weights)
    weights = weights / weights.sum()
    out: StateDict = {}
    for key in results[0][0]:
        stacked = torch.stack([state[key].to(torch.float64) for state, _ in results])
        shape = (-1,) + (1,) * (stacked.dim() - 1)
        out[key] = (stacked * weights.view(shape)).sum(0).to(results[0][0][key].dtype)
    return out


def coordinate_median(results: Results, reference: Mapping[str, Tensor] | None = None) -> StateDict:
    """Coordinate-wise median; ignores weights (robust to a minority of arbitrary updates)."""
    finite = _finite_only(results, reference)
    if finite is None:
        return _keep(reference)  # type: ignore[arg-type]
    results = finite
    out: StateDict = {}
    for key in results[0][0]:
        stacked = torch.stack([state[key].to(torch.float64) for state, _ in results])
        # torch.median returns the lower middle value; averaging both middles is the textbook median.
        out[key] = stacked.quantile(0.5, dim=0).to(results[0][0][key].dtype) if stacked.numel() else stacked[0]
    return out


def trimmed_mean(
    results: Results, reference: Mapping[str, Tensor] | None = None, trim_fraction: float = 0.1
) -> StateDict:
    """Coordinate-wise mean after dropping the ``trim_fraction`` largest and smallest values.

    Any ``trim_fraction > 0`` trims at least one value from each end once there are 3 or more
    updates: a rounded-down count would trim nothing in the small groups an edge sees.
    """
    if not 0.0 <= trim_fraction < 0.5:
        raise ValueError(f"trim_fraction must be in [0, 0.5), got {trim_fraction}")
    finite = _finite_only(results, reference)
    if finite is None:
        return _keep(reference)  # type: ignore[arg-type]
    results = finite
    n = len(results)
    k = int(trim_fraction * n)
    if trim_fraction > 0 and n >= 3:
        k = max(1, k)
    out: StateDict = {}
    for key in results[0][0]:
        stacked = torch.stack([state[key].to(torch.float64) for state, _ in results])
        kept = stacked.sort(dim=0).values[k : n - k]
        out[key] = kept.mean(0).to(results[0][0][key].dtype)
    return out


def norm_clipped_average(
    results: Results, reference: Mapping[str, Tensor] | None = None, max_norm: float = 1.0
) -> StateDict:
    """Weighted mean of updates whose L2 norm (over the whole module) is clipped to ``max_norm``.

    Bounds how far one node can move a module; needs the aggregator's previous state.
    """
    _check(results)
    if reference is None:
        raise ValueError("norm clipping needs the reference (previous) state of the module")
    if not (max_norm > 0 and math.isfinite(max_norm)):
        raise ValueError(f"max_norm must be finite and > 0, got {max_norm}")
    finite = _finite_only(results, reference)
    if finite is None:
        return _keep(reference)
    clipped = []
    for state, weight in finite:
        delta = {k: state[k].to(torch.float64) - reference[k].to(torch.float64) for k in state}
        norm = update_norm(state, reference)
        scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
        clipped.append(({k: d * scale for k, d in delta.items()}, weight))
    mean_delta = weighted_average(clipped)
    return {k: (reference[k].to(torch.float64) + mean_delta[k]).to(reference[k].dtype) for k in reference}


ROBUST_RULES = ("median", "trimmed_mean", "clip")
"""Rules that bound what a minority can do; they need a few holders per module to do it."""
MIN_ROBUST_HOLDERS = 3
"""Below this many holders of a module, a robust rule cannot outvote one bad update."""

RULES: dict[str, Callable[..., StateDict]] = {
    "mean": weighted_average,
    "median": coordinate_median,
    "trimmed_mean": trimmed_mean,
    "clip": norm_clipped_average,
}


def make_rule(name: str, **options: float) -> Rule:
    """Look a rule up by name and bind its options (``trim_fraction``, ``max_norm``)."""
    if name not in RULES:
        raise ValueError(f"unknown aggregation rule {name!r}; choose one of {sorted(RULES)}")
    return partial(RULES[name], **options) if options else RULES[name]


@dataclass(frozen=True)
class ModuleUpdate:
    """What a node sends up for one module: its state and the number of samples behind it."""

    node: int
    module: str
    state: StateDict
    num_samples: float


def aggregate_modules(
    current: Mapping[str, StateDict], updates: Sequence[ModuleUpdate], rule: Rule = weighted_average
) -> tuple[ModuleStates, dict[str, float]]:
    """Masked per-module aggregation.

    A module is aggregated only over the updates that carry it; a module nobody updated keeps its
    current state, so a node that lacks a module never changes it. Returns the new states of the
    modules that were updated and the total weight behind each (the weight an upper tier uses).
    """
    by_module: dict[str, list[ModuleUpdate]] = {}
    for update in updates:
        if update.module not in current:
            raise KeyError(f"update for module {update.module!r}, which the aggregator does not hold")
        by_module.setdefault(update.module, []).append(update)
    new: ModuleStates = {}
    weight: dict[str, float] = {}
    for name, group in by_module.items():
        group = sorted(group, key=lambda u: u.node)  # fixed order: same sums on any number of ranks
        new[name] = rule([(u.state, u.num_samples) for u in group], current[name])
        weight[name] = float(sum(u.num_samples for u in group))
    return new, weight
