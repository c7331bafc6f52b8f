"""Per-device operations on packed rows: rows of many devices in one tensor, each row its device's weights.

A packed pass lays the rows (samples, tokens) of every device of a wave out one after another, device by
device, without padding. An operation with per-device weights (a LoRA delta, an adapter, a head, an
encoder's convolution) then has to apply device d's weights to device d's rows. torch has no grouped
matmul on the CPU, and gathering a weight per row costs rows x weight elements, so `Segments.apply`
pads only inside the operation: devices with similar row counts form a chunk, a chunk's rows are
gathered into [devices, longest, ...] (a zero row fills the short ones), the operation runs once over the
chunk with its devices' weights stacked (a bmm or a grouped convolution), and the chunks' real rows are put
back in row order. The padding is bounded by the chunking (`PAD_RATIO`), not by the wave's longest device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import Tensor

PAD_RATIO = 0.85
"""A chunk takes devices (largest row count first) while their count is at least this share of the chunk's
largest: at most 1 / PAD_RATIO - 1 padded rows per real row inside a chunk. More chunks cost launches, more
padding costs arithmetic; at 100 devices of the bench world 0.85 was the cheapest of 0.4-1.0 (0.7: 3-4 %
more CPU s, 0.4 and 1.0: 12 % more)."""


@dataclass(frozen=True)
class _Chunk:
    devices: Tensor
    """Long [n]: the chunk's devices (indices into the wave)."""
    gather: Tensor
    """Long [n * longest]: each slot's row (a padding slot reads the chunk's first row; its output is dropped)."""
    shape: tuple[int, int]
    """(n, longest)."""


