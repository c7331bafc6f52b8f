"""The local optimizers, one record a name: the torch optimizer a device trains with alone, and the same
update written over device-stacked tensors for batched training.

Batched training keeps every trained tensor of a pass's devices in one flat buffer [devices, elements]
and steps it with one fused update (`hffm.engine.stacked_optim`). Each record's ``update`` is the
arithmetic of its torch optimizer's single-tensor step, op for op (so a slice ends bit-equal to the
device's own optimizer, tests/test_batched.py), with the one value that differs between slices, the
step count, given per element. It depends on no private torch function, so any torch the project
supports runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from hffm.lazy import LazyModule

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = LazyModule("torch")

Expand: TypeAlias = "Callable[[Tensor], Tensor]"
"""Maps a per-slice value [devices, tensors] (float64) to the flat buffer's shape and dtype (into one scratch
buffer: the result lives until the next call)."""

Scratch: TypeAlias = "Callable[[str], Tensor]"
"""A named scratch buffer of the flat buffer's shape and dtype, the same one each step (its values are garbage)."""

StackedUpdate: TypeAlias = (
    "Callable[[Tensor, Tensor, dict[str, Tensor], Tensor, Expand, float, float, Mapping[str, Any], Scratch],"
    " tuple[Tensor, dict[str, Tensor]]]")
"""``update(param, grad, state, count, expand, lr, weight_decay, options, scratch) -> (new param, new state)`` for
every element; ``count`` [devices, tensors]: steps each slice has taken (the caller keeps the inactive slices' old
values). The results may live in ``scratch`` buffers: the caller copies them out before the next step. Writing each
result into a buffer kept across steps, not a fresh tensor, saves a fifth of a step's time on the CPU (a fresh
buffer of several MB is first written page by page)."""


def _adam(decoupled: bool) -> StackedUpdate:
    """torch's `_single_tensor_adam` (not amsgrad, not maximize), with per-slice bias corrections."""

    def update(param: Tensor, grad: Tensor, state: dict[str, Tensor], count: Tensor, expand: Expand, lr: float,
               weight_decay: float, options: Mapping[str, Any], scratch: Scratch) -> tuple[Tensor, dict[str, Tensor]]:
        beta1, beta2 = options["betas"]
        if weight_decay != 0:
            if decoupled:
                param = torch.mul(param, 1 - lr * weight_decay, out=scratch("param"))
            else:
                grad = torch.add(grad, param, alpha=weight_decay, out=scratch("grad"))
        exp_avg = torch.lerp(state["exp_avg"], grad, 1 - beta1, out=scratch("exp_avg"))
        exp_avg_sq = torch.mul(state["exp_avg_sq"], beta2, out=scratch("exp_avg_sq")).addcmul_(grad, grad,
                                                                                            value=1 - beta2)
        step = count + 1
        step_size = lr / (1 - beta1 ** step)
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        denom = torch.sqrt(exp_avg_sq, out=scratch("denom")).div_(expand(bias_correction2_sqrt)).add_(options["eps"])
        # param.addcdiv_(exp_avg, denom, value=-step_size) with a per-slice value: (value * exp_avg) / denom, added
        change = torch.mul(exp_avg, expand(-step_size), out=scratch("change")).div_(denom)
        param = torch.add(param, change, out=scratch("param"))
        return param, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}

    return update


def _sgd(param: Tensor, grad: Tensor, state: dict[str, Tensor], count: Tensor, expand: Expand, lr: float,
         weight_decay: float, options: Mapping[str, Any], scratch: Scratch) -> tuple[Tensor, dict[str, Tensor]]:
    """torch's `_single_tensor_sgd` (momentum, no dampening or nesterov): the first step starts the buffer."""
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    buf = state["momentum_buffer"]
    first = expand((count == 0).to(torch.float64)).bool()
    buf = torch.where(first, grad, buf.mul(options["momentum"]).add_(grad, alpha=1 - options["dampening"]))
    return param.add(buf, alpha=-lr), {"momentum_buffer": buf}


@dataclass(frozen=True)
class OptimizerRecord:
    """One local optimizer: its torch class and options (besides lr and weight decay), and the stacked update."""

    torch_class: str
    """The class's name in ``torch.optim`` (a name, so the registry is built without importing torch)."""
    options: Mapping[str, Any]
    state: tuple[str, ...]
    """Per-element state buffers ``update`` reads and returns."""
    update: StackedUpdate = field(repr=False)

    def make(self, params: Iterable[Tensor], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """The torch optimizer of one device's parameters."""
        return getattr(torch.optim, self.torch_class)(params, lr=lr, weight_decay=weight_decay, **self.options)


_ADAM = {"betas": (0.9, 0.999), "eps": 1e-8}

OPTIMIZERS: dict[str, OptimizerRecord] = {
    "adamw": OptimizerRecord("AdamW", _ADAM, ("exp_avg", "exp_avg_sq"), _adam(decoupled=True)),
    "adam": OptimizerRecord("Adam", _ADAM, ("exp_avg", "exp_avg_sq"), _adam(decoupled=False)),
    "sgd": OptimizerRecord("SGD", {"momentum": 0.9, "dampening": 0.0}, ("momentum_buffer",), _sgd),
}
"""Local optimizer by name (``federation.optimizer``)."""


def optimizer_record(name: str) -> OptimizerRecord:
    """The record of ``name``, or a ValueError listing the choices."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name]
