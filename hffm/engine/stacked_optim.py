"""The local optimizer over device-stacked tensors: one fused update of a flat buffer, each slice stepped as
the device's own optimizer would step it.

Batched training stacks each trained module tensor over a pass's devices ([D, ...]). Here they all live
in one flat leaf tensor [D, elements] (the model reads views of it), so a step is a dozen elementwise
ops over every device and tensor at once, whatever the number of tensors or devices. What differs from
one optimizer over the stacked tensors is what happens to a slice (device d, tensor k) that had no
gradient in the device's own pass: a module the device does not train, or an expert no task prompt of
the device was routed to. A device's own optimizer skips those (no update, no weight decay, its step
count stays), so each slice keeps its own step count and only the active slices take the new values.
The arithmetic is the record's of `hffm.modules.optim.OPTIMIZERS`, chosen by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hffm.modules.optim import optimizer_record


class StackedOptimizer:
    """``OPTIMIZERS[name]`` per device slice of stacked tensors held in one flat buffer.

    ``tensors()`` are the views the forward pass reads (their gradients land in the flat buffer's);
    ``step(active)`` steps slice (d, k) where ``active[d, k]``.
    """

    def __init__(self, tensors: Sequence[Tensor], name: str, lr: float, weight_decay: float) -> None:
        """tensors: each [D, ...], the same D, dtype and device; their values are copied in."""
        if not tensors:
            raise ValueError("StackedOptimizer: no tensors to optimize")
        self.record = optimizer_record(name)
        self.lr, self.weight_decay = lr, weight_decay
        devices = tensors[0].shape[0]
        self.shapes = [tuple(t.shape[1:]) for t in tensors]
        sizes = [t[0].numel() for t in tensors]
        self.bounds = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
        self.flat = torch.cat([t.detach().reshape(devices, -1) for t in tensors], 1).requires_grad_(True)
        self.sizes = torch.tensor(sizes, device=self.flat.device)
        self.state = {key: torch.zeros_like(self.flat) for key in self.record.state}
        self.count = torch.zeros(devices, len(tensors), dtype=torch.float64, device=self.flat.device)
        """Steps taken by each slice (Adam's bias correction; SGD: whether the momentum buffer exists)."""

    def tensors(self) -> list[Tensor]:
        """The stacked tensors as views of the flat buffer (take them anew for every forward pass)."""
        flat, b = self.flat, self.bounds
        return [flat[:, b[k]:b[k + 1]].view(flat.shape[0], *shape) for k, shape in enumerate(self.shapes)]

    def zero_grad(self) -> None:
        self.flat.grad = None

    def _expand(self, per_slice: Tensor) -> Tensor:
        """[D, tensors] float64 -> [D, elements] in the buffer's dtype (each tensor's value over its elements)."""
        return per_slice.to(self.flat.dtype).repeat_interleave(self.sizes, dim=1)

    @torch.no_grad()
    def step(self, active: Tensor) -> None:
        """One step of the slices where ``active`` (bool [D, tensors], on the buffer's device)."""
        grad = self.flat.grad
        if grad is None:
            return
        param, state = self.record.update(self.flat.detach(), grad, self.state, self.count, self._expand, self.lr,
                                          self.weight_decay, self.record.options)
        on = active.repeat_interleave(self.sizes, dim=1)
        self.flat.copy_(torch.where(on, param, self.flat))
        for key, value in state.items():
            self.state[key] = torch.where(on, value, self.state[key])
        self.count += active
