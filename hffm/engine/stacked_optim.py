"""The local optimizer over device-stacked tensors, stepping each device's slice as its own optimizer would.

Batched training stacks each module tensor over devices ([D, ...]). One `torch.optim` optimizer over
the stacked tensors would be elementwise equal to one per device, except for what it does to slices
that had no gradient in the device's own pass: a device that does not train the module, or an expert
no task prompt of the device was routed to this step. A per-device optimizer skips those (no update, no
weight decay, its step count stays), so here each slice keeps its own step count and only the active
slices are stepped, by torch's own functional update (`torch.optim.adam.adam`, `torch.optim.sgd.sgd`)
with the hyperparameters `OPTIMIZERS[name]` chooses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.optim.adam import adam
from torch.optim.sgd import sgd

from hffm.modules.lightning import OPTIMIZERS


class StackedOptimizer:
    """`OPTIMIZERS[name]` per device slice of each stacked tensor; `step(active)` steps the active slices."""

    def __init__(self, params: Sequence[Tensor], name: str, lr: float, weight_decay: float) -> None:
        probe = OPTIMIZERS[name]([torch.zeros(1, requires_grad=True)], lr, weight_decay)
        self.adam = isinstance(probe, torch.optim.Adam)  # AdamW is an Adam with decoupled weight decay
        if not self.adam and not isinstance(probe, torch.optim.SGD):
            raise ValueError(f"optimizer {name!r}: batched training knows Adam(W) and SGD only")
        self.hyper = dict(probe.defaults)
        self.params = list(params)
        self.counts = [np.zeros(p.shape[0], dtype=np.int64) for p in self.params]
        """Steps taken by each slice (Adam's bias correction; SGD: whether the momentum buffer exists)."""
        self.state = [self._init_state(p) for p in self.params]

    def _init_state(self, p: Tensor) -> list[Tensor]:
        zeros = lambda: torch.zeros_like(p, memory_format=torch.preserve_format)  # noqa: E731
        if self.adam:
            return [zeros(), zeros()]  # exp_avg, exp_avg_sq
        return [zeros()] if self.hyper["momentum"] else []

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: Sequence[np.ndarray]) -> None:
        """Step slice d of params[i] where active[i][d]; slices with the same step count go together."""
        for p, state, counts, act in zip(self.params, self.state, self.counts, active):
            if p.grad is None:
                continue
            groups = [(int(c), np.flatnonzero(act & (counts == c))) for c in np.unique(counts[act])]
            for count, sel in groups:
                self._step_slices(p, state, sel, count)
            counts[act] += 1

    def _step_slices(self, p: Tensor, state: list[Tensor], sel: np.ndarray, count: int) -> None:
        whole = len(sel) == p.shape[0]
        idx = None if whole else torch.as_tensor(sel, device=p.device)
        take = (lambda t: t) if idx is None else (lambda t: t.index_select(0, idx))
        param, grad, buffers = take(p), take(p.grad), [take(s) for s in state]
        h = self.hyper
        if self.adam:
            adam(
                [param], [grad], [buffers[0]], [buffers[1]], [], [torch.tensor(float(count))],
                foreach=h["foreach"], decoupled_weight_decay=h["decoupled_weight_decay"], amsgrad=h["amsgrad"],
                beta1=h["betas"][0], beta2=h["betas"][1], lr=h["lr"], weight_decay=h["weight_decay"],
                eps=h["eps"], maximize=h["maximize"],
            )
        else:
            momentum: list[Tensor | None] = [buffers[0] if count else None] if buffers else [None]
            sgd(
                [param], [grad], momentum, foreach=h["foreach"], weight_decay=h["weight_decay"],
                momentum=h["momentum"], lr=h["lr"], dampening=h["dampening"], nesterov=h["nesterov"],
                maximize=h["maximize"],
            )
            if buffers:
                buffers = [momentum[0]]
        if idx is not None:
            p.index_copy_(0, idx, param)
            for s, b in zip(state, buffers):
                s.index_copy_(0, idx, b)
        elif buffers and not self.adam and count == 0:
            state[0].copy_(buffers[0])
