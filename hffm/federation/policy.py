"""Tier policy: for each module kind, the tier that aggregates it.

- ``hierarchical``: edges aggregate every round, the cloud every ``E_agg`` rounds (the paper's HF-FM);
- ``edge``: edges aggregate every round, never the cloud (kept per cluster);
- ``personal``: never aggregated, each device keeps its own copy.

Heads are aggregated per task and encoders per modality automatically, because aggregation is
masked: only the devices that hold a module ever send it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

KINDS = ("encoder", "prompt", "expert", "adapter", "head")
PLACES = ("hierarchical", "edge", "personal")


def _default_places() -> dict[str, str]:
    return {kind: "hierarchical" for kind in KINDS}


@dataclass(frozen=True)
class TierPolicy:
    """Where each module kind is aggregated and how often the cloud runs."""

    places: Mapping[str, str] = field(default_factory=_default_places)
    e_agg: int = 2
    """Cloud aggregation every ``e_agg`` edge rounds; 0 means never (edge only)."""

    def __post_init__(self) -> None:
        for kind, place in self.places.items():
            if kind not in KINDS:
                raise ValueError(f"federation.policy: unknown module kind {kind!r}; kinds are {list(KINDS)}")
            if place not in PLACES:
                raise ValueError(
                    f"federation.policy.{kind}: unknown place {place!r}; choose one of {list(PLACES)}"
                )
        missing = [k for k in KINDS if k not in self.places]
        if missing:
            raise ValueError(f"federation.policy: no place given for module kinds {missing}")
        if self.e_agg < 0:
            raise ValueError(f"federation.e_agg must be >= 0 (0 = never aggregate at the cloud), got {self.e_agg}")

    def place(self, kind: str) -> str:
        return self.places[kind]

    def is_cloud_round(self, round_index: int) -> bool:
        """Round ``round_index`` (0-based) ends with a cloud aggregation."""
        return self.e_agg > 0 and (round_index + 1) % self.e_agg == 0

    def shared(self, kind: str) -> bool:
        """Modules of this kind leave the device (are uploaded)."""
        return self.places[kind] != "personal"

    def to_cloud(self, kind: str) -> bool:
        return self.places[kind] == "hierarchical"
