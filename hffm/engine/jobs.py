"""What the round loop hands the training engine, and what it gets back.

The loop builds one ``DeviceJob`` per device and calls a ``Trainer`` (by default ``train_devices``); a
trainer returns one ``TrainResult`` per job, in job order. Anything with that signature plugs in through
``run_federation(..., trainer=...)`` or ``hffm.train(..., trainer=...)``: a trainer wrapped to poison a device's
data, to log, or to profile, never a patched module attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from hffm.data.dataset import M3TDataset
from hffm.spec import ModuleStates, rows_trained  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from lightning.fabric import Fabric

    from hffm.modules.bank import ModuleBank


@dataclass(frozen=True)
class LocalConfig:
    """How every device trains in a round (from ``FederationConfig``)."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    batched: bool = True
    """Train the round's devices together in batched passes where the model allows it."""
    max_batch_devices: int = 64
    """Most devices in one batched pass."""
    packed: bool = True
    """Batched passes packed (`hffm.engine.packed`): every device of a wave (at most ``max_batch_devices``) in one
    pass a step, no padding; False: the vmapped passes over padded groups (`batched.plan_groups`)."""


@dataclass(frozen=True)
class DeviceJob:
    """One device's local training of a round: its data, the states it starts from, what it trains."""

    device: int
    data: M3TDataset
    states: Mapping[str, Mapping[str, Tensor]]
    trainable: tuple[str, ...]
    seed: int


@dataclass(frozen=True)
class TrainResult:
    """What one device's local training produced: its trained modules' states and its last step's losses
    (``loss`` and ``<task>/loss``; empty when it trained nothing)."""

    device: int
    states: ModuleStates
    losses: dict[str, float]
    samples: float = 0.0
    """Rows it really trained on over all its steps (``rows_trained``): what the ledger charges compute for."""


Trainer = Callable[["Fabric", "ModuleBank", Sequence[DeviceJob], LocalConfig], list[TrainResult]]
"""``trainer(fabric, bank, jobs, local) -> one TrainResult per job, in job order``."""
