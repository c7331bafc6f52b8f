"""Names and shapes shared by the data, the model and the federation.

A modality is something a device senses; a task is something it predicts. Both the benchmark
generator and the module bank are built from these specs, so a user's own dataset plugs in by
describing itself with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    from torch import Tensor


ModalityKind = Literal["image", "text", "signal"]
TaskKind = Literal["classification", "regression"]
KINDS = ("encoder", "prompt", "expert", "adapter", "head")
"""The federated module kinds; a module is named ``<kind>/<key>``."""
CONTAINER = {"encoder": "encoders", "prompt": "prompts", "expert": "experts", "adapter": "adapters", "head": "heads"}
"""Where a model or bank keeps each kind: module ``<kind>/<key>`` is ``getattr(model, CONTAINER[kind])[key]``."""
StateDict: TypeAlias = "dict[str, Tensor]"
"""One module's tensors by key."""
ModuleStates = dict[str, StateDict]
"""Module name -> its state: what a device trains, an edge aggregates, a checkpoint holds."""

MISSING_LABEL = -100
"""A classification target that is not there (an unlabelled sample, or a question of another task):
losses and metrics skip it. The value is PyTorch's ``cross_entropy`` ``ignore_index``."""


@dataclass(frozen=True)
class ModalitySpec:
    """One input modality.

    image: float tensor (channels, height, width); text: long tensor (length,) of token ids in
    [0, vocab_size); signal: float tensor (channels, length), e.g. radio I/Q samples.
    """

    name: str
    kind: ModalityKind
    shape: tuple[int, ...]
    vocab_size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("image", "text", "signal"):
            raise ValueError(f"modality {self.name!r}: kind must be image, text or signal, got {self.kind!r}")
        if self.kind == "text" and not self.vocab_size:
            raise ValueError(f"modality {self.name!r}: a text modality needs vocab_size > 0")


@dataclass(frozen=True)
class TaskSpec:
    """One prediction task: classification targets are long class ids, regression targets floats."""

    name: str
    kind: TaskKind
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "regression"):
            raise ValueError(f"task {self.name!r}: kind must be classification or regression, got {self.kind!r}")
        if self.kind == "classification" and (self.num_classes is None or self.num_classes < 2):
            raise ValueError(f"task {self.name!r}: a classification task needs num_classes >= 2")


def rows_trained(num_rows: int, batch_size: int, steps: int) -> int:
    """Rows ``steps`` mini-batches of ``batch_size`` draw from ``num_rows`` samples, passes of reshuffled batches
    (the last one of a pass short): the compute a device really does, which planning and the ledger charge."""
    if num_rows <= 0 or steps <= 0:
        return 0
    full, rest = divmod(num_rows, batch_size)
    sizes = [batch_size] * full + ([rest] if rest else [])
    passes, extra = divmod(steps, len(sizes))
    return passes * num_rows + sum(sizes[:extra])
