"""Records of one round's traffic (what the loop sent) and of its cost (what the ledger charged)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

LINK_KINDS = ("compute", "d2d", "uplink", "backhaul", "downlink")
TIERS = ("device", "edge", "cloud")


@dataclass(frozen=True)
class DeviceUpload:
    """Device `device` trained `compute_cycles` cycles and uploads `payload_bytes` (the real size of
    its module updates), directly (relay == device) or through its D2D neighbour `relay`."""

    device: int
    payload_bytes: int
    relay: int
    compute_cycles: float = 0.0


@dataclass(frozen=True)
class D2DTransfer:
    """A cooperative gossip exchange src -> dst of payload_bytes, in gossip step `step` (steps run
    one after another)."""

    src: int
    dst: int
    payload_bytes: int
    step: int = 0


@dataclass
class RoundCost:
    """Latency (s) and energy (J) of one round, with its breakdown and per-device energy [N]."""

    latency_s: float
    energy_j: float
    breakdown: dict[str, float] = field(default_factory=dict)
    device_energy_j: np.ndarray | None = None

    def as_metrics(self, prefix: str = "cost/") -> dict[str, float]:
        """Flat float dict for a logger: latency_s, energy_j and every breakdown entry."""
        out = {f"{prefix}latency_s": float(self.latency_s), f"{prefix}energy_j": float(self.energy_j)}
        out.update({f"{prefix}{k}": float(v) for k, v in self.breakdown.items()})
        return out

    def __add__(self, other: RoundCost) -> RoundCost:
        """Totals over rounds (rounds run one after another, so latencies add)."""
        keys = list(dict.fromkeys([*self.breakdown, *other.breakdown]))
        dev = None
        if self.device_energy_j is not None and other.device_energy_j is not None:
            dev = self.device_energy_j + other.device_energy_j
        return RoundCost(
            self.latency_s + other.latency_s,
            self.energy_j + other.energy_j,
            {k: self.breakdown.get(k, 0.0) + other.breakdown.get(k, 0.0) for k in keys},
            dev,
        )


@dataclass(frozen=True)
class TimePoint:
    """A point in time reached along a path, with the time split by link kind."""

    t: float = 0.0
    parts: tuple[float, ...] = (0.0,) * len(LINK_KINDS)

    def plus(self, kind: str, dt: float) -> TimePoint:
        parts = list(self.parts)
        parts[LINK_KINDS.index(kind)] += dt
        return TimePoint(self.t + dt, tuple(parts))


def latest(paths: Sequence[TimePoint]) -> TimePoint:
    return max(paths, key=lambda p: p.t, default=TimePoint())


class CostBook:
    """Accumulates energy and bytes by link kind and tier."""

    def __init__(self, n: int) -> None:
        self.energy = dict.fromkeys(LINK_KINDS, 0.0)
        self.tier = dict.fromkeys(TIERS, 0.0)
        self.bytes = dict.fromkeys(LINK_KINDS[1:], 0.0)
        self.device = np.zeros(n)

    def charge(self, kind: str, tier: str, joules: float, nbytes: float = 0.0, device: int | None = None) -> None:
        self.energy[kind] += joules
        self.tier[tier] += joules
        if kind != "compute":
            self.bytes[kind] += nbytes
        if device is not None:
            self.device[device] += joules

    def cost(self, end: TimePoint, extra: Mapping[str, float]) -> RoundCost:
        bd = {f"latency/{k}": v for k, v in zip(LINK_KINDS, end.parts, strict=True)}
        bd.update({f"energy/{k}": v for k, v in self.energy.items()})
        bd.update({f"energy/{k}": v for k, v in self.tier.items()})
        bd.update({f"bytes/{k}": v for k, v in self.bytes.items()})
        bd.update(extra)
        return RoundCost(end.t, float(sum(self.energy.values())), bd, self.device)