class Segments:
    """Rows grouped by device, device by device: ``counts[d]`` rows of device d, in device order."""

    def __init__(self, counts: Sequence[int] | np.ndarray, device: torch.device, ratio: float = PAD_RATIO) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        self.counts = counts
        self.rows = int(counts.sum())
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        order = [d for d in np.argsort(-counts, kind="stable") if counts[d] > 0]
        chunks: list[_Chunk] = []
        pick = np.zeros(self.rows, dtype=np.int64)
        offset = 0
        i = 0
        while i < len(order):
            longest = int(counts[order[i]])
            j = i + 1
            while j < len(order) and counts[order[j]] >= ratio * longest:
                j += 1
            devs = np.array(order[i:j])
            slot = np.arange(longest)[None, :]
            real = slot < counts[devs][:, None]
            rows = starts[devs][:, None] + slot
            gather = np.where(real, rows, starts[devs][0])
            pick[rows[real]] = offset + np.flatnonzero(real)
            offset += real.size
            chunks.append(_Chunk(torch.as_tensor(devs, device=device),
                                 torch.as_tensor(gather.reshape(-1), device=device), (len(devs), longest)))
            i = j
        self.chunks = chunks
        self._gather = torch.cat([c.gather for c in chunks]) if chunks else torch.zeros(0, dtype=torch.long)
        self._devices = torch.cat([c.devices for c in chunks]) if chunks else torch.zeros(0, dtype=torch.long)
        self._sizes = [c.shape[0] * c.shape[1] for c in chunks]
        self._counts = [c.shape[0] for c in chunks]
        self.padded_rows = offset
        """Rows the chunks compute, padding included."""
        self._identity = offset == self.rows and bool(np.array_equal(pick, np.arange(self.rows)))
        self._pick = torch.as_tensor(pick, device=device)
        self.device_of = torch.as_tensor(np.repeat(np.arange(len(counts)), counts), device=device)
        """Long [rows]: each row's device."""

    def apply(self, x: Tensor, fn: Callable[..., Tensor], *weights: Tensor) -> Tensor:
        """``fn(padded [n, longest, *x.shape[1:]], *(w[devices] for w in weights)) -> [n, longest, *out]`` per
        chunk; rows back in order: [rows, *out]. Rows must be independent in ``fn`` (a padding slot holds a copy
        of a real row, its output is dropped).

        One gather for the rows and one a weight, split into the chunks (a gather's backward zero-fills its
        whole input: one per chunk would fill the wave's rows once per chunk).
        """
        if x.shape[0] != self.rows:
            raise ValueError(f"Segments.apply: {x.shape[0]} rows given, the segments hold {self.rows}")
        if len(self.chunks) == 1 and self._identity:
            n, longest = self.chunks[0].shape
            ws = [w.index_select(0, self._devices) for w in weights]
            return fn(x.view(n, longest, *x.shape[1:]), *ws).flatten(0, 1)
        # gathers over rows flattened to one dimension: index_select of [rows, a, b, c] with a short last dimension
        # (an image's windows) took several times longer than of the same values as [rows, a * b * c]
        rows = _rows(x, self._gather).split(self._sizes)
        per_weight = [w.index_select(0, self._devices).split(self._counts) for w in weights]
        outs = [fn(r.view(*c.shape, *x.shape[1:]), *(ws[i] for ws in per_weight)).flatten(0, 1)
                for i, (r, c) in enumerate(zip(rows, self.chunks))]
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        return out if self._identity else _rows(out, self._pick)

    @property
    def slot_rows(self) -> Tensor:
        """Long [padded rows]: the row each slot of the chunks' padded layout holds (a padding slot: a copy of its
        chunk's first row)."""
        return self._gather

    @property
    def row_slots(self) -> Tensor:
        """Long [rows]: each row's slot in the padded layout."""
        return self._pick

    @property
    def slot_devices(self) -> Tensor:
        """Long [padded rows]: each slot's device (a padding slot: its chunk's device that lacks the row)."""
        if not hasattr(self, "_slot_devices"):
            self._slot_devices = torch.cat([c.devices.repeat_interleave(c.shape[1]) for c in self.chunks]) \
                if self.chunks else torch.zeros(0, dtype=torch.long)
        return self._slot_devices

    @property
    def real_slots(self) -> Tensor:
        """Bool [padded rows]: the slot holds its own device's row (not padding)."""
        if not hasattr(self, "_real"):
            real = torch.zeros(self.padded_rows, dtype=torch.bool, device=self._pick.device)
            self._real = real.index_fill(0, self._pick, True)
        return self._real

    def affine_padded(self, xp: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """Row r times its device's ``weight`` [D, out, in] plus its ``bias`` [D, out], rows in the padded layout
        [padded rows, in] -> [padded rows, out] (no gather in, none out: the chunks are views). Each chunk's product
        is written into its slice of one output (and, backward, of one input gradient), not concatenated: a cat
        would copy every row once more each way.

        Gradients of padding slots' outputs must be zero (nothing reads those outputs).
        """
        if xp.shape[0] != self.padded_rows:
            raise ValueError(f"Segments.affine_padded: {xp.shape[0]} rows given, the padded layout holds "
                             f"{self.padded_rows}")
        return cast(Tensor, _PaddedAffine.apply(xp, weight, bias, self))

    def sum(self, values: Tensor) -> Tensor:
        """Per-device sums of per-row ``values`` [rows, ...] -> [devices, ...]."""
        out = values.new_zeros(len(self.counts), *values.shape[1:])
        return out.index_add(0, self.device_of, values)


def _rows(x: Tensor, index: Tensor) -> Tensor:
    """``x.index_select(0, index)``, over ``x`` viewed as [rows, everything else]."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:])).index_select(0, index).view(index.shape[0], *x.shape[1:])


class _PaddedAffine(torch.autograd.Function):
    """`Segments.affine_padded`: one baddbmm a chunk, each into its slice of one output tensor; backward, one bmm a
    chunk into each of the input's and the weight's gradients."""

    @staticmethod
    def forward(ctx, xp: Tensor, weight: Tensor, bias: Tensor, seg: Segments) -> Tensor:
        xp = xp.contiguous()
        out = xp.new_empty(xp.shape[0], weight.shape[1])
        ws = weight.index_select(0, seg._devices).split(seg._counts)
        bs = bias.index_select(0, seg._devices).split(seg._counts)
        for x, w, b, o, c in zip(xp.split(seg._sizes), ws, bs, out.split(seg._sizes), seg.chunks):
            n, longest = c.shape
            torch.baddbmm(b[:, None], x.view(n, longest, -1), w.transpose(1, 2), out=o.view(n, longest, -1))
        ctx.save_for_backward(xp, weight)
        ctx.seg = seg
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        xp, weight = ctx.saved_tensors
        seg: Segments = ctx.seg
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad = grad.contiguous()
        grad_x = xp.new_empty(xp.shape) if need_x else None
        ws = weight.index_select(0, seg._devices).split(seg._counts)
        gxs = grad_x.split(seg._sizes) if grad_x is not None else [None] * len(ws)
        gws, gbs = [], []
        for g, x, w, gx, c in zip(grad.split(seg._sizes), xp.split(seg._sizes), ws, gxs, seg.chunks):
            n, longest = c.shape
            g = g.view(n, longest, -1)
            if gx is not None:
                torch.bmm(g, w, out=gx.view(n, longest, -1))
            if need_w:
                gws.append(torch.bmm(g.transpose(1, 2), x.view(n, longest, -1)))
            if need_b:
                gbs.append(g.sum(1))
        # every device lies in at most one chunk: its gradient is its chunk's (zero for a device without rows)
        grad_w = weight.new_zeros(weight.shape).index_copy_(0, seg._devices, torch.cat(gws)) if need_w else None
        grad_b = weight.new_zeros(weight.shape[:2]).index_copy_(0, seg._devices, torch.cat(gbs)) if need_b else None
        return grad_x, grad_w, grad_b, None


def linear(x: Tensor, segments: Segments, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Row r times its device's ``weight`` [D, out, in] (+ ``bias`` [D, out]): [rows, out]."""
    if bias is None:
        return segments.apply(x, lambda xp, w: torch.bmm(xp, w.transpose(1, 2)), weight)
    return segments.apply(x, lambda xp, w, b: torch.baddbmm(b[:, None], xp, w.transpose(1, 2)), weight, bias)
