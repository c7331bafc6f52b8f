"""`ModelCache`: compiled programs kept across rounds, held by the caller (no module-level state).

The training loop plans one round after another with the same devices, links and modules; only the numbers (the
channel draw) change. A compiled cvxpy program whose numbers are Parameters (DPP) is re-solved with new values
instead of being rebuilt. The caller that runs the rounds (hffm's federation loop, a benchmark) creates one
`ModelCache` and passes it to `solve(..., cache=...)` every round; without one each solve compiles afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class ModelCache:
    """Programs by structure key. `get(key, build, fits)` returns the kept program when `fits(program)` holds,
    else builds one and keeps it (at most `max_entries`, oldest dropped first). `hits` and `builds` count."""

    def __init__(self, max_entries: int = 64) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries = {max_entries!r}: must be an int >= 1 (programs kept at once)")
        self.max_entries = max_entries
        self.hits = 0
        self.builds = 0
        self._kept: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], Any], fits: Callable[[Any], bool] = lambda _: True) -> Any:
        hit = self._kept.get(key)
        if hit is not None and fits(hit):
            self.hits += 1
            return hit
        self._kept.pop(key, None)
        while len(self._kept) >= self.max_entries:
            self._kept.pop(next(iter(self._kept)))
        built = build()
        self.builds += 1
        self._kept[key] = built
        return built

    def __len__(self) -> int:
        return len(self._kept)

    def __repr__(self) -> str:
        return f"ModelCache({len(self)} programs, {self.hits} hits, {self.builds} builds)"


def check_cache(cache: object) -> ModelCache | None:
    """The `cache` option: a ModelCache or None, else a one-line error naming the fix."""
    if cache is None or isinstance(cache, ModelCache):
        return cache
    raise ValueError(f"cache: expected a solvers.ModelCache (or None), got {type(cache).__name__}; "
                     "create one with solvers.ModelCache() and pass the same object every round")
