"""Tier policy: for each module kind, the tier that aggregates it.

- ``hierarchical``: edges aggregate every round, the cloud every ``E_agg`` rounds (the paper's HF-FM);
- ``edge``: edges aggregate every round, never the cloud (kept per cluster);
- ``personal``: never aggregated, each device keeps its own copy.

The run's mode is decided here too, once: ``star`` is one group (the cloud) aggregating every round,
``local`` keeps every module personal and never aggregates, ``hierarchical`` groups devices by edge.

Heads are aggregated per task and encoders per modality automatically, because aggregation is
masked: only the devices that hold a module ever send it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from hffm.spec import KINDS

PLACES = ("hierarchical", "edge", "personal")


class Mode(StrEnum):
    """How the hierarchy aggregates (``federation.mode``)."""

    hierarchical = "hierarchical"
    star = "star"
    local = "local"


def default_places() -> dict[str, str]:
    return {kind: "hierarchical" for kind in KINDS}


@dataclass(frozen=True)
class TierPolicy:
    """Where each module kind is aggregated, how often the cloud runs, and how devices are grouped."""

    places: Mapping[str, str] = field(default_factory=default_places)
    e_agg: int = 2
    """Cloud aggregation every ``e_agg`` edge rounds; 0 means never (edge only)."""
    mode: Mode = Mode.hierarchical

    @classmethod
    def for_mode(cls, mode: str, places: Mapping[str, str], e_agg: int) -> TierPolicy:
        """The policy a mode implies: star is the cloud every round, local keeps everything personal."""
        mode = Mode(mode)
        if mode == Mode.local:
            return cls(places={k: "personal" for k in KINDS}, e_agg=0, mode=mode)
        return cls(places=dict(places), e_agg=1 if mode == Mode.star else e_agg, mode=mode)

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

    @property
    def star(self) -> bool:
        return self.mode == Mode.star

    def group_of(self, device_edge: np.ndarray) -> np.ndarray:
        """[N] the aggregation group of each device: its edge, or the single cloud group in star mode."""
        return np.zeros_like(device_edge) if self.star else np.asarray(device_edge)

    def num_groups(self, num_edges: int) -> int:
        return 1 if self.star else num_edges

    def place(self, kind: str) -> str:
        return self.places[kind]

    def is_cloud_round(self, round_index: int) -> bool:
        """Round ``round_index`` (0-based) ends with a cloud aggregation."""
        return self.mode != Mode.local and self.e_agg > 0 and (round_index + 1) % self.e_agg == 0

    def shared(self, kind: str) -> bool:
        """Modules of this kind leave the device (are uploaded)."""
        return self.places[kind] != "personal"

    def to_cloud(self, kind: str) -> bool:
        return self.places[kind] == "hierarchical"
