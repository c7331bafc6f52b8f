"""Convolution that `torch.func.vmap` maps over devices the faster of two ways on CPU.

Batched training and evaluation map the encoders over devices with vmap, each device with its own
conv weights. vmap's own rule for a convolution with a mapped weight folds the devices into channel
groups and calls one grouped convolution. Without autograd (evaluation) oneDNN runs that grouped
forward slower than the devices' own convolutions one after another (1.5x at 200-1,000 samples a device,
experiments/bench_overhead.py's machine), with autograd the loop's backward is the slower one (1.5-2x).
This op's vmap rule loops over the devices when no gradient is needed and calls the grouped convolution
otherwise (one call for all when the weights are shared); autograd records those calls, so the
backward is the convolutions' own. Called outside vmap, the op's backward recomputes the convolution:
encoders use it only when mapped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv(x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int, groups: int = 1) -> Tensor:
    return (F.conv1d if weight.dim() == 3 else F.conv2d)(x, weight, bias, stride=stride, padding=padding,
                                                         groups=groups)


@torch.library.custom_op("hffm::conv", mutates_args=())
def conv(x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int) -> Tensor:
    """conv1d / conv2d (by the weight's rank) of x with `weight`, `bias`, one stride and padding for every axis."""
    return _conv(x, weight, bias, stride, padding)


@conv.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int) -> Tensor:
    size = [(n + 2 * padding - k) // stride + 1 for n, k in zip(x.shape[2:], weight.shape[2:])]
    return x.new_empty(x.shape[0], weight.shape[0], *size)


@conv.register_vmap
def _(info, in_dims, x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int) -> tuple[Tensor, int]:
    size = info.batch_size
    x_dim, w_dim, b_dim = in_dims[:3]
    if w_dim is None and b_dim is None:  # shared weights: the devices' samples in one call
        xs = x.unsqueeze(0).expand(size, *x.shape) if x_dim is None else x.movedim(x_dim, 0)
        out = _conv(xs.reshape(-1, *xs.shape[2:]), weight, bias, stride, padding)
        return out.reshape(size, -1, *out.shape[1:]), 0

    xs, ws, bs = (t.unsqueeze(0).expand(size, *t.shape) if dim is None else t.movedim(dim, 0)
                  for t, dim in ((x, x_dim), (weight, w_dim), (bias, b_dim)))
    if not torch.is_grad_enabled() or not any(t.requires_grad for t in (x, weight, bias)):
        return torch.stack([_conv(xs[d], ws[d], bs[d], stride, padding) for d in range(size)]), 0
    # the devices as channel groups of one convolution: [B, D * C, ...] with weights [D * O, C, ...]
    grouped = xs.transpose(0, 1).reshape(xs.shape[1], -1, *xs.shape[3:])
    out = _conv(grouped, ws.reshape(-1, *ws.shape[2:]), bs.reshape(-1), stride, padding, groups=size)
    return out.reshape(out.shape[0], size, -1, *out.shape[2:]).transpose(0, 1), 0


def _setup(ctx, inputs, output) -> None:
    x, weight, bias, stride, padding = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.stride, ctx.padding = stride, padding


def _backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None, None]:
    x, weight, bias = ctx.saved_tensors
    with torch.enable_grad():
        x, weight, bias = (t.detach().requires_grad_() for t in (x, weight, bias))
        out = _conv(x, weight, bias, ctx.stride, ctx.padding)
        dx, dw, db = torch.autograd.grad(out, (x, weight, bias), grad)
    return dx, dw, db, None, None


conv.register_autograd(_backward, setup_context=_setup)


def conv_layer(layer: nn.Module, x: Tensor) -> Tensor:
    """`layer(x)` through `conv`: an nn.Conv1d / nn.Conv2d with one stride and padding for every axis."""
    if not isinstance(layer, nn.Conv1d | nn.Conv2d) or layer.bias is None:
        raise TypeError(f"conv_layer: expected a Conv1d or Conv2d with a bias, got {layer}")
    stride, padding = layer.stride, layer.padding
    if not isinstance(padding, tuple) or len(set(stride)) != 1 or len(set(padding)) != 1:
        raise ValueError(f"conv_layer: {layer} needs one stride and one integer padding for every axis")
    return conv(x, layer.weight, layer.bias, stride[0], padding[0])
