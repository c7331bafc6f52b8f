"""What a round decided and what it did, kept apart.

``Plan`` is the decision (placement, relays, aggregation tree, bandwidth, and uplink power and CPU
frequency when the solver chose them), frozen once made;
``RoundOutcome`` records what happened (who trained what, the routes and D2D transfers, the cloud
step). The ledger charges the outcome at the plan's bandwidth, power and frequency; loggers and plots read both and
change neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from hffm.federation.faults import RoundFaults
from hffm.federation.screening import Rejection


def _frozen_map(m: Mapping) -> Mapping:
    return MappingProxyType(dict(m))


@dataclass(frozen=True, eq=False)
class Plan:
    """One round's decision over its participants (global device ids).

    placement: device -> the modules it trains; relay: device -> the neighbour that uploads for it
    (itself = direct); parent: in ``tree`` D2D mode, device -> its parent in the cluster's aggregation
    tree (itself = the uploader); bandwidth_hz: [N] uplink band per device, or None for the ledger's
    default share; info: the solver's report (``plan/*`` metrics). tx_power_w / cpu_hz: [N] uplink power
    (W) and CPU frequency (Hz) per device when the solver planned them (``solver.max_tx_power_w``,
    ``solver.cpu_scale_min|max``): its values for the participants, the fixed ones elsewhere; None: the
    fixed ``device_tx_power_w`` and the drawn ``cpu_hz``. compression: the codec chosen per device (auto).
    """

    placement: Mapping[int, Sequence[str]]
    relay: Mapping[int, int]
    bandwidth_hz: np.ndarray | None = None
    parent: Mapping[int, int] = field(default_factory=dict)
    info: Mapping[str, float] = field(default_factory=dict)
    tx_power_w: np.ndarray | None = None
    cpu_hz: np.ndarray | None = None
    compression: Mapping[int, str] = field(default_factory=dict)
    """Under ``federation.compression=auto``: device -> the codec the solver chose for its updates."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "placement", _frozen_map({int(d): tuple(m) for d, m in self.placement.items()}))
        set_(self, "compression", _frozen_map({int(d): str(c) for d, c in self.compression.items()}))
        set_(self, "relay", _frozen_map({int(d): int(r) for d, r in self.relay.items()}))
        set_(self, "parent", _frozen_map({int(d): int(p) for d, p in self.parent.items()}))
        set_(self, "info", _frozen_map(self.info))
        for name in ("bandwidth_hz", "tx_power_w", "cpu_hz"):
            if getattr(self, name) is not None:
                arr = np.array(getattr(self, name), dtype=float)
                arr.setflags(write=False)
                set_(self, name, arr)

    @property
    def participants(self) -> list[int]:
        return sorted(self.placement)

    def metrics(self) -> dict[str, float]:
        return {f"plan/{k}": float(v) for k, v in self.info.items()}

    def device_cpu_hz(self, drawn: np.ndarray) -> np.ndarray:
        """[N] CPU frequency each device computes at: the plan's, else the drawn one."""
        return drawn if self.cpu_hz is None else self.cpu_hz


@dataclass(frozen=True)
class DeviceResult:
    """One device's local training this round: the modules it trained and its losses."""

    device: int
    modules: tuple[str, ...]
    losses: Mapping[str, float]
    samples: float = 0.0
    """Samples it really trained on (rows over all its local steps): what the ledger charges compute for."""


@dataclass(frozen=True)
class Route:
    """One device's wireless traffic this round: the modules it sends and the next hop (itself = uplink)."""

    device: int
    modules: tuple[str, ...]
    relay: int


@dataclass(frozen=True)
class Transfer:
    """One D2D transfer carrying some modules' states; ``kind`` is tree, gossip or fetch.

    Transfers with the same ``step`` run at the same time; steps run one after another.
    """

    src: int
    dst: int
    modules: tuple[str, ...]
    step: int = 0
    kind: str = "tree"


@dataclass(frozen=True)
class FaultRecord:
    """What went wrong in one round (global device and edge ids; all empty when faults are off)."""

    drawn: RoundFaults = field(default_factory=RoundFaults)
    """The seeded draws: dropped devices, slowed devices (and by how much), failed relays, down edges."""
    moved: Mapping[int, int] = field(default_factory=dict)
    """Device -> the edge it re-attached to because its own was down."""
    stranded: tuple[int, ...] = ()
    """Devices that skipped the round: their edge was down and they could not re-attach."""
    late: tuple[int, ...] = ()
    """Devices whose upload would have ended after ``federation.deadline_s``: trained, not aggregated."""
    attackers: tuple[int, ...] = ()
    """Attackers whose poisoned updates were sent this round (the screen may still reject them)."""
    deadline_s: float | None = None
    """The round's deadline (s): ``federation.deadline_s``, or the one ``deadline_quantile`` derived; None: none."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "moved", _frozen_map({int(d): int(e) for d, e in self.moved.items()}))

    @property
    def silent(self) -> frozenset[int]:
        """Devices that trained but sent nothing: dropped, failed relays and late ones."""
        return self.drawn.dropped | self.drawn.failed_relays | frozenset(self.late)

    def metrics(self) -> dict[str, float]:
        return self.drawn.metrics() | {
            "faults/stragglers": float(len(self.late)), "faults/reattached": float(len(self.moved)),
            "faults/stranded": float(len(self.stranded)), "faults/attackers": float(len(self.attackers))} | (
            {"faults/deadline_s": self.deadline_s} if self.deadline_s is not None else {})


@dataclass(frozen=True)
class RoundOutcome:
    """What one round did: training results, the routes its updates took, its D2D transfers
    (tree, gossip and fetches), the cloud step's bytes per edge (zeros on edge-only rounds) and the
    updates the screen rejected."""

    round: int
    results: tuple[DeviceResult, ...]
    routes: tuple[Route, ...]
    transfers: tuple[Transfer, ...]
    cloud_round: bool
    edge_to_cloud_bytes: np.ndarray
    rejected: tuple[Rejection, ...] = ()
    """Device updates the screen kept out of the D2D step and the edge."""
    cloud_rejected: tuple[Rejection, ...] = ()
    """Edge updates the screen kept out of the cloud (``node`` is the edge)."""
    faults: FaultRecord = field(default_factory=FaultRecord)
    """Drops, stragglers, failed relays, edge outages and attackers of the round."""
    defended: tuple[Rejection, ...] = ()
    """Device updates the defense dropped at the edges."""
    clipped: int = 0
    """Updates the defense clipped to its norm bound."""
    cloud_defended: tuple[Rejection, ...] = ()
    """Edge updates the defense dropped at the cloud (``node`` is the edge)."""

    def relay_links(self) -> list[tuple[int, int]]:
        """(device, next hop) of every D2D link that carried an update: relays and tree links."""
        links = {(r.device, r.relay) for r in self.routes if r.relay != r.device}
        return sorted(links | {(t.src, t.dst) for t in self.transfers if t.kind == "tree"})
