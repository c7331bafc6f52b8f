"""Per-node agreement: judge a device by all of its updates of a round and by its past rounds, not one update alone.

Our modules have few holders per edge and honest updates agree only weakly (a cosine of 0.2-0.4 with the wave's
consensus), so a per-update direction check drops many honest updates and passes many bad ones. A device sends
about a dozen module updates a round, and an attacker stays an attacker across rounds. So the evidence is pooled:

- **direction**: the cosine of all of a node's module updates together with the others' leave-one-out median:
  evidence 1 when it is >= 0, else the cosine relative to the median node's, down to -1 (negative: against the
  others). Sign flippers score about -0.5.
- **scale**: a node whose median update norm over its modules (relative to each module's consensus norm) lies
  outside [1 / ``norm_band``, ``norm_band``] scores -1: with Adam-like steps honest norms sit within 0.7-1.3 of the
  median, a x10 update or an inner-product-manipulation update (about 0.4 x) does not.
- **trust**: ``trust = trust_decay x trust + (1 - trust_decay) x evidence`` (a new node starts at 1); a node below
  ``min_trust`` is left out of the round. One odd round does not exclude an honest device; a persistent attacker
  stays out.

Pure functions over plain numbers (``hffm.federation.defense`` measures the cosines and norms).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

from hffm.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

K = TypeVar("K", int, str)
"""A node's key: a device (int) or, for the per-task trust, a device's task ('<device>/<task>')."""

MIN_MEDIAN_COSINE = 0.02
"""A module whose holders' median cosine with the consensus is below this gives no direction evidence: there is
no shared direction to agree with."""

MIN_HOLDERS = 3
"""A module needs this many holders for its median cosine to mean anything."""


def leave_one_out_median(stack: torch.Tensor) -> torch.Tensor:
    """Row i: the coordinate-wise median of every row but i (``stack``: n x d, n >= 2). A node's own update must not
    be in the reference it is judged by: when honest updates agree only weakly, the median's coordinates are near
    ties that each holder's own vote tips toward itself, and a flipped update would seem to agree."""
    n = stack.shape[0]
    if n < 2:
        raise ValueError(f"leave_one_out_median needs at least 2 rows, got {n}")
    s, order = stack.sort(dim=0)
    rank = torch.empty_like(order)
    rank.scatter_(0, order, torch.arange(n).unsqueeze(1).expand_as(order))

    def kth(k: int) -> torch.Tensor:  # the k-th smallest of the other n - 1 rows, for every row
        return torch.where(rank > k, s[k].expand_as(s), s[min(k + 1, n - 1)].expand_as(s))

    m = n - 1
    return kth(m // 2) if m % 2 else 0.5 * (kth(m // 2 - 1) + kth(m // 2))


def leave_one_out_terms(stack: torch.Tensor) -> list[tuple[float, float, float]]:
    """Row i: (its dot product with the leave-one-out median of the others, its squared norm, the median's)."""
    ref = leave_one_out_median(stack)
    return list(zip((stack * ref).sum(dim=1).tolist(), (stack * stack).sum(dim=1).tolist(),
                    (ref * ref).sum(dim=1).tolist()))


def pooled_cosines(terms: Mapping[str, Mapping[int, tuple[float, float, float]]]) -> dict[int, float]:
    """Node -> the cosine of all its module updates together with all their references (``terms``: module ->
    node -> ``leave_one_out_terms``): one number a node, from every coordinate it sent."""
    acc: dict[int, list[float]] = {}
    for by_node in terms.values():
        for node, (dot, own, ref) in by_node.items():
            a = acc.setdefault(node, [0.0, 0.0, 0.0])
            a[0], a[1], a[2] = a[0] + dot, a[1] + own, a[2] + ref
    return {n: dot / (own * ref) ** 0.5 if own > 0 and ref > 0 else 0.0 for n, (dot, own, ref) in acc.items()}


def direction_evidence(cosines: Mapping[int, float]) -> dict[int, float]:
    """Node -> 1 when it points with the others at all (cosine >= 0), else its cosine / the median cosine, at
    least -1; empty when the median is below ``MIN_MEDIAN_COSINE`` (no shared direction to agree with) or too few
    nodes. A weakly aligned honest device (odd data: one class, one modality) is no objection; only pointing
    against the others is (min_trust < 0 never left out a positive cosine alone, but its evidence, the lower of
    this and the validation evidence, dragged such devices down with a mildly low validation score)."""
    if len(cosines) < MIN_HOLDERS:
        return {}
    median = statistics.median(cosines.values())
    if median < MIN_MEDIAN_COSINE:
        return {}
    return {n: 1.0 if c >= 0 else max(-1.0, c / median) for n, c in cosines.items()}


def scale_outliers(ratios: Mapping[str, Mapping[int, float]], norm_band: float) -> set[int]:
    """Nodes whose median norm ratio (update norm / the module's consensus norm) over their modules lies outside
    [1 / norm_band, norm_band]; ``ratios``: module -> node -> ratio."""
    by_node: dict[int, list[float]] = {}
    for module in ratios.values():
        for node, ratio in module.items():
            by_node.setdefault(node, []).append(ratio)
    medians = {n: statistics.median(r) for n, r in by_node.items()}
    return {n for n, m in medians.items() if not 1.0 / norm_band <= m <= norm_band}


def update_trust(trust: Mapping[K, float], evidence: Mapping[K, float], decay: float) -> dict[K, float]:
    """The trust of every node after a round: ``decay x old + (1 - decay) x evidence`` for nodes with evidence
    (a node never seen before starts at 1), unchanged for the others."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"defense.trust_decay={decay}: must be in [0, 1)")
    out = dict(trust)
    for node, e in evidence.items():
        out[node] = decay * trust.get(node, 1.0) + (1.0 - decay) * e
    return out


def distrusted(trust: Mapping[K, float], nodes: set[K] | frozenset[K], min_trust: float) -> dict[K, float]:
    """Node -> its trust, for the ``nodes`` whose trust is below ``min_trust`` (never-seen nodes are trusted)."""
    return {n: trust[n] for n in sorted(nodes) if n in trust and trust[n] < min_trust}
