"""Per-layer adapter module: a serial bottleneck adapter plus LoRA deltas on the layer's linears.

The trunk is shared once per process and frozen, so an adapter is not inserted into it: the trunk
asks the adapter passed in at forward time for its deltas (the native trunk calls it directly, a
Hugging Face trunk through forward hooks held only for that call). Up projections (bottleneck `up`,
LoRA `B`) start at zero, so a fresh adapter leaves the pretrained trunk's output unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn


class LoRA(nn.Module):
    """Low-rank delta for one linear: y += (alpha / r) * x @ A^T @ B^T, with B zero at init."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, x: Tensor) -> Tensor:
        # scaled at rank r, not at the output's width: the same product, a far smaller multiply
        return ((x @ self.A.t()) * self.scale) @ self.B.t()

    def weight_delta(self) -> Tensor:
        """The delta as a weight [out_features, in_features]: linear(x, W + delta) is linear(x, W) + self(x)."""
        return (self.B * self.scale) @ self.A


class AdapterModule(nn.Module):
    """Everything trainable for one trunk layer: LoRA on each of its linears and a bottleneck adapter.

    linears: the layer's linears as name -> (in_features, out_features), from the trunk's
    `adapter_linears()` (native: qkv / out / fc1 / fc2; a Hugging Face layer: its own nn.Linear paths).
    """

    def __init__(self, width: int, linears: Mapping[str, tuple[int, int]], bottleneck: int, rank: int,
                 alpha: float) -> None:
        super().__init__()
        if not linears:
            raise ValueError("AdapterModule: the trunk layer has no linears to attach LoRA to")
        self.lora = nn.ModuleDict({k: LoRA(i, o, rank, alpha) for k, (i, o) in linears.items()})
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def delta(self, linear: str, x: Tensor) -> Tensor:
        """LoRA delta for the trunk linear named `linear` on input x."""
        return self.lora[linear](x)

    def weight_delta(self, linear: str) -> Tensor:
        """LoRA delta of the trunk linear named `linear` as a weight (to fold into it)."""
        return cast(LoRA, self.lora[linear]).weight_delta()

    def bottleneck(self, h: Tensor) -> Tensor:
        """Serial adapter applied to the layer output (residual): h + up(gelu(down(h)))."""
        return h + self.up(torch.nn.functional.gelu(self.down(h)))
