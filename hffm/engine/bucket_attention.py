"""Attention of a packed pass's buckets on the CPU as one autograd function.

A packed pass runs attention once per bucket (samples of one sequence length): qkv's rows are gathered into bucket
order, and the outputs are put back in token order. Written with autograd, every bucket's output is copied twice on
the way out (a transpose, a concatenation) and every bucket's q, k and v gradients three times on the way back
(stacked, made contiguous, concatenated). Here the forward writes each bucket's output once into one buffer, and
the backward writes its gradients once into one buffer.

A bucket with a mask (evaluation's) runs torch's flash kernel,
`torch.ops.aten._scaled_dot_product_flash_attention_for_cpu` (what `F.scaled_dot_product_attention` runs on the CPU;
float masks, a bool mask is converted the same way), forward and backward, on strided views of its rows. A bucket
without one (training's: `packed_batch.pack` buckets a compact batch's samples by their kept tokens) runs the
arithmetic itself: two bmms over [samples * heads] and a softmax forward, four bmms and the softmax's backward
back, with q, k, v, the output and the gradients kept transposed ([head width, length] matrices; see the note at
`_math_forward`). The flash kernel's blocks are sized for long sequences and wide heads; with the tiny model's
heads of 8 values and sequences of 5-52 tokens these bmms and the buckets without masked positions made a packed
training round about 9 % cheaper (experiments/bench_ab.py, docs/performance.md). Both compute the same attention up
to float summation order. Elsewhere (CUDA), or where a torch lacks the flash op, the caller keeps the autograd
version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

# the softmax's backward as autograd computes it: p * (grad - sum(grad * p)), one pass
_SOFTMAX_BACKWARD = torch._softmax_backward_data

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


def _heads_major(part: Tensor, n: int, s: int, heads: int) -> Tensor:
    """A bucket's rows [n * s, 3 * width] as q (scaled by 1 / sqrt(head width)), k, v transposed: [3, n * heads,
    head width, s], contiguous."""
    split = part.view(n, s, 3, heads, -1)
    out = part.new_empty(3, n, heads, split.shape[-1], s)
    out.copy_(split.permute(2, 0, 3, 4, 1))
    out[0].mul_(split.shape[-1] ** -0.5)
    return out.view(3, n * heads, -1, s)


# The bmms below keep q, k, v, the output and the gradients transposed, [.., head width, s]: a product whose result
# is s x head width, with the tiny model's heads of 8 values, took MKL 2.5 times longer than its transpose's.

def _math_forward(part: Tensor, n: int, s: int, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """(output transposed [n * heads, head width, s], softmax [n * heads, s, s], q k v of `_heads_major`) of an
    unmasked bucket."""
    qkv = _heads_major(part, n, s, heads)
    p = torch.bmm(qkv[0].transpose(1, 2), qkv[1]).softmax(-1)
    return torch.bmm(qkv[2], p.transpose(1, 2)), p, qkv


def _math_backward(grad: Tensor, p: Tensor, qkv: Tensor) -> Tensor:
    """Gradients of q, k, v transposed, [3, n * heads, head width, s], from the output's [n * heads, head width, s]."""
    q, k, v = qkv
    out = torch.empty_like(qkv)
    torch.bmm(grad, p, out=out[2])
    grad_s = _SOFTMAX_BACKWARD(torch.bmm(grad.transpose(1, 2), v), p, -1, p.dtype)
    torch.bmm(k, grad_s.transpose(1, 2), out=out[0]).mul_(q.shape[1] ** -0.5)
    torch.bmm(q, grad_s, out=out[1])
    return out


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
            if mask is None:
                att, p, qkv_b = _math_forward(rows[start:start + n * s], n, s, heads)
                att = att.view(n, heads, -1, s).transpose(2, 3)
                kept += [p, qkv_b]
            else:
                q, k, v = _qkv(rows[start:start + n * s], n, s, heads)
                att, lse = _FORWARD(q, k, v, 0.0, False, attn_mask=mask)
                kept += [att, lse]
            out[start:start + n * s].view(n, s, heads, -1).copy_(att.transpose(1, 2))
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
            go = grad_out[part].view(n, s, heads, -1).transpose(1, 2)
            if mask is None:
                go_t = go.new_empty(n, heads, go.shape[-1], s)
                go_t.copy_(go.transpose(2, 3))
                grads = _math_backward(go_t.view(n * heads, -1, s), kept[2 * b], kept[2 * b + 1])
                # [3, n, heads, head width, s] -> the rows' [n, s, 3, heads, head width]: one copy
                grad_rows[part].view(n, s, 3, heads, -1).copy_(grads.view(3, n, heads, -1, s).permute(1, 4, 0, 2, 3))
            else:
                q, k, v = _qkv(rows[part], n, s, heads)
                flash = _BACKWARD(go, q, k, v, kept[2 * b], kept[2 * b + 1], 0.0, False, attn_mask=mask)
                for dst, g in zip(_qkv(grad_rows[part], n, s, heads), flash):
                    dst.copy_(g)
            start += n * s
        grad_qkv = grad.new_zeros(ctx.qkv_rows, rows.shape[1]).index_add_(0, gather, grad_rows)
        return grad_qkv, None, None, None, None, None
