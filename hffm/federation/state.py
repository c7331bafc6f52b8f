"""The federation's mutable state: every tier's module versions, personal modules, the round."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hffm.federation.aggregate import ModuleStates


@dataclass
class FederationState:
    """Only trainable module states live here; the frozen trunk stays once in the process's bank."""

    round: int
    group_states: list[ModuleStates]
    """One version of every shared module per edge (one group in star mode)."""
    cloud_state: ModuleStates
    personal: dict[int, ModuleStates] = field(default_factory=dict)
    """Device -> its own versions of the modules its policy keeps personal."""
    pending_weight: list[dict[str, float]] = field(default_factory=list)
    """Per edge, samples behind each module since the last cloud round (the cloud's weights)."""
    history: list[dict[str, float]] = field(default_factory=list)
    residual: dict[int, ModuleStates] = field(default_factory=dict)
    """Device -> module -> what its error-feedback codec (top-k, low-rank) has not sent yet
    (``hffm.federation.compression``): checkpointed, so a resume sends exactly what the run would have."""
    defense: dict[str, Any] = field(default_factory=dict)
    """What the defense remembers across rounds (``hffm.federation.defense.DefenseMemory.to_dict``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "group_states": self.group_states,
            "cloud_state": self.cloud_state,
            "personal": self.personal,
            "pending_weight": self.pending_weight,
            "history": self.history,
            "residual": self.residual,
            "defense": self.defense,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FederationState:
        return cls(**d)

    def keep_residuals(self, kept: dict[int, ModuleStates]) -> None:
        """Store the residuals a round's sends left (an empty state: sent in full, dropped)."""
        for device, modules in kept.items():
            mine = self.residual.setdefault(device, {})
            for name, tensors in modules.items():
                if tensors:
                    mine[name] = tensors
                else:
                    mine.pop(name, None)
            if not mine:
                del self.residual[device]

    def device_states(self, group: int, device: int) -> ModuleStates:
        """The module versions a device trains from: its edge's, overridden by its personal ones."""
        return {**self.group_states[group], **self.personal.get(device, {})}
