"""Attention of a packed pass's buckets on the CPU as one autograd function around torch's flash kernel.

A packed pass runs attention once per sequence length (a bucket): qkv's rows are gathered into bucket order, each
bucket's q, k and v are strided views of its rows, and the outputs are put back in token order. Written with
autograd, every bucket's output is copied twice on the way out (a transpose, a concatenation) and every bucket's
q, k and v gradients three times on the way back (stacked, made contiguous, concatenated). Here the forward writes
each bucket's output once into one buffer, and the backward calls the kernel's own backward and writes its
gradients once into one buffer: the same kernel calls, the same arithmetic, fewer passes over the rows.

`torch.ops.aten._scaled_dot_product_flash_attention_for_cpu` is what `F.scaled_dot_product_attention` runs on the
CPU (float masks; a bool mask is converted the same way); elsewhere, or where a torch lacks the op, the caller
keeps the autograd version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

_FORWARD = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_BACKWARD = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)


def available(x: Tensor) -> bool:
    """Whether `bucket_attention` can run on ``x``'s device with this torch."""
    return x.device.type == "cpu" and _FORWARD is not None and _BACKWARD is not None


def bucket_attention(qkv: Tensor, gather: Tensor, restore: Tensor, shapes: Sequence[tuple[int, int]],
                     masks: Sequence[Tensor | None], heads: int) -> Tensor:
    """Attention outputs [rows of ``restore``, width] of qkv [rows, 3 * width]: bucket b holds ``shapes[b]`` =
    (samples, length) of the rows ``gather`` lists (bucket after bucket), its keys masked where ``masks[b]`` (bool
    [samples, 1, 1, length], True: attended) is False; row r of the output is row ``restore[r]`` of the buckets'
    outputs."""
    floats = [None if m is None else torch.zeros(m.shape, dtype=qkv.dtype, device=m.device).masked_fill_(
        ~m, float("-inf")) for m in masks]
    return cast(Tensor, _BucketAttention.apply(qkv, gather, restore, list(shapes), floats, heads))


def _qkv(part: Tensor, n: int, s: int, heads: int) -> list[Tensor]:
    """q, k, v [n, heads, s, head width] as views of a bucket's rows [n * s, 3 * width]."""
    split = part.view(n, s, 3, heads, -1)
    return [split[:, :, i].transpose(1, 2) for i in range(3)]


class _BucketAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv: Tensor, gather: Tensor, restore: Tensor, shapes: list[tuple[int, int]],
                masks: list[Tensor | None], heads: int) -> Tensor:
        assert _FORWARD is not None
        rows = qkv.index_select(0, gather)
        width = qkv.shape[1] // 3
        out = rows.new_empty(rows.shape[0], width)
        kept: list[Tensor] = []
        start = 0
        for (n, s), mask in zip(shapes, masks):
            q, k, v = _qkv(rows[start:start + n * s], n, s, heads)
            att, lse = _FORWARD(q, k, v, 0.0, False, attn_mask=mask)
            out[start:start + n * s].view(n, s, heads, -1).copy_(att.transpose(1, 2))
            kept += [att, lse]
            start += n * s
        ctx.save_for_backward(rows, gather, restore, *kept)
        ctx.shapes, ctx.masks, ctx.heads, ctx.qkv_rows = shapes, masks, heads, qkv.shape[0]
        return out.index_select(0, restore)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        assert _BACKWARD is not None
        rows, gather, restore, *kept = ctx.saved_tensors
        heads = ctx.heads
        grad_out = grad.new_zeros(rows.shape[0], grad.shape[1]).index_add_(0, restore, grad)
        grad_rows = torch.empty_like(rows)
        start = 0
        for b, ((n, s), mask) in enumerate(zip(ctx.shapes, ctx.masks)):
            part = slice(start, start + n * s)
            q, k, v = _qkv(rows[part], n, s, heads)
            go = grad_out[part].view(n, s, heads, -1).transpose(1, 2)
            grads = _BACKWARD(go, q, k, v, kept[2 * b], kept[2 * b + 1], 0.0, False, attn_mask=mask)
            for dst, g in zip(_qkv(grad_rows[part], n, s, heads), grads):
                dst.copy_(g)
            start += n * s
        grad_qkv = grad.new_zeros(ctx.qkv_rows, rows.shape[1]).index_add_(0, gather, grad_rows)
        return grad_qkv, None, None, None, None, None
