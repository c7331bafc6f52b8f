"""Modality encoders: each maps one modality's batch to tokens of the shared width.

Every encoder returns `(tokens [B, N, width], pad [B, N] bool or None)` where `pad` marks tokens
that carry no content (text padding id 0). Each adds a learned modality-type embedding so the
trunk can tell modalities apart after concatenation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hffm.modules.conv import conv_layer
from hffm.spec import ModalitySpec


def check_input(spec: ModalitySpec, x: Tensor) -> None:
    """Raise ValueError naming the modality when a batch does not match its spec."""
    if spec.kind == "text":
        if x.dim() != 2 or x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"modality {spec.name!r} (text): expected integer token ids [B, L], got "
                             f"{x.dtype} {tuple(x.shape)}")
        if x.shape[1] > spec.shape[0]:
            raise ValueError(f"modality {spec.name!r} (text): length {x.shape[1]} exceeds the spec's "
                             f"{spec.shape[0]}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= int(spec.vocab_size or 0)):
            raise ValueError(f"modality {spec.name!r} (text): token ids must lie in [0, {spec.vocab_size}), "
                             f"got range [{int(x.min())}, {int(x.max())}]")
        return
    want = (-1, *spec.shape)
    if x.dim() != len(want) or tuple(x.shape[1:]) != tuple(spec.shape):
        raise ValueError(f"modality {spec.name!r} ({spec.kind}): expected shape [B, "
                         f"{', '.join(map(str, spec.shape))}], got {list(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"modality {spec.name!r} ({spec.kind}): expected a float tensor, got {x.dtype}")


class _Encoder(nn.Module):
    """Shared parts: a learned modality-type embedding and positions."""

    def __init__(self, spec: ModalitySpec, width: int, num_tokens: int) -> None:
        super().__init__()
        self.spec = spec
        self.num_tokens = num_tokens
        self.type_embed = nn.Parameter(torch.randn(width) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(num_tokens, width) * 0.02)

    def _finish(self, tokens: Tensor) -> Tensor:
        return tokens + self.pos_embed[: tokens.shape[1]] + self.type_embed


def _stem(stem: nn.Sequential, x: Tensor, mapped: bool) -> Tensor:
    """conv -> GELU -> conv; mapped (under vmap over devices): through `hffm.modules.conv`."""
    if not mapped:
        return stem(x)
    first, act, second = stem
    return conv_layer(second, act(conv_layer(first, x)))


class ImageEncoder(_Encoder):
    """Small conv stem then a patch embedding: [B, C, H, W] -> [B, (H/p)(W/p), width]."""

    def __init__(self, spec: ModalitySpec, width: int, patch: int, dropout: float = 0.0) -> None:
        if len(spec.shape) != 3:
            raise ValueError(f"modality {spec.name!r}: an image spec needs shape (C, H, W), got {spec.shape}")
        c, h, w = spec.shape
        if h < patch or w < patch:
            raise ValueError(f"modality {spec.name!r}: image {h}x{w} is smaller than image_patch={patch}")
        super().__init__(spec, width, (h // patch) * (w // patch))
        mid = max(width // 2, 4)
        self.stem = nn.Sequential(nn.Conv2d(c, mid, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(mid, width, patch, stride=patch))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mapped: bool = False) -> tuple[Tensor, Tensor | None]:
        """mapped: the call runs under `torch.func.vmap` over devices."""
        tokens = _stem(self.stem, x, mapped).flatten(2).transpose(1, 2)
        return self.drop(self._finish(tokens)), None


class SignalEncoder(_Encoder):
    """1-D conv over channels (e.g. radio I/Q [2, T]) then patching: [B, C, T] -> [B, T/p, width].

    iq_features (2-channel signals only): append |x|^2, Re x^2 and Im x^2 of x = I + jQ as three more
    input channels. Modulations differ in these second-order statistics (constant modulus of PSK, the
    non-zero mean of x^2 of BPSK), not in anything linear in the raw samples under a random carrier
    phase; with raw I/Q alone the one-GELU stem has to discover them first, and the benchmark's
    modulation task sat at chance for the first ~200 steps of pretraining.
    """

    def __init__(self, spec: ModalitySpec, width: int, patch: int, dropout: float = 0.0,
                 iq_features: bool = True) -> None:
        if len(spec.shape) != 2:
            raise ValueError(f"modality {spec.name!r}: a signal spec needs shape (C, T), got {spec.shape}")
        c, t = spec.shape
        if t < patch:
            raise ValueError(f"modality {spec.name!r}: signal length {t} is shorter than signal_patch={patch}")
        super().__init__(spec, width, t // patch)
        self.iq_features = bool(iq_features) and c == 2
        mid = max(width // 2, 4)
        self.stem = nn.Sequential(nn.Conv1d(c + 3 * self.iq_features, mid, 5, padding=2), nn.GELU(),
                                  nn.Conv1d(mid, width, patch, stride=patch))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mapped: bool = False) -> tuple[Tensor, Tensor | None]:
        """mapped: the call runs under `torch.func.vmap` over devices."""
        if self.iq_features:
            i, q = x[:, :1], x[:, 1:]
            x = torch.cat([x, i * i + q * q, i * i - q * q, 2 * i * q], dim=1)
        tokens = _stem(self.stem, x, mapped).transpose(1, 2)
        return self.drop(self._finish(tokens)), None


class TextEncoder(_Encoder):
    """Token + position embedding over word ids; id 0 is padding and is masked out of attention."""

    def __init__(self, spec: ModalitySpec, width: int, dropout: float = 0.0) -> None:
        if len(spec.shape) != 1 or not spec.vocab_size:
            raise ValueError(f"modality {spec.name!r}: a text spec needs shape (L,) and vocab_size, "
                             f"got {spec.shape}, {spec.vocab_size}")
        super().__init__(spec, width, spec.shape[0])
        self.embed = nn.Embedding(spec.vocab_size, width, padding_idx=0)
        nn.init.normal_(self.embed.weight, std=0.02)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mapped: bool = False) -> tuple[Tensor, Tensor | None]:
        """mapped: ignored (an embedding lookup maps over devices as it is)."""
        x = x.long()
        return self.drop(self._finish(self.embed(x))), x == 0
