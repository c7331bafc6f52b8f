"""A device's M3T model: the bank's modules it needs, the shared trunk by reference.

The model registers the bank's own module objects (no copies), so training it trains the bank's
parameters and `bank.module_state(name)` reads the result. The trunk is the bank's single trunk
(native or a frozen Hugging Face model), never copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from hffm.modules.config import ModelConfig
from hffm.modules.encoders import check_input
from hffm.modules.heads import Head
from hffm.modules.moe import Expert, moe_forward
from hffm.spec import CONTAINER, ModalitySpec, TaskSpec


def set_trainable(module: nn.Module, trainable: bool) -> None:
    """Set requires_grad on a module's parameters, keeping those under its `frozen_prefixes` frozen."""
    frozen = tuple(getattr(module, "frozen_prefixes", ()))
    for name, p in module.named_parameters():
        p.requires_grad_(trainable and not name.startswith(frozen) if frozen else trainable)


class M3TModel(nn.Module):
    """Encoders -> [task prompts; tokens] -> shared trunk (+ adapters/LoRA) -> MoE -> task heads.

    Built by `ModuleBank.submodel`; holds only the modules of its modalities and tasks.
    """

    def __init__(self, cfg: ModelConfig, trunk: nn.Module, modalities: Sequence[ModalitySpec],
                 tasks: Sequence[TaskSpec], modules: Mapping[str, nn.Module], trainable: Iterable[str],
                 train_trunk: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.modalities = list(modalities)
        self.tasks = list(tasks)
        self.module_names = list(modules)
        trainable = set(trainable)
        self.trainable_module_names = [n for n in self.module_names if n in trainable]
        self.train_trunk = train_trunk
        self.trunk = trunk
        self.encoders = nn.ModuleDict()
        self.prompts = nn.ModuleDict()
        self.experts = nn.ModuleDict()
        self.adapters = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for name, module in modules.items():
            kind, key = name.split("/", 1)
            getattr(self, CONTAINER[kind])[key] = module
        self._modality_by_name = {m.name: m for m in self.modalities}
        self.apply_trainable()

    def _module(self, name: str) -> nn.Module:
        kind, key = name.split("/", 1)
        return getattr(self, CONTAINER[kind])[key]

    def apply_trainable(self) -> None:
        """(Re)apply this model's requires_grad flags to the shared parameters.

        Sub-models of one bank share parameter objects, so the flags are those of the sub-model
        built or applied last; call this before training a sub-model built earlier.
        """
        set_trainable(self.trunk, self.train_trunk)
        trainable = set(self.trainable_module_names)
        for name in self.module_names:
            set_trainable(self._module(name), name in trainable)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters this model trains (its trainable modules, and the trunk if unfrozen)."""
        params: list[nn.Parameter] = []
        mods: list[nn.Module] = [self._module(n) for n in self.trainable_module_names]
        if self.train_trunk:
            mods.append(self.trunk)
        seen: set[int] = set()
        for mod in mods:
            for p in mod.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params

    def _experts(self) -> list[Expert]:
        return [cast(Expert, self.experts[k]) for k in sorted(self.experts, key=int)]

    def _batch_size(self, inputs: Mapping[str, Tensor]) -> int:
        unknown = sorted(set(inputs) - set(self._modality_by_name))
        if unknown:
            raise ValueError(f"inputs hold modalities {unknown} this model has no encoder for "
                             f"(model modalities: {sorted(self._modality_by_name)})")
        if not inputs:
            raise ValueError(f"inputs are empty: give at least one of {sorted(self._modality_by_name)}")
        sizes = {name: int(x.shape[0]) for name, x in inputs.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"inputs disagree on batch size: {sizes}")
        return next(iter(sizes.values()))

    def forward(self, inputs: Mapping[str, Tensor],
                present: Mapping[str, Tensor] | None = None) -> tuple[dict[str, Tensor], Tensor]:
        """Outputs per task (logits [B, C] or regression values [B]) and the MoE balance loss.

        Modalities of the model missing from `inputs` are absent for the whole batch; `present[m]`
        (bool [B]) masks the tokens of samples that miss modality m out of attention.
        """
        b = self._batch_size(inputs)
        present = present or {}
        for spec in self.modalities:
            if spec.name in inputs:
                check_input(spec, inputs[spec.name])
            if spec.name in present and present[spec.name].shape != (b,):
                raise ValueError(f"present[{spec.name!r}] must have shape [{b}], got {tuple(present[spec.name].shape)}")
        outputs, aux, _ = self.forward_masked(inputs, present)
        return outputs, aux

    def forward_masked(self, inputs: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                       held: Mapping[str, Tensor] | None = None, rows: Tensor | None = None,
                       mapped: bool = False) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """`forward` without input checks or data-dependent branches, so `torch.func.vmap` can map it.

        Batched training runs one model over the union of many devices' modalities and tasks:
        `held[name]` (bool scalar) is False for a modality or task the device lacks (its tokens or
        prompt are masked out of attention), `rows` (bool [B]) False for a short batch's padding
        (it counts for no routing statistic); `mapped` says the call runs under vmap over devices: every
        expert runs on every prompt token, gated to zero where not chosen (same outputs), and attention is
        `hffm.modules.attention`. The experts run on the task prompts only (all the heads read); routing
        and the balance loss see every token. Also returns which experts a prompt token of a held task
        was routed to (bool [num_experts]): an expert no such token reached gets no gradient in an
        unbatched pass.
        """
        b = next(iter(inputs.values())).shape[0]
        present = present or {}
        held = held or {}
        tokens, pads, owned = [], [], []
        for spec in self.modalities:
            if spec.name not in inputs:
                continue
            encoder = self.encoders[spec.name]
            # native encoders only when mapped (batched_unsupported): they take the flag
            tok, pad = encoder(inputs[spec.name], mapped=True) if mapped else encoder(inputs[spec.name])
            pad = torch.zeros(tok.shape[:2], dtype=torch.bool, device=tok.device) if pad is None else pad
            if spec.name in present:
                pad = pad | ~present[spec.name].bool().to(pad.device)[:, None]
            own = self._held(held, spec.name, tok.shape[:2], tok.device)
            tokens.append(tok)
            owned.append(own)
            pads.append(pad | ~own)
        prompt = [self.prompts[t.name](b) for t in self.tasks]
        plen = self.cfg.prompt_len
        device = tokens[0].device
        owned = [self._held(held, t.name, (b, plen), device) for t in self.tasks] + owned
        seq = torch.cat(prompt + tokens, dim=1)
        pad = torch.cat([~o for o in owned[:len(self.tasks)]] + pads, 1)
        adapters = {int(k): a for k, a in self.adapters.items()}
        h = self.trunk(seq, pad, adapters, mapped)
        counted = ~pad if rows is None else ~pad & rows.bool()[:, None]
        keep = len(self.tasks) * plen  # the heads read the prompt positions only
        h, aux, chosen = moe_forward(h, self._experts(), self.cfg.top_k, counted, dense=mapped, keep=keep)
        prompts = torch.cat(owned[:len(self.tasks)], 1)
        routed = self._routed(chosen[:, :keep], prompts if rows is None else prompts & rows.bool()[:, None])
        outputs = {}
        for i, task in enumerate(self.tasks):
            pooled = h[:, i * plen:(i + 1) * plen].mean(1)
            outputs[task.name] = self.heads[task.name](pooled)
        return outputs, aux, routed

    @staticmethod
    def _held(held: Mapping[str, Tensor], name: str, shape: tuple[int, ...], device: torch.device) -> Tensor:
        """Bool mask of `shape`: False where `held` says the device lacks modality or task `name`."""
        if name not in held:
            return torch.ones(shape, dtype=torch.bool, device=device)
        return held[name].bool().reshape(1, 1).expand(*shape)

    def _routed(self, chosen: Tensor, owned: Tensor) -> Tensor:
        """Bool [num_experts]: some token of the device's own (owned [B, S]) was routed to the expert."""
        experts = torch.arange(len(self.experts), device=chosen.device)
        return ((chosen.unsqueeze(-1) == experts) & owned[..., None, None]).flatten(0, 2).any(0)

    def task_loss(self, task: str, output: Tensor, target: Tensor) -> Tensor:
        """Loss of one task (cross-entropy, or MSE of normalised regression values)."""
        if task not in self.heads:
            raise ValueError(f"task {task!r} has no head in this model (tasks: {[t.name for t in self.tasks]})")
        return self.head(task).loss(output, target)

    def head(self, task: str) -> Head:
        """The head of one task (typed: `self.heads` is an nn.ModuleDict of heads)."""
        return cast(Head, self.heads[task])

    def named_modules_of_bank(self) -> Iterator[tuple[str, nn.Module]]:
        """(bank name, module) pairs of the federated modules this model holds."""
        for name in self.module_names:
            yield name, self._module(name)
