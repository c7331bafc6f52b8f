"""Which devices share a batched pass: a pure choice from token counts, before any tensor moves.

A batched pass runs one sequence layout for all its devices: the prompts of every task and the tokens
of every modality any member has, the absent ones masked. Masked tokens cost compute like real ones,
so batching a text-only device with image devices makes it pay for the image's tokens; a pass also
has a fixed cost (launching every operation once), which is what batching saves. Devices start grouped
by modality set and batch size; two groups merge while the fixed cost saved exceeds the masked tokens
and padded samples added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PASS_COST_TOKENS = 2048.0
"""A pass's fixed cost in sample-tokens of compute: on a 2-core CPU, a batched pass of the tiny model
costs about 20 ms more than its compute, and a sample-token about 8 us (experiments/bench_overhead.py)."""

BATCH_STEP = 4
"""Devices whose batch sizes round up to the same multiple of this start in one group."""
MIN_PASS_DEVICES = 3
"""Smaller passes train unbatched: a vmapped pass of two devices costs what their two passes cost."""


@dataclass(frozen=True)
class Member:
    """What grouping needs to know of one device: its modalities, tasks and batch size."""

    modalities: frozenset[str]
    tasks: frozenset[str]
    batch: int


@dataclass(frozen=True)
class _Summary:
    """What a group's cost depends on."""

    modalities: frozenset[str]
    tasks: frozenset[str]
    batch: int
    size: int

    def cost(self, tokens: Mapping[str, int], prompt_len: int) -> float:
        length = prompt_len * len(self.tasks) + sum(tokens[m] for m in self.modalities)
        return PASS_COST_TOKENS + self.batch * self.size * length

    def __or__(self, other: _Summary) -> _Summary:
        return _Summary(self.modalities | other.modalities, self.tasks | other.tasks,
                        max(self.batch, other.batch), self.size + other.size)


def plan_groups(members: Sequence[Member], tokens: Mapping[str, int], prompt_len: int,
                max_devices: int) -> list[list[int]]:
    """Indices of ``members`` per pass, each at most ``max_devices``.

    ``tokens[m]``: tokens modality m adds to a sequence; ``prompt_len``: tokens a task adds. Groups
    start as devices of one modality set and about one batch size (a short device is padded to the
    longest of its pass), then merge greedily, the largest saving first.
    """
    if max_devices < 1:
        raise ValueError(f"max_devices={max_devices}: must be >= 1")
    start: dict[tuple[frozenset[str], int], list[int]] = {}
    for i, member in enumerate(members):
        start.setdefault((member.modalities, -(-member.batch // BATCH_STEP)), []).append(i)
    groups = {g: sorted(ids) for g, ids in enumerate(start.values())}
    summary = {g: _summary([members[i] for i in ids]) for g, ids in groups.items()}

    def saving(a: int, b: int) -> float:
        if summary[a].size + summary[b].size > max_devices:
            return 0.0
        merged = (summary[a] | summary[b]).cost(tokens, prompt_len)
        return summary[a].cost(tokens, prompt_len) + summary[b].cost(tokens, prompt_len) - merged

    savings = {(a, b): saving(a, b) for a in groups for b in groups if a < b}
    while savings:
        (a, b), best = max(savings.items(), key=lambda item: item[1])
        if best <= 0:
            break
        groups[a] = sorted(groups[a] + groups.pop(b))
        summary[a] = summary[a] | summary.pop(b)
        savings = {pair: v for pair, v in savings.items() if b not in pair}
        for g in groups:
            if g != a:
                savings[(min(a, g), max(a, g))] = saving(min(a, g), max(a, g))
    ordered = sorted(groups.values())
    return [group[i:i + max_devices] for group in ordered for i in range(0, len(group), max_devices)]


def _summary(group: Sequence[Member]) -> _Summary:
    return _Summary(frozenset().union(*(m.modalities for m in group)), frozenset().union(*(m.tasks for m in group)),
                    max(m.batch for m in group), len(group))
