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

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
        rows = x.index_select(0, self._gather).split(self._sizes)
        per_weight = [w.index_select(0, self._devices).split(self._counts) for w in weights]
        outs = [fn(r.view(*c.shape, *x.shape[1:]), *(ws[i] for ws in per_weight)).flatten(0, 1)
                for i, (r, c) in enumerate(zip(rows, self.chunks))]
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        return out if self._identity else out.index_select(0, self._pick)

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

    def apply_padded(self, xp: Tensor, fn: Callable[..., Tensor], *weights: Tensor) -> Tensor:
        """`apply` on rows already in the padded layout [padded rows, ...] (no gather in, none out): the chunks are
        views; the output stays in the padded layout."""
        if xp.shape[0] != self.padded_rows:
            raise ValueError(f"Segments.apply_padded: {xp.shape[0]} rows given, the padded layout holds "
                             f"{self.padded_rows}")
        per_weight = [w.index_select(0, self._devices).split(self._counts) for w in weights]
        outs = [fn(r.view(*c.shape, *xp.shape[1:]), *(ws[i] for ws in per_weight)).flatten(0, 1)
                for i, (r, c) in enumerate(zip(xp.split(self._sizes), self.chunks))]
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def sum(self, values: Tensor) -> Tensor:
        """Per-device sums of per-row ``values`` [rows, ...] -> [devices, ...]."""
        out = values.new_zeros(len(self.counts), *values.shape[1:])
        return out.index_add(0, self.device_of, values)


def linear(x: Tensor, segments: Segments, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Row r times its device's ``weight`` [D, out, in] (+ ``bias`` [D, out]): [rows, out]."""
    if bias is None:
        return segments.apply(x, lambda xp, w: torch.bmm(xp, w.transpose(1, 2)), weight)
    return segments.apply(x, lambda xp, w, b: torch.baddbmm(b[:, None], xp, w.transpose(1, 2)), weight, bias)
