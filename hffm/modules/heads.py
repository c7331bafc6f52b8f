"""Task prompts and task heads.

A task's prompt is `prompt_len` learnable tokens prepended to the sequence; its head pools the
trunk/MoE output at those prompt positions. Regression heads predict in a normalised space and
carry the target mean/scale as buffers (set from data by `set_target_scale`, e.g. by pretraining):
`forward` returns predictions in the target's own units and `loss` is the MSE of normalised values,
so targets of any scale train with the same learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hffm.spec import MISSING_LABEL, TaskSpec


class Prompt(nn.Module):
    """Learnable prompt tokens of one task: [prompt_len, width]."""

    def __init__(self, prompt_len: int, width: int) -> None:
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(prompt_len, width) * 0.02)

    def forward(self, batch_size: int) -> Tensor:
        return self.tokens.unsqueeze(0).expand(batch_size, -1, -1)


class ClassificationHead(nn.Module):
    """LayerNorm + linear over the pooled prompt output: logits [B, num_classes]."""

    def __init__(self, spec: TaskSpec, width: int) -> None:
        super().__init__()
        self.spec = spec
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, int(spec.num_classes or 0))

    def forward(self, pooled: Tensor) -> Tensor:
        return self.fc(self.norm(pooled))

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy over the labelled samples (0 when none is); target holds long class ids [B]."""
        if target.dtype.is_floating_point or target.dim() != 1:
            raise ValueError(f"task {self.spec.name!r}: classification targets must be long class ids [B], "
                             f"got {target.dtype} {tuple(target.shape)}")
        weight = self.labelled(target).to(output.dtype)
        return (self.per_sample_loss(output, target) * weight).sum() / weight.sum().clamp(min=1)

    def per_sample_loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy of each sample [B], 0 where the label is missing (batched training masks and
        averages it per device)."""
        return F.cross_entropy(output, target.long(), reduction="none", ignore_index=MISSING_LABEL)

    @staticmethod
    def labelled(target: Tensor) -> Tensor:
        """Bool [B]: the sample has a label (not ``MISSING_LABEL``)."""
        return target != MISSING_LABEL


class RegressionHead(nn.Module):
    """LayerNorm + linear to one value; predictions are denormalised with the target mean/scale buffers."""

    target_mean: Tensor
    target_scale: Tensor

    def __init__(self, spec: TaskSpec, width: int) -> None:
        super().__init__()
        self.spec = spec
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 1)
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_scale", torch.ones(()))

    def set_target_scale(self, mean: float, scale: float) -> None:
        """Set the normalisation of targets (scale > 0), e.g. the training targets' mean and std."""
        if not scale > 0:
            raise ValueError(f"task {self.spec.name!r}: target scale must be > 0, got {scale}")
        self.target_mean.fill_(float(mean))
        self.target_scale.fill_(float(scale))

    def forward(self, pooled: Tensor) -> Tensor:
        return self.fc(self.norm(pooled)).squeeze(-1) * self.target_scale + self.target_mean

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """MSE between normalised prediction and normalised target."""
        if target.dim() != 1:
            raise ValueError(f"task {self.spec.name!r}: regression targets must be floats [B], "
                             f"got {tuple(target.shape)}")
        return self.per_sample_loss(output, target).mean()

    def per_sample_loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Squared error of normalised values, per sample [B]."""
        diff = (output - target.to(output.dtype)) / self.target_scale
        return diff * diff

    @staticmethod
    def labelled(target: Tensor) -> Tensor:
        """Bool [B]: every regression target is labelled."""
        return torch.ones_like(target, dtype=torch.bool)


Head = ClassificationHead | RegressionHead


def build_head(spec: TaskSpec, width: int) -> Head:
    """The head matching a task's kind."""
    return ClassificationHead(spec, width) if spec.kind == "classification" else RegressionHead(spec, width)
