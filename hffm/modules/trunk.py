"""The native shared transformer trunk (the "foundation" part) that fuses tokens of all modalities.

`build_trunk` picks it or a pretrained Hugging Face trunk (hf_trunk.py) from ModelConfig.trunk.

It owns no adapter parameters: adapters and LoRA deltas come in at forward time, so one trunk
serves every sub-model of a process without being copied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hffm.modules.adapters import AdapterModule
from hffm.modules.attention import attention
from hffm.modules.config import ModelConfig

if TYPE_CHECKING:
    from hffm.modules.hf_trunk import HFTrunk


class TrunkLayer(nn.Module):
    """Pre-norm transformer layer whose linears accept an optional LoRA delta."""

    def __init__(self, width: int, heads: int, mlp_hidden: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp_hidden)
        self.fc2 = nn.Linear(mlp_hidden, width)

    @staticmethod
    def _lin(name: str, layer: nn.Linear, x: Tensor, adapter: AdapterModule | None) -> Tensor:
        if adapter is None:
            return layer(x)
        if not torch.is_grad_enabled():  # evaluation: the delta folded into the weight, one matmul instead of three
            return F.linear(x, layer.weight + adapter.weight_delta(name), layer.bias)
        return layer(x) + adapter.delta(name, x)

    def forward(self, h: Tensor, attend: Tensor, adapter: AdapterModule | None, mapped: bool = False) -> Tensor:
        """h [B, S, W]; attend [B, 1, 1, S] bool, True where a key may be attended.

        mapped: the call runs under `torch.func.vmap` over devices (batched training, no dropout).
        """
        b, s, w = h.shape
        qkv = self._lin("qkv", self.qkv, self.ln1(h), adapter)
        q, k, v = qkv.view(b, s, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        if mapped:
            att = attention(q, k, v, attend)
        else:
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=drop)
        att = att.transpose(1, 2).reshape(b, s, w)
        h = h + F.dropout(self._lin("out", self.out, att, adapter), drop, self.training)
        mid = F.gelu(self._lin("fc1", self.fc1, self.ln2(h), adapter))
        h = h + F.dropout(self._lin("fc2", self.fc2, mid, adapter), drop, self.training)
        return h if adapter is None else adapter.bottleneck(h)


class Trunk(nn.Module):
    """Stack of TrunkLayers and a final LayerNorm."""

    def __init__(self, width: int, layers: int, heads: int, mlp_hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TrunkLayer(width, heads, mlp_hidden, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.width, self.heads, self.mlp_hidden = width, heads, mlp_hidden

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def adapter_linears(self) -> dict[str, tuple[int, int]]:
        """Each layer's linears that take a LoRA delta: name -> (in_features, out_features)."""
        w, hid = self.width, self.mlp_hidden
        return {"qkv": (w, 3 * w), "out": (w, w), "fc1": (w, hid), "fc2": (hid, w)}

    def forward(self, tokens: Tensor, key_padding_mask: Tensor | None = None,
                adapters: Mapping[int, AdapterModule] | None = None, mapped: bool = False) -> Tensor:
        """tokens [B, S, W]; key_padding_mask [B, S] True where a token is absent/padding.

        adapters maps a layer index to its AdapterModule; layers without one run unadapted.
        mapped: runs under `torch.func.vmap` over devices (see `hffm.modules.attention`).
        """
        adapters = adapters or {}
        unknown = sorted(set(adapters) - set(range(len(self.layers))))
        if unknown:
            raise ValueError(f"trunk: adapters given for layers {unknown}, trunk has {len(self.layers)} layers")
        attend = None
        if key_padding_mask is not None:
            if key_padding_mask.shape != tokens.shape[:2]:
                raise ValueError(f"trunk: key_padding_mask shape {tuple(key_padding_mask.shape)} does not "
                                 f"match tokens {tuple(tokens.shape[:2])}")
            attend = (~key_padding_mask.bool())[:, None, None, :]
        h = tokens
        for i, layer in enumerate(self.layers):
            h = layer(h, attend, adapters.get(i), mapped)
        return self.norm(h)


def build_trunk(cfg: ModelConfig) -> Trunk | HFTrunk:
    """The native Trunk from the config's sizes, or the Hugging Face model `cfg.trunk` names (frozen)."""
    if not cfg.hf_trunk:
        return Trunk(cfg.width, cfg.trunk_layers, cfg.trunk_heads, cfg.width * cfg.mlp_ratio, cfg.dropout)
    from hffm.modules.hf_trunk import HFTrunk

    return HFTrunk.load(cfg.trunk, cfg.trunk_weights)


def resolve_config(cfg: ModelConfig, trunk: Trunk | HFTrunk) -> ModelConfig:
    """The config the bank builds with: a pretrained trunk's sizes, and text_encoder 'auto' decided."""
    text = cfg.text_encoder
    if text == "auto":
        text = "trunk" if cfg.hf_trunk else "native"
    if not cfg.hf_trunk:
        return replace(cfg, text_encoder=text)
    return replace(cfg, width=trunk.width, trunk_layers=trunk.num_layers, trunk_heads=trunk.heads,
                   text_encoder=text)
