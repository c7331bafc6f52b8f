"""Which devices share a batched pass: a pure choice from token counts, before any tensor moves.

A batched pass runs one sequence layout for all its devices: the prompts of every task and the tokens
of every modality any member has, the absent ones masked. Masked tokens cost compute like real ones,
so batching a text-only device with image devices makes it pay for the image's tokens; a pass also
has a fixed cost (launching every operation once), which is what batching saves. Devices start grouped
by modality set; two groups merge while the fixed cost saved exceeds the masked tokens added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PASS_COST_TOKENS = 2048.0
"""A pass's fixed cost in sample-tokens of compute: on a 2-core CPU, a batched pass of the tiny model
costs about 20 ms more than its compute, and a sample-token about 8 us (experiments/bench_overhead.py)."""

MIN_PASS_DEVICES = 3
"""Smaller passes train unbatched: a vmapped pass of two devices costs what their two passes cost."""


@dataclass(frozen=True)
class Member:
    """What grouping needs to know of one device: its modalities, tasks and batch size."""

    modalities: frozenset[str]
    tasks: frozenset[str]
    batch: int


def _length(modalities: frozenset[str], tasks: frozenset[str], tokens: Mapping[str, int], prompt_len: int) -> int:
    return prompt_len * len(tasks) + sum(tokens[m] for m in modalities)


def _cost(group: Sequence[Member], tokens: Mapping[str, int], prompt_len: int) -> float:
    mods = frozenset().union(*(m.modalities for m in group))
    tasks = frozenset().union(*(m.tasks for m in group))
    return PASS_COST_TOKENS + max(m.batch for m in group) * len(group) * _length(mods, tasks, tokens, prompt_len)


def plan_groups(members: Sequence[Member], tokens: Mapping[str, int], prompt_len: int,
                max_devices: int) -> list[list[int]]:
    """Indices of ``members`` per pass, each at most ``max_devices``.

    ``tokens[m]``: tokens modality m adds to a sequence; ``prompt_len``: tokens a task adds.
    """
    if max_devices < 1:
        raise ValueError(f"max_devices={max_devices}: must be >= 1")
    by_modalities: dict[frozenset[str], list[int]] = {}
    for i, member in enumerate(members):
        by_modalities.setdefault(member.modalities, []).append(i)
    groups = list(by_modalities.values())

    def cost(group: list[int]) -> float:
        return _cost([members[i] for i in group], tokens, prompt_len)

    while True:  # greedy: the merge that saves most, while one saves anything
        best, pair = 0.0, None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                if len(groups[a]) + len(groups[b]) > max_devices:
                    continue
                saving = cost(groups[a]) + cost(groups[b]) - cost(groups[a] + groups[b])
                if saving > best:
                    best, pair = saving, (a, b)
        if pair is None:
            break
        a, b = pair
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]
    return [group[start:start + max_devices] for group in groups for start in range(0, len(group), max_devices)]
