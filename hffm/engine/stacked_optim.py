"""The local optimizer over device-stacked tensors: one fused update of a flat buffer, each slice stepped as
the device's own optimizer would step it.

Batched training stacks each trained module tensor over a pass's devices ([D, ...]). Here they all live
in one flat buffer [D, elements]; the model reads views of it, each its own autograd leaf (a view taken
under autograd would cost every backward a full-size gradient per tensor), and a step gathers their
gradients in one copy, so it is a dozen elementwise ops over every device and tensor at once, whatever
the number of tensors or devices. What differs from
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

    ``tensors`` are the views of the buffer the forward pass reads (leaves that require grad);
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
        self.flat = torch.cat([t.detach().reshape(devices, -1) for t in tensors], 1)
        b = self.bounds
        self.tensors = [self.flat[:, b[k]:b[k + 1]].view(devices, *shape).requires_grad_(True)
                        for k, shape in enumerate(self.shapes)]
        self.size_list = sizes
        self.state = {key: torch.zeros_like(self.flat) for key in self.record.state}
        self.count = torch.zeros(devices, len(tensors), dtype=torch.float64, device=self.flat.device)
        """Steps taken by each slice (Adam's bias correction; SGD: whether the momentum buffer exists)."""
        self._scratch: dict[str, Tensor] = {}

    def zero_grad(self) -> None:
        for t in self.tensors:
            t.grad = None

    def scratch(self, name: str) -> Tensor:
        """A buffer of the flat buffer's shape kept across steps (`hffm.modules.optim.Scratch`)."""
        if name not in self._scratch:
            self._scratch[name] = torch.empty_like(self.flat)
        return self._scratch[name]

    def _expand(self, per_slice: Tensor) -> Tensor:
        """[D, tensors] float64 -> [D, elements] in the buffer's dtype (each tensor's value over its elements), in one
        scratch buffer: valid until the next call.

        A concatenation of expanded columns: half the time of ``repeat_interleave`` along dim 1 (an index_select
        across rows) on the CPU."""
        values = per_slice.to(self.flat.dtype).split(1, 1)
        return torch.cat([v.expand(-1, size) for v, size in zip(values, self.size_list)], 1, out=self.scratch("expand"))

    @torch.no_grad()
    def step(self, active: Tensor) -> None:
        """One step of the slices where ``active`` (bool [D, tensors], on the buffer's device)."""
        if all(t.grad is None for t in self.tensors):
            return
        devices = self.flat.shape[0]
        grad = torch.cat([(torch.zeros_like(t) if t.grad is None else t.grad).reshape(devices, -1)
                          for t in self.tensors], 1, out=self.scratch("grads"))
        param, state = self.record.update(self.flat, grad, self.state, self.count, self._expand, self.lr,
                                          self.weight_decay, self.record.options, self.scratch)
        # the active slices take the new values: lerp with weight 1 is exactly its end, with 0 exactly its start
        # (finite values), and on the CPU it costs a fraction of a where over a bool mask expanded the same way
        on = self._expand(active.to(torch.float64))
        self.flat.lerp_(param, on)
        for key, value in state.items():
            self.state[key].lerp_(value, on)
        self.count += active
