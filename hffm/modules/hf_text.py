"""Text encoders backed by a Hugging Face model: a separate backbone, or the pretrained trunk's own embeddings.

The benchmark's text modality is word ids into its own vocabulary (id 0 = padding). We map each
word to the HF tokenizer's id of its first sub-token once, run the HF model over the mapped ids
and project its hidden size to the bank's width. With a frozen backbone only the projection and
the modality-type embedding are federated: the backbone is a fixed pretrained part, reloaded from
disk, never uploaded (listed in `frozen_prefixes`, which the bank leaves out of module state).

With a Hugging Face trunk, `TrunkTextEncoder` (text_encoder 'auto'/'trunk') instead looks the words up
in the trunk's own tokenizer and word embeddings (held by reference, not copied) and trains only a
residual bottleneck and a modality-type embedding on top of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hffm.modules.hf_trunk import HFTrunk, resolve_model_dir
from hffm.spec import ModalitySpec

__all__ = ["HFTextEncoder", "TrunkTextEncoder", "resolve_model_dir", "vocab_ids"]


def vocab_ids(tokenizer: Any, vocab: Sequence[str]) -> Tensor:
    """Tokenizer id of each word's first sub-token (word 0 is padding -> the pad id; unknown -> unk)."""
    if len(vocab) < 2:
        raise ValueError(f"text encoder: vocab needs padding (id 0) and at least one word, got {len(vocab)}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else pad
    ids = [pad]
    for word in list(vocab)[1:]:
        sub = tokenizer(str(word), add_special_tokens=False)["input_ids"]
        ids.append(sub[0] if sub else unk)
    return torch.tensor(ids, dtype=torch.long)


def _check_ids(x: Tensor, lookup: Tensor) -> Tensor:
    x = x.long()
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= lookup.numel()):
        raise ValueError(f"text encoder: word ids must lie in [0, {lookup.numel()}), "
                         f"got [{int(x.min())}, {int(x.max())}]")
    return x


class HFTextEncoder(nn.Module):
    """Word ids [B, L] -> HF model -> linear projection: tokens [B, L, width] and padding mask [B, L]."""

    frozen_prefixes: tuple[str, ...] = ()
    lookup: Tensor

    def __init__(self, model_dir: str, vocab: Sequence[str], width: int, freeze_backbone: bool = True,
                 spec: ModalitySpec | None = None) -> None:
        super().__init__()
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:
            raise ValueError("HFTextEncoder needs the `transformers` package (pip install '.[hf]')") from err
        self.spec = spec
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.backbone = AutoModel.from_pretrained(model_dir, local_files_only=True)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.frozen_prefixes = ("backbone.",)
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.register_buffer("lookup", vocab_ids(tokenizer, vocab), persistent=False)
        hidden = int(self.backbone.config.hidden_size)
        self.proj = nn.Linear(hidden, width)
        self.type_embed = nn.Parameter(torch.randn(width) * 0.02)

    def train(self, mode: bool = True) -> HFTextEncoder:
        """Keep a frozen backbone in eval mode (no dropout) whatever the rest does."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = _check_ids(x, self.lookup)
        pad = x == 0
        ids = self.lookup[x]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
            hidden = self.backbone(input_ids=ids, attention_mask=(~pad).long()).last_hidden_state
        return self.proj(hidden) + self.type_embed, pad


class TrunkTextEncoder(nn.Module):
    """Word ids [B, L] -> the trunk's word embeddings (frozen, shared) + a trained residual bottleneck.

    The trunk's embedding block later adds its own positions and LayerNorm, so text reaches the
    pretrained layers the way it was pretrained; only `down`, `up` and `type_embed` are federated.
    """

    lookup: Tensor

    def __init__(self, spec: ModalitySpec, trunk: HFTrunk, vocab: Sequence[str], bottleneck: int) -> None:
        super().__init__()
        self.spec = spec
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(trunk.model_dir, local_files_only=True)
        self.register_buffer("lookup", vocab_ids(tokenizer, vocab), persistent=False)
        self._embed = [trunk.word_embeddings()]  # a list: held by reference, not registered (not federated)
        width = trunk.width
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.type_embed = nn.Parameter(torch.randn(width) * 0.02)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = _check_ids(x, self.lookup)
        emb = self._embed[0](self.lookup[x])
        return emb + self.up(torch.nn.functional.gelu(self.down(emb))) + self.type_embed, x == 0
