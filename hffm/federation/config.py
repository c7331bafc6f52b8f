"""Typed configuration of a federated run (the ``federation`` config group)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hffm.federation.aggregate import RULES
from hffm.federation.policy import KINDS, PLACES

MODES = ("hierarchical", "star", "local")
SOLVERS = ("none", "equal", "greedy", "joint", "random")


def _default_policy() -> dict[str, str]:
    return {kind: "hierarchical" for kind in KINDS}


@dataclass
class FederationConfig:
    """How devices, edges and the cloud train together.

    The paper's methods are settings of this one loop: ``mode=local`` (no aggregation), ``mode=star``
    (every device to the cloud every round), ``e_agg=0`` (edge only), ``e_agg=k`` (HF-FM), and HF-FM
    with ``d2d_relay`` / ``d2d_gossip`` (HF-FM + D2D).
    """

    mode: str = "hierarchical"
    """hierarchical (devices -> edges -> cloud), star (devices -> cloud) or local (no aggregation)."""
    rounds: int = 10
    """Edge rounds to run."""
    e_agg: int = 2
    """The cloud aggregates every ``e_agg`` edge rounds; 0 = never (edge only)."""
    local_steps: int = 5
    """Optimizer steps each participating device runs per round."""
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    participation: float = 1.0
    """Fraction of devices drawn to train each round (at least one per round)."""
    rule: str = "mean"
    """Aggregation rule at edge and cloud: mean, median, trimmed_mean or clip."""
    trim_fraction: float = 0.1
    max_norm: float = 1.0
    policy: dict[str, str] = field(default_factory=_default_policy)
    """Module kind -> hierarchical | edge | personal."""
    d2d_relay: bool = False
    """Let the plan route a device's update through a D2D neighbour that uploads it."""
    relay_aggregates: bool = True
    """A relay averages what it received with its own update before uploading (one copy per module)."""
    d2d_tree: bool = True
    """Cluster aggregation over D2D: averages flow up a spanning tree to the best-uplink device, which
    uploads once per connected group (exact for the mean rule). The default D2D mode, so
    ``topology.d2d=true`` alone switches D2D on; set false to use ``d2d_relay`` or ``d2d_gossip``."""
    d2d_gossip: bool = False
    """Localized cooperative training: consensus averaging in each cluster, then one upload per cluster."""
    cons_rounds: int = 2
    """Gossip steps per round when ``d2d_gossip`` is on."""
    d2d_fetch: bool = False
    """A device lacking a personal module takes a D2D neighbour's trained copy instead of the edge's."""
    batched: bool = True
    """Train (and evaluate) the devices of a round together in batched passes (`hffm.federation.batched`);
    false runs them one at a time. Both give the same module states up to float summation order.
    Models with dropout, a Hugging Face text encoder or a trainable trunk always run one at a time."""
    max_batch_devices: int = 64
    """Most devices in one batched pass (memory grows with it)."""
    eval_every: int = 1
    eval_samples: int = 2000
    """Samples of the global test set every evaluation uses: one seeded sample, the same for every tier
    and round, so evaluation costs the same however much data the run made (0 = the whole set)."""
    test_fraction: float = 0.2
    """Share of each device's data kept for its personalized test."""
    checkpoint_every: int = 0
    """Save the whole federation state every N rounds (0 = only at the end)."""
    resume: str | None = None
    """Checkpoint file to resume from."""

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"federation.mode={self.mode!r}: choose one of {list(MODES)}")
        if self.rounds < 1:
            problems.append(f"federation.rounds={self.rounds}: must be >= 1")
        if self.e_agg < 0:
            problems.append(f"federation.e_agg={self.e_agg}: must be >= 0 (0 = edge only)")
        if self.local_steps < 1:
            problems.append(f"federation.local_steps={self.local_steps}: must be >= 1")
        if self.batch_size < 1:
            problems.append(f"federation.batch_size={self.batch_size}: must be >= 1")
        if not self.lr > 0:
            problems.append(f"federation.lr={self.lr}: must be > 0")
        if not 0 < self.participation <= 1:
            problems.append(f"federation.participation={self.participation}: must be in (0, 1]")
        if self.rule not in RULES:
            problems.append(f"federation.rule={self.rule!r}: choose one of {sorted(RULES)}")
        if self.cons_rounds < 0:
            problems.append(f"federation.cons_rounds={self.cons_rounds}: must be >= 0")
        if self.max_batch_devices < 1:
            problems.append(f"federation.max_batch_devices={self.max_batch_devices}: must be >= 1")
        if self.eval_samples < 0:
            problems.append(f"federation.eval_samples={self.eval_samples}: must be >= 0 (0 = the whole test set)")
        if self.eval_every < 1:
            problems.append(f"federation.eval_every={self.eval_every}: must be >= 1")
        if not 0 < self.test_fraction < 1:
            problems.append(f"federation.test_fraction={self.test_fraction}: must be in (0, 1)")
        if self.checkpoint_every < 0:
            problems.append(f"federation.checkpoint_every={self.checkpoint_every}: must be >= 0")
        for kind, place in self.policy.items():
            if kind not in KINDS or place not in PLACES:
                problems.append(
                    f"federation.policy.{kind}={place!r}: kinds are {list(KINDS)}, places {list(PLACES)}"
                )
        if problems:
            raise ValueError("invalid federation config:\n  " + "\n  ".join(problems))
