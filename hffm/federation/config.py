"""Typed configuration of a federated run (the ``federation`` config group)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hffm.config_checks import closest
from hffm.federation.aggregate import RULES
from hffm.federation.compression import AUTO, CODECS, Codebook, codebook_of, codec_of, topk_warmup_fraction
from hffm.federation.d2d_modes import MODES as D2D_MODES
from hffm.federation.policy import PLACES, Mode, default_places
from hffm.modules.optim import OPTIMIZERS
from hffm.spec import KINDS

DISTORTION = {"none": 0.0, "fp16": 3.9e-8, "bf16": 2.7e-6, "int8": 7.6e-6, "int8_channel": 7.2e-6, "topk": 0.84,
              "lowrank": 0.10}
"""Default distortion per level: the mean relative squared error of one device update, measured by
experiments/compression.py on the 40-device preset with the tiny model (experiments/results/compression); measure
again for another model."""
TOPK_MOMENTUM = 0.7
"""Top-k's default momentum correction (``compression_momentum``): of 0.3 / 0.5 / 0.7 / 0.9 on the 40-device preset
(16 rounds), 0.7 lost least: -0.67 points over 5 seeds against -1.23 for 0.5, better on 4 of the 5, though inside
the plan noise (experiments/results/compression/variants, docs/compression.md)."""


@dataclass
class FederationConfig:
    """How devices, edges and the cloud train together.

    The paper's methods are settings of this one loop: ``mode=local`` (no aggregation), ``mode=star``
    (every device to the cloud every round), ``e_agg=0`` (edge only), ``e_agg=k`` (HF-FM), and HF-FM
    with ``d2d=tree`` (HF-FM + D2D).
    """

    mode: Mode = Mode.hierarchical
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
    """Local optimizer, a name of ``hffm.modules.optim.OPTIMIZERS``: adamw, adam or sgd (momentum 0.9); batched
    and one-device training step with the same arithmetic."""
    participation: float = 1.0
    """Fraction of devices drawn to train each round (at least one per round)."""
    rule: str = "mean"
    """Aggregation rule at edge and cloud: mean, median, trimmed_mean or clip."""
    trim_fraction: float = 0.1
    max_norm: float = 1.0
    max_update_norm: float | None = None
    """Reject a device update whose L2 distance from the edge's module state exceeds this (None: no
    norm check). NaN/Inf and wrong-shape updates are always rejected."""
    deadline_s: float | None = None
    """Round deadline (s): a device whose compute + upload would end later misses the round (it trains and is
    charged for that, but its update is not aggregated); None: no deadline. Hierarchical mode only."""
    deadline_quantile: float | None = None
    """Derive each round's deadline from the round itself: the time by which this share of the round's sending
    devices' updates reach their edges on the ledger's timeline (0.9: the slowest 10 % miss the round; 1.0: none).
    Instead of a guessed ``deadline_s`` (set one or the other); None: off. Hierarchical mode only."""
    policy: dict[str, str] = field(default_factory=default_places)
    """Module kind -> hierarchical | edge | personal."""
    d2d: str = "none"
    """D2D cooperation inside a cluster, a mode of ``hffm.federation.d2d_modes.MODES``: none (direct uploads),
    relay (the plan's one-hop relays upload for their neighbours), tree (averages flow up an aggregation tree
    to one uploader per connected group; exact for the mean rule) or gossip (consensus among each module's
    holders, then one upload per group). Modes that use D2D links need mode=hierarchical."""
    relay_aggregates: bool = True
    """A relay averages what it received with its own update before uploading (one copy per module)."""
    cons_rounds: int = 2
    """Gossip steps per round with ``d2d=gossip``."""
    d2d_fetch: bool = False
    """A device lacking a personal module takes a D2D neighbour's trained copy instead of the edge's
    (needs ``d2d`` other than none)."""
    compression: str = "none"
    """How updates leave the devices (``hffm.federation.compression.CODECS``): none, fp16, bf16, int8 (one scale
    a tensor), int8_channel (one a row), topk (with error feedback), lowrank (with error feedback), or auto (the
    solver picks a level of ``compression_levels`` per device each round; needs solver=joint)."""
    compression_kinds: dict[str, str] = field(default_factory=dict)
    """Per module kind, a codec that overrides ``compression`` for that kind (e.g. adapter: lowrank)."""
    compression_topk: float = 0.1
    """Fraction of each tensor's entries top-k sends (of each module's with ``compression_topk_scope=module``)."""
    compression_topk_scope: str = "tensor"
    """What top-k ranks: each ``tensor`` on its own, or the whole ``module`` (one threshold over its tensors)."""
    compression_topk_warmup: int = 0
    """Rounds of top-k warm-up: round t < warmup keeps the fraction compression_topk ** ((t + 1) / (warmup + 1))
    (larger, so more bytes, which planning and the ledger charge), then compression_topk. 0: off."""
    compression_momentum: float | None = None
    """Momentum correction of top-k's error feedback (Deep Gradient Compression): the device accumulates a
    velocity u = momentum u + delta into its residual instead of the delta, clearing a sent entry's velocity.
    null: ``TOPK_MOMENTUM`` with compression_feedback=residual, off with ef21; 0: off; a value > 0 needs
    compression_feedback=residual."""
    compression_rank: int = 2
    """Rank low-rank sends (matrices only; a matrix it would not shrink goes dense)."""
    compression_feedback: str = "residual"
    """Error feedback of topk / lowrank: residual (the device keeps what it did not send and adds it to the next
    delta) or ef21 (device and edge keep one estimate of the device's update; the device sends its compressed
    change, the edge applies the estimate)."""
    compression_levels: list[str] = field(default_factory=lambda: ["none", "fp16", "int8", "topk"])
    """The levels ``auto`` chooses from."""
    compression_distortion: dict[str, float] = field(default_factory=lambda: dict(DISTORTION))
    """Level -> its distortion: the relative squared error ||decoded - delta||^2 / ||delta||^2 of one round's
    update, measured on the model's real updates by experiments/compression.py (``--measure``). What auto's
    budget and penalty count."""
    compression_budget: float | None = 0.05
    """auto: the largest mean distortion over a round's devices (None: no budget, only the penalty)."""
    compression_penalty: float = 0.0
    """auto: seconds of round latency one unit of summed distortion is worth (0: the budget alone decides)."""
    batched: bool = True
    """Train (and evaluate) the devices of a round together in batched passes (`hffm.engine.batched`);
    false runs them one at a time. Both give the same module states up to float summation order.
    Models with dropout, a Hugging Face text encoder or a trainable trunk always run one at a time."""
    max_batch_devices: int = 64
    """Most devices in one batched pass (memory grows with it)."""
    eval_every: int = 1
    eval_samples: int = 2000
    """Samples of the global test set every evaluation uses: one seeded sample, the same for every tier
    and round, so evaluation costs the same however much data the run made (0 = the whole set)."""
    eval_device_samples: int = 1000
    """Samples of that evaluation sample each device's model sees for its ``global/`` metrics (the headline
    accuracy): a seeded sub-sample, the same for every device and round (0 = all of it; at most all of it). With
    64 evaluated devices this tier costs 64 x its size in forwards; the edges keep the whole evaluation sample.
    The default leaves every run with up to 1,000 evaluation samples unchanged (docs/performance.md)."""
    checkpoint_every: int = 0
    """Save the whole federation state every N rounds (0 = only at the end)."""
    resume: str | None = None
    """Checkpoint file to resume from."""

    def __post_init__(self) -> None:
        problems = []
        try:
            self.mode = Mode(self.mode)
        except ValueError:
            problems.append(f"federation.mode={self.mode!r}: choose one of {[k.value for k in Mode]}")
        d2d = D2D_MODES.get(str(self.d2d))
        if d2d is None:
            problems.append(f"federation.d2d={self.d2d!r}: choose one of {sorted(D2D_MODES)}")
        elif d2d.uses_links and self.mode in (Mode.star, Mode.local):
            problems.append(f"federation.d2d={self.d2d}: mode={self.mode} has no edge rounds to cooperate "
                            "in; use mode=hierarchical or d2d=none")
        linked = sorted(m.name for m in D2D_MODES.values() if m.uses_links)
        if self.d2d_fetch and d2d is not None and not d2d.uses_links:
            problems.append(f"federation.d2d_fetch=true needs D2D links: set federation.d2d to one of {linked}")
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
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"federation.optimizer={self.optimizer!r}: choose one of {sorted(OPTIMIZERS)}"
                            + closest(str(self.optimizer), sorted(OPTIMIZERS)))
        if self.weight_decay < 0:
            problems.append(f"federation.weight_decay={self.weight_decay}: must be >= 0")
        if not 0 < self.participation <= 1:
            problems.append(f"federation.participation={self.participation}: must be in (0, 1]")
        if self.rule not in RULES:
            problems.append(f"federation.rule={self.rule!r}: choose one of {sorted(RULES)}")
        if self.max_update_norm is not None and not 0 < self.max_update_norm < float("inf"):
            problems.append(f"federation.max_update_norm={self.max_update_norm}: must be > 0 and finite, or null")
        if self.deadline_s is not None and not 0 < self.deadline_s < float("inf"):
            problems.append(f"federation.deadline_s={self.deadline_s}: must be > 0 and finite (seconds), or null")
        if self.deadline_s is not None and self.mode != Mode.hierarchical:
            problems.append(f"federation.deadline_s is set but mode={self.mode.value}: deadlines are checked on the "
                            "hierarchical round's timeline; use mode=hierarchical or deadline_s=null")
        if self.deadline_quantile is not None:
            if not 0 < self.deadline_quantile <= 1:
                problems.append(f"federation.deadline_quantile={self.deadline_quantile}: must be in (0, 1] (the share "
                                "of a round's updates that arrive in time), or null")
            if self.deadline_s is not None:
                problems.append(f"federation.deadline_quantile={self.deadline_quantile} and federation.deadline_s="
                                f"{self.deadline_s} are both set: keep one (the other null)")
            if self.mode != Mode.hierarchical:
                problems.append(f"federation.deadline_quantile is set but mode={self.mode.value}: deadlines are "
                                "checked on the hierarchical round's timeline; use mode=hierarchical or null")
        if self.cons_rounds < 0:
            problems.append(f"federation.cons_rounds={self.cons_rounds}: must be >= 0")
        if self.max_batch_devices < 1:
            problems.append(f"federation.max_batch_devices={self.max_batch_devices}: must be >= 1")
        if self.eval_samples < 0:
            problems.append(f"federation.eval_samples={self.eval_samples}: must be >= 0 (0 = the whole test set)")
        if self.eval_device_samples < 0:
            problems.append(f"federation.eval_device_samples={self.eval_device_samples}: must be >= 0 "
                            "(0 = all of the evaluation sample)")
        if self.eval_every < 1:
            problems.append(f"federation.eval_every={self.eval_every}: must be >= 1")
        if self.checkpoint_every < 0:
            problems.append(f"federation.checkpoint_every={self.checkpoint_every}: must be >= 0")
        problems += self._compression_problems()
        for kind, place in self.policy.items():
            if kind not in KINDS or place not in PLACES:
                problems.append(
                    f"federation.policy.{kind}={place!r}: kinds are {list(KINDS)}, places {list(PLACES)}"
                )
        if problems:
            raise ValueError("invalid federation config:\n  " + "\n  ".join(problems))

    def codebook(self) -> Codebook:
        """The run's codec choice (``hffm.federation.compression``)."""
        return codebook_of(self.compression, self.compression_kinds, self.compression_topk, self.compression_rank,
                           self.compression_feedback, self.compression_topk_scope, self.momentum())

    def momentum(self) -> float:
        """The momentum correction in force: ``compression_momentum``, or its default for the feedback."""
        if self.compression_momentum is not None:
            return self.compression_momentum
        return TOPK_MOMENTUM if self.compression_feedback == "residual" else 0.0

    def at_round(self, t: int) -> FederationConfig:
        """The config in force in round ``t`` (0-based): during the top-k warm-up, the round's larger fraction, so
        the codec, the planner and the ledger all use it; otherwise this config itself."""
        if t >= self.compression_topk_warmup:
            return self
        return dataclasses.replace(self, compression_topk=topk_warmup_fraction(self.compression_topk,
                                                                               self.compression_topk_warmup, t))

    def _compression_problems(self) -> list[str]:
        try:
            self.codebook()
        except ValueError as exc:
            return [str(exc)]
        out = []
        if self.compression_topk_warmup < 0:
            out.append(f"federation.compression_topk_warmup={self.compression_topk_warmup}: must be >= 0 (rounds; "
                       "0: off)")
        for name in self.compression_levels:
            try:
                codec_of(name, "federation.compression_levels")
            except ValueError as exc:
                out.append(str(exc))
            else:
                if name not in self.compression_distortion:
                    out.append(f"federation.compression_distortion has no entry for level {name!r} of "
                               f"compression_levels: add its measured distortion (experiments/compression.py "
                               "--measure) or drop the level")
        for name, value in self.compression_distortion.items():
            if name not in CODECS:
                out.append(f"federation.compression_distortion.{name}: no such codec; codecs are {sorted(CODECS)}")
            elif not 0 <= value < float("inf"):
                out.append(f"federation.compression_distortion.{name}={value}: must be finite and >= 0")
        if self.compression == AUTO and not self.compression_levels:
            out.append("federation.compression=auto with no compression_levels: offer at least one, e.g. [none, int8]")
        if self.compression_budget is not None and not 0 <= self.compression_budget < float("inf"):
            out.append(f"federation.compression_budget={self.compression_budget}: must be >= 0 and finite, or null")
        if not 0 <= self.compression_penalty < float("inf"):
            out.append(f"federation.compression_penalty={self.compression_penalty}: must be >= 0 and finite")
        return out
