"""Attention that `torch.func.vmap` runs as one fused kernel call over every mapped device.

Batched training maps the model over devices with vmap. PyTorch's fused CPU attention kernel has no
vmap rule, so vmap would fall back to one kernel call per device (and a backward that allocates a
full-size gradient per call). This op's vmap rule folds the mapped dimension into the batch dimension and calls
`scaled_dot_product_attention` once; autograd records that call, so the backward is the fused kernel's
own. Called outside vmap, the op's backward recomputes the attention (as activation checkpointing
does): the trunk uses it only when mapped. No dropout: batched training runs without it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.library.custom_op("hffm::attention", mutates_args=())
def attention(q: Tensor, k: Tensor, v: Tensor, attend: Tensor) -> Tensor:
    """scaled_dot_product_attention(q, k, v, attn_mask=attend) without dropout."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attend)


@attention.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, attend: Tensor) -> Tensor:
    return torch.empty_like(q)


@attention.register_vmap
def _(info, in_dims, q: Tensor, k: Tensor, v: Tensor, attend: Tensor) -> tuple[Tensor, int]:
    size = info.batch_size

    def fold(t: Tensor, dim: int | None) -> Tensor:
        t = t.unsqueeze(0).expand(size, *t.shape) if dim is None else t.movedim(dim, 0)
        return t.reshape(-1, *t.shape[2:])

    out = F.scaled_dot_product_attention(fold(q, in_dims[0]), fold(k, in_dims[1]), fold(v, in_dims[2]),
                                         attn_mask=fold(attend, in_dims[3]))
    return out.reshape(size, -1, *out.shape[1:]), 0


def _setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
    q, k, v, attend = ctx.saved_tensors
    with torch.enable_grad():
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        dq, dk, dv = torch.autograd.grad(out, (q, k, v), grad)
    return dq, dk, dv, None


attention.register_autograd(_backward, setup_context=_setup)
