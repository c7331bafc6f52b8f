"""The module bank: every named, separately aggregatable module of the M3T foundation model.

Names: `encoder/<modality>`, `prompt/<task>`, `expert/<i>`, `adapter/<layer>`, `head/<task>`.
The shared trunk ("trunk", kind "trunk") is the frozen foundation and is not a federated module,
so it is not in `names()`; it is the native small transformer or a pretrained Hugging Face model
(`ModelConfig.trunk`), whose sizes then replace the config's (`bank.cfg` is the resolved config).
Each module is created from a seed derived from (seed, name), so two banks with the same seed
start identical whatever other modalities or tasks they hold.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import TypeVar, cast

import torch
from torch import Tensor, nn

from hffm.modules.adapters import AdapterModule
from hffm.modules.config import ModelConfig
from hffm.modules.encoders import ImageEncoder, SignalEncoder, TextEncoder
from hffm.modules.heads import Prompt, RegressionHead, build_head
from hffm.modules.model import M3TModel
from hffm.modules.moe import Expert
from hffm.modules.trunk import build_trunk, resolve_config
from hffm.spec import CONTAINER, KINDS, ModalitySpec, TaskSpec

M = TypeVar("M", bound=nn.Module)


class ModuleBank(nn.Module):
    """All modules of the M3T FM; hands out sub-models that share its module objects and trunk."""

    def __init__(self, cfg: ModelConfig, modalities: Sequence[ModalitySpec], tasks: Sequence[TaskSpec],
                 vocab: Sequence[str] | None = None, seed: int = 0) -> None:
        super().__init__()
        if not modalities or not tasks:
            raise ValueError("ModuleBank needs at least one modality and one task")
        for kind, specs in (("modality", modalities), ("task", tasks)):
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                raise ValueError(f"ModuleBank: duplicate {kind} names in {names}")
            bad = [n for n in names if not n or "/" in n or "." in n]
            if bad:
                raise ValueError(f"ModuleBank: {kind} names must be non-empty without '/' or '.', got {bad}")
        self.seed = seed
        self.modalities = {m.name: m for m in modalities}
        self.tasks = {t.name: t for t in tasks}
        self.trunk = self._seeded("trunk", lambda: build_trunk(cfg))
        self.cfg = cfg = resolve_config(cfg, self.trunk)
        hidden = cfg.width * cfg.mlp_ratio
        linears = self.trunk.adapter_linears()
        self.encoders = nn.ModuleDict({m.name: self._seeded(f"encoder/{m.name}", partial(self._encoder, m, vocab))
                                       for m in modalities})
        self.prompts = nn.ModuleDict({t.name: self._seeded(f"prompt/{t.name}", lambda: Prompt(
            cfg.prompt_len, cfg.width)) for t in tasks})
        self.experts = nn.ModuleDict({str(i): self._seeded(f"expert/{i}", lambda: Expert(
            cfg.width, hidden, cfg.dropout)) for i in range(cfg.num_experts)})
        self.adapters = nn.ModuleDict({str(i): self._seeded(f"adapter/{i}", lambda: AdapterModule(
            cfg.width, linears, cfg.adapter_bottleneck, cfg.lora_rank, cfg.lora_alpha))
            for i in range(cfg.trunk_layers)})
        self.heads = nn.ModuleDict({t.name: self._seeded(f"head/{t.name}", partial(build_head, t, cfg.width))
                                    for t in tasks})
        self._size_cache: dict[str, tuple[int, int]] = {}
        self.derived: dict[tuple, object] = {}
        """Objects built from the bank and kept for reuse (one LightningModule per device signature)."""
        self._groups = {kind: getattr(self, CONTAINER[kind]) for kind in KINDS}

    def _seeded(self, name: str, make: Callable[[], M]) -> M:
        """Build a module from a seed derived from (bank seed, module name), leaving the global RNG alone."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
            return make()

    def _encoder(self, spec: ModalitySpec, vocab: Sequence[str] | None) -> nn.Module:
        cfg = self.cfg
        if spec.kind == "image":
            return ImageEncoder(spec, cfg.width, cfg.image_patch, cfg.dropout)
        if spec.kind == "signal":
            return SignalEncoder(spec, cfg.width, cfg.signal_patch, cfg.dropout, cfg.signal_iq_features)
        if cfg.text_encoder == "native":
            return TextEncoder(spec, cfg.width, cfg.dropout)
        from hffm.modules.hf_text import HFTextEncoder, HFTrunk, TrunkTextEncoder, resolve_model_dir

        if vocab is None:
            raise ValueError(f"modality {spec.name!r}: ModelConfig.text_encoder={cfg.text_encoder!r} needs the "
                             "word vocabulary: pass ModuleBank(..., vocab=[...])")
        if len(vocab) != spec.vocab_size:
            raise ValueError(f"modality {spec.name!r}: vocab has {len(vocab)} words, spec.vocab_size is "
                             f"{spec.vocab_size}")
        if cfg.text_encoder == "trunk":
            # ModelConfig rejects text_encoder='trunk' unless the trunk is a Hugging Face one
            return TrunkTextEncoder(spec, cast(HFTrunk, self.trunk), vocab, cfg.adapter_bottleneck)
        return HFTextEncoder(resolve_model_dir(cfg.text_encoder, "text_encoder"), vocab, cfg.width,
                             freeze_backbone=cfg.text_freeze_backbone, spec=spec)

    # ---- names and sizes -------------------------------------------------------------------
    def names(self) -> list[str]:
        """Federated module names in a stable order: encoders, prompts, experts, adapters, heads."""
        return [f"{kind}/{key}" for kind in KINDS for key in self._groups[kind]]

    def _split(self, name: str) -> tuple[str, str]:
        kind, _, key = name.partition("/")
        if kind not in self._groups or key not in self._groups[kind]:
            raise KeyError(f"unknown module {name!r}; the bank has {self.names()} (and 'trunk')")
        return kind, key

    def kind(self, name: str) -> str:
        """Kind of a module: encoder, prompt, expert, adapter, head (or 'trunk')."""
        return "trunk" if name == "trunk" else self._split(name)[0]

    def tags(self, name: str) -> dict[str, str]:
        """What a module belongs to: {'modality': m}, {'task': t}, {'expert': i} or {'layer': l}."""
        if name == "trunk":
            return {}
        kind, key = self._split(name)
        label = {"encoder": "modality", "prompt": "task", "head": "task", "expert": "expert",
                 "adapter": "layer"}[kind]
        return {label: key}

    def module(self, name: str) -> nn.Module:
        """The module object itself (shared by every sub-model that holds it)."""
        if name == "trunk":
            return self.trunk
        kind, key = self._split(name)
        return self._groups[kind][key]

    def _federated(self, name: str) -> dict[str, Tensor]:
        """The module's federated tensors themselves (parameters and buffers; not a frozen HF backbone)."""
        module = self.module(name)
        frozen = tuple(getattr(module, "frozen_prefixes", ()))
        return {k: v for k, v in module.state_dict(keep_vars=True).items() if not (frozen and k.startswith(frozen))}

    def module_state(self, name: str) -> dict[str, Tensor]:
        """Detached clones of a module's tensors (parameters and buffers; not a frozen HF backbone)."""
        return {k: v.detach().clone() for k, v in self._federated(name).items()}

    def num_params(self, name: str) -> int:
        """Parameters in the module's federated state (sizes never change: computed once)."""
        return self._sizes(name)[0]

    def num_bytes(self, name: str) -> int:
        """Bytes of the module's federated state (what an upload of it carries)."""
        return self._sizes(name)[1]

    def _sizes(self, name: str) -> tuple[int, int]:
        if name not in self._size_cache:
            params = dict(self.module(name).named_parameters())
            tensors = self._federated(name)
            self._size_cache[name] = (sum(v.numel() for k, v in tensors.items() if k in params),
                                      sum(v.numel() * v.element_size() for v in tensors.values()))
        return self._size_cache[name]

    # ---- loading ------------------------------------------------------------------------------
    def load_module_state(self, name: str, state: Mapping[str, Tensor]) -> None:
        """Copy `state` into the module in place (strict: same keys and shapes)."""
        own = self._federated(name)
        if own.keys() != state.keys():
            missing = sorted(set(own) - set(state))
            extra = sorted(set(state) - set(own))
            raise ValueError(f"module {name!r}: state keys do not match (missing {missing}, unexpected {extra})")
        for key, value in state.items():
            if value.shape != own[key].shape:
                raise ValueError(f"module {name!r}: key {key!r} has shape {tuple(value.shape)}, "
                                 f"expected {tuple(own[key].shape)}")
        with torch.no_grad():
            for key, value in state.items():
                own[key].copy_(value.to(device=own[key].device, dtype=own[key].dtype))

    def state_of(self, names: Iterable[str]) -> dict[str, dict[str, Tensor]]:
        """module_state of several modules, keyed by module name."""
        return {n: self.module_state(n) for n in names}

    def load_states(self, states: Mapping[str, Mapping[str, Tensor]]) -> None:
        """load_module_state for each (name, state) pair."""
        for name, state in states.items():
            self.load_module_state(name, state)

    def set_target_scale(self, task: str, mean: float, scale: float) -> None:
        """Normalisation of a regression task's targets (see RegressionHead)."""
        head = self.module(f"head/{task}")
        if not isinstance(head, RegressionHead):
            raise ValueError(f"task {task!r} is not a regression task")
        head.set_target_scale(mean, scale)

    # ---- sub-models ---------------------------------------------------------------------------
    def _check(self, modalities: Iterable[str], tasks: Iterable[str]) -> tuple[list[str], list[str]]:
        if isinstance(modalities, str) or isinstance(tasks, str):
            raise ValueError("modalities and tasks must be collections of names, not a single string")
        mods, tsks = list(modalities), list(tasks)
        if not mods:
            raise ValueError(f"empty modality set: a device needs at least one of {list(self.modalities)}")
        if not tsks:
            raise ValueError(f"empty task set: a device needs at least one of {list(self.tasks)}")
        for m in mods:
            if m not in self.modalities:
                raise ValueError(f"unknown modality {m!r}: the bank has encoders for {list(self.modalities)}")
        for t in tsks:
            if t not in self.tasks:
                raise ValueError(f"task {t!r} has no head in the bank (bank tasks: {list(self.tasks)})")
        # keep the bank's order, drop duplicates
        return ([m for m in self.modalities if m in set(mods)], [t for t in self.tasks if t in set(tsks)])

    def required_modules(self, modalities: Iterable[str], tasks: Iterable[str]) -> list[str]:
        """Modules a device with these modalities and tasks needs, in `names()` order."""
        mods, tsks = self._check(modalities, tasks)
        wanted = ({f"encoder/{m}" for m in mods} | {f"prompt/{t}" for t in tsks} | {f"head/{t}" for t in tsks}
                  | {f"expert/{i}" for i in self.experts} | {f"adapter/{i}" for i in self.adapters})
        return [n for n in self.names() if n in wanted]

    def submodel(self, modalities: Iterable[str], tasks: Iterable[str], trainable: Iterable[str] | None = None,
                 train_trunk: bool | None = None) -> M3TModel:
        """A model holding only the modules these modalities and tasks need, and the trunk by reference.

        trainable: module names to train (default: all required ones, minus encoders when
        cfg.encoders_trainable is False); must be required modules. train_trunk: default
        `not cfg.freeze_trunk`. requires_grad flags are set on the shared parameters now.
        """
        mods, tsks = self._check(modalities, tasks)
        required = self.required_modules(mods, tsks)
        if trainable is None:
            train = [n for n in required if self.cfg.encoders_trainable or not n.startswith("encoder/")]
        else:
            train = list(trainable)
            extra = sorted(set(train) - set(required))
            if extra:
                raise ValueError(f"trainable modules {extra} are not part of this sub-model ({required})")
        return M3TModel(self.cfg, self.trunk, [self.modalities[m] for m in mods], [self.tasks[t] for t in tsks],
                        {n: self.module(n) for n in required}, train,
                        (not self.cfg.freeze_trunk) if train_trunk is None else train_trunk)

    def full_model(self, train_trunk: bool | None = None) -> M3TModel:
        """Sub-model over every modality and task (central training / evaluation)."""
        return self.submodel(list(self.modalities), list(self.tasks), train_trunk=train_trunk)
