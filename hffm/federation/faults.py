"""Faults and attacks as configuration: who drops, straggles, fails or attacks in a round, and what an attack sends.

Everything here is a pure function of the config, the run's seed and the round, drawn from its own random
stream, so switching faults on never changes the channel draws or the training of the devices it spares,
and the same seed gives the same faults. All faults are off by default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hffm.federation.attacks import ATTACKS, attack_of, attack_state

_STREAM = 0xFA17
"""Tag of the faults' random streams, SeedSequence([seed, _STREAM, ...]) (the world's streams use small tags)."""


@dataclass
class FaultsConfig:
    """The ``faults`` config group: per-round faults (probabilities) and attackers (a fixed fraction of devices)."""

    dropout: float = 0.0
    """Probability that a participant vanishes before uploading (its update never arrives)."""
    straggler: float = 0.0
    """Probability that a participant's compute is slowed this round by ``straggler_slowdown``."""
    straggler_slowdown: float = 4.0
    """Factor a straggler's compute time is multiplied by (>= 1)."""
    relay_failure: float = 0.0
    """Probability that a device chosen as a D2D relay fails mid-round (its clients upload directly)."""
    edge_outage: float = 0.0
    """Probability that an edge server is down for a round."""
    reattach: bool = True
    """During an outage, devices re-attach to the nearest edge that is up (true) or skip the round (false)."""
    attack: str = "none"
    """none | nan | inf | scale | signflip | random | alie | ipm | labelflip | labelflip_misreport
    (``hffm.federation.attacks.ATTACKS``)."""
    attack_fraction: float = 0.0
    """Share of devices that attack, chosen once from the seed (at least one when > 0)."""
    attack_scale: float = 10.0
    """Strength s of the scale, signflip and random attacks."""
    alie_z: float = 1.0
    """Standard deviations the alie attack shifts the honest mean by."""
    ipm_epsilon: float = 0.5
    """The ipm attack sends -ipm_epsilon x the honest mean update."""

    def __post_init__(self) -> None:
        problems = []
        for name in ("dropout", "straggler", "relay_failure", "edge_outage", "attack_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"faults.{name}={value}: must be a probability in [0, 1]")
        if not 1.0 <= self.straggler_slowdown < math.inf:
            problems.append(f"faults.straggler_slowdown={self.straggler_slowdown}: must be >= 1 and finite")
        if self.attack not in ATTACKS:
            problems.append(f"faults.attack={self.attack!r}: choose one of {list(ATTACKS)}")
        for name in ("attack_scale", "alie_z", "ipm_epsilon"):
            value = getattr(self, name)
            if not 0.0 < value < math.inf:
                problems.append(f"faults.{name}={value}: must be > 0 and finite")
        if problems:
            raise ValueError("invalid faults config:\n  " + "\n  ".join(problems))

    @property
    def active(self) -> bool:
        """Whether any fault or attack is switched on."""
        per_round = (self.dropout, self.straggler, self.relay_failure, self.edge_outage)
        return any(p > 0 for p in per_round) or (self.attack != "none" and self.attack_fraction > 0)


@dataclass(frozen=True)
class RoundFaults:
    """What goes wrong in one round (device and edge indices)."""

    dropped: frozenset[int] = frozenset()
    slowdown: Mapping[int, float] = field(default_factory=dict)
    """Straggler -> factor on its compute time."""
    failed_relays: frozenset[int] = frozenset()
    down_edges: frozenset[int] = frozenset()

    def metrics(self) -> dict[str, float]:
        return {"faults/dropped": float(len(self.dropped)), "faults/slowed": float(len(self.slowdown)),
                "faults/failed_relays": float(len(self.failed_relays)),
                "faults/down_edges": float(len(self.down_edges))}


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), _STREAM, *(int(t) for t in tags)]))


def attackers(cfg: FaultsConfig, num_devices: int, seed: int) -> frozenset[int]:
    """The devices that attack in every round: round(attack_fraction x N) of them (at least one), fixed by the seed."""
    if cfg.attack == "none" or cfg.attack_fraction <= 0 or num_devices < 1:
        return frozenset()
    k = min(num_devices, max(1, round(cfg.attack_fraction * num_devices)))
    chosen = _rng(seed, 0).choice(num_devices, size=k, replace=False)
    return frozenset(int(i) for i in chosen)


def draw_outages(cfg: FaultsConfig, seed: int, round_index: int, num_edges: int) -> frozenset[int]:
    """The edges down this round: drawn before the round is planned, from their own stream."""
    u_edge = _rng(seed, 1, round_index, 3).random(num_edges)
    return frozenset(int(e) for e in np.flatnonzero(u_edge < cfg.edge_outage))


def draw_round_faults(
    cfg: FaultsConfig, seed: int, round_index: int, participants: Sequence[int], relays: Sequence[int],
    num_edges: int,
) -> RoundFaults:
    """This round's faults: each kind from its own stream of the round (same inputs, same faults), so
    switching one fault on, or a change in who relays, never moves the draws of another.

    ``relays``: the devices the round's plan uses as relays (or tree parents).
    """
    people = sorted(int(d) for d in participants)
    relay_list = sorted({int(r) for r in relays})
    u_drop = _rng(seed, 1, round_index, 0).random(len(people))
    u_slow = _rng(seed, 1, round_index, 1).random(len(people))
    u_relay = _rng(seed, 1, round_index, 2).random(len(relay_list))
    return RoundFaults(
        dropped=frozenset(d for d, u in zip(people, u_drop) if u < cfg.dropout),
        slowdown={d: cfg.straggler_slowdown for d, u in zip(people, u_slow) if u < cfg.straggler},
        failed_relays=frozenset(r for r, u in zip(relay_list, u_relay) if u < cfg.relay_failure),
        down_edges=draw_outages(cfg, seed, round_index, num_edges),
    )


def reattach(device_edge: np.ndarray, distance: np.ndarray, down_edges: frozenset[int], allowed: bool) -> np.ndarray:
    """Each device's edge this round: its own if up, else the nearest edge that is up (``allowed``), else -1 (skip).

    ``distance``: [N, E] device-to-edge distances (metres). -1 also when every edge is down.
    """
    out = np.asarray(device_edge, dtype=int).copy()
    if not down_edges:
        return out
    down = np.zeros(distance.shape[1], dtype=bool)
    down[list(down_edges)] = True
    for i in np.flatnonzero(down[out]):
        if allowed and not down.all():
            out[i] = int(np.argmin(np.where(down, np.inf, distance[i])))
        else:
            out[i] = -1
    return out


def attack_strength(cfg: FaultsConfig) -> float:
    """The strength the configured attack reads (its record names the field)."""
    field_name = attack_of(cfg.attack).strength
    return float(getattr(cfg, field_name)) if field_name else 0.0


__all__ = ["ATTACKS", "FaultsConfig", "RoundFaults", "attack_state", "attack_strength", "attackers", "draw_outages",
           "draw_round_faults", "reattach"]
