"""The packed pass: every device of a wave in one forward per local step, without padding.

`hffm.engine.batched` maps one padded model over devices with vmap, so a pass computes the union's layout
for every device (masked tokens, padding rows) and a round needs several passes a step to keep that waste
down. Here the samples of every device lie one after another (`packed_batch.pack`) and each operation reads
the weights its rows need:

- the frozen trunk's linears, LayerNorms and GELUs run once over all tokens (they are every device's);
- per-device weights (encoders' convolutions, LoRA deltas, adapters, routers, experts, heads) apply through
  `Segments`: devices of similar row counts in one bmm or grouped convolution each;
- attention runs once per sequence length: the samples of one length form a regular [samples, length] batch;
- the balance loss and the task losses are per-device sums (`Segments.sum`), so every device's loss is the
  one its own model computes, and the sum over devices gives each device's slice its own gradient.

It computes what `M3TModel.forward_masked` and `hffm.modules.objective` compute for each device alone, in
another summation order; the parameters are the device-stacked tensors of `batched.stack_states`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from hffm.engine import bucket_attention
from hffm.engine.packed_batch import PackedBatch, WaveLayout
from hffm.engine.segments import Segments, linear
from hffm.modules.bank import ModuleBank
from hffm.modules.trunk import Trunk
from hffm.spec import CONTAINER, MISSING_LABEL


def stacked_key(name: str) -> str:
    """Where module `name`'s tensors sit among the stacked tensors (bank name kind/key -> model.<attribute>.<key>.)."""
    kind, key = name.split("/", 1)
    return f"model.{CONTAINER[kind]}.{key}."


class PackedLoss:
    """Per-device losses of a packed step; parameters and buffers stacked over the wave's devices."""

    def __init__(self, bank: ModuleBank, layout: WaveLayout) -> None:
        self.cfg, self.layout = bank.cfg, layout
        self.trunk = cast(Trunk, bank.trunk)  # native only (batched_unsupported rules out Hugging Face trunks)
        self.num_experts = len(bank.experts)
        self.lora_scale = self.cfg.lora_alpha / self.cfg.lora_rank
        self.stems: dict[str, int] = {}
        """Per conv-stem modality: the first convolution's padding."""
        self.iq = {m.name: bool(getattr(bank.module(f"encoder/{m.name}"), "iq_features", False))
                   for m in layout.modalities}
        for m in layout.modalities:
            stem = getattr(bank.module(f"encoder/{m.name}"), "stem", None)
            if stem is not None:
                first, second = stem[0], stem[2]
                if set(first.stride) != {1} or second.kernel_size != second.stride or set(second.padding) != {0}:
                    raise ValueError(f"packed passes: encoder/{m.name}'s stem is not a stride-1 convolution then "
                                     f"non-overlapping patches ({first}, {second}); set federation.packed=false")
                self.stems[m.name] = int(first.padding[0])

    def __call__(self, tensors: Mapping[str, Tensor], batch: PackedBatch
                 ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """(total loss [D], each task's loss [D] (0 for a device without the task), experts reached [D, n])."""
        def get(name: str, key: str) -> Tensor:
            return tensors[stacked_key(name) + key]

        n_dev = len(batch.rows)
        prompts = [get(f"prompt/{t.name}", "tokens").reshape(n_dev * self.cfg.prompt_len, -1)
                   for t in self.layout.tasks]
        encoded = [self._encode(spec.name, spec.kind, batch.inputs[spec.name], batch.samples[spec.name], get)
                   for spec in self.layout.modalities]
        # the trunk works on the tokens in the padded layout of batch.tokens' chunks: every per-device op reads
        # its chunks as views, the gathers in and out of each op are gone (padding slots copy a real token)
        seg = batch.tokens
        h = torch.cat(prompts + [e.flatten(0, 1) for e in encoded]).index_select(0, batch.source[seg.slot_rows])
        for i, layer in enumerate(self.trunk.layers):
            h = self._layer(i, layer, h, batch, get)
        h = self.trunk.norm(h)
        kept, aux, reached = self._moe(h, batch, get)
        total = self.cfg.moe_aux_weight * aux
        losses = {}
        for task in self.layout.tasks:
            losses[task.name] = self._task_loss(task.name, task.kind, kept, batch, get)
        task_sum = torch.zeros_like(total)
        for loss in losses.values():
            task_sum = task_sum + loss
        return task_sum + total, losses, reached

    def _encode(self, name: str, kind: str, x: Tensor, seg: Segments, get) -> Tensor:
        """Tokens [samples, n, width] of modality `name` for the samples of the devices holding it."""
        key = f"encoder/{name}"
        dev = seg.device_of
        if kind == "text":
            ids = x.long()
            table = get(key, "embed.weight")  # [D, vocab, width]
            flat = (dev[:, None] * table.shape[1] + ids).flatten()
            # index_select, not advanced indexing: its backward (index_add) is deterministic with several threads,
            # advanced indexing's (index_put_ with accumulate) is not
            rows = table.flatten(0, 1).index_select(0, flat).view(*ids.shape, -1)
            tokens = torch.where((ids != 0)[..., None], rows, rows.detach())  # padding_idx 0: no gradient
        else:
            if self.iq[name]:
                i, q = x[:, :1], x[:, 1:]
                x = torch.cat([x, i * i + q * q, i * i - q * q, 2 * i * q], dim=1)
            w1, b1, w2, b2 = (get(key, k) for k in ("stem.0.weight", "stem.0.bias", "stem.2.weight", "stem.2.bias"))
            tokens = seg.apply(x, partial(_stem, padding=self.stems[name]), w1, b1, w2, b2)
        pos = get(key, "pos_embed")[:, : tokens.shape[1]]
        return tokens + pos.index_select(0, dev) + get(key, "type_embed").index_select(0, dev)[:, None]

    def _folded(self, x: Tensor, seg: Segments, lin, get, layer: int, name: str, padded: bool = False) -> Tensor:
        """The trunk linear `name` with each device's LoRA delta folded into its weight: one bmm (rows in the padded
        layout of ``seg`` when ``padded``)."""
        a = get(f"adapter/{layer}", f"lora.{name}.A")  # [D, r, in]
        b = get(f"adapter/{layer}", f"lora.{name}.B")  # [D, out, r]
        weight = lin.weight + torch.bmm(b * self.lora_scale, a)  # [D, out, in]
        bias = lin.bias.expand(weight.shape[0], -1)
        if padded:
            return seg.affine_padded(x, weight, bias)
        return linear(x, seg, weight, bias)

    def _layer(self, i: int, layer, h: Tensor, batch: PackedBatch, get) -> Tensor:
        seg = batch.tokens
        qkv = self._folded(layer.ln1(h), seg, layer.qkv, get, i, "qkv", padded=True)
        att = self._attention(qkv, batch, layer.heads, padded=True)
        h = h + self._folded(att, seg, layer.out, get, i, "out", padded=True)
        mid = F.gelu(self._folded(layer.ln2(h), seg, layer.fc1, get, i, "fc1", padded=True))
        h = h + self._folded(mid, seg, layer.fc2, get, i, "fc2", padded=True)
        key = f"adapter/{i}"
        dw, db, uw, ub = (get(key, k) for k in ("down.weight", "down.bias", "up.weight", "up.bias"))
        return h + seg.affine_padded(F.gelu(seg.affine_padded(h, dw, db)), uw, ub)

    @staticmethod
    def _attention(qkv: Tensor, batch: PackedBatch, heads: int, padded: bool = False) -> Tensor:
        """Attention over each sample's tokens; ``padded``: qkv's rows and the output's are in the padded layout
        of ``batch.tokens``."""
        width = qkv.shape[1] // 3
        parts = []
        # one gather for all buckets, split (a gather's backward zero-fills all of qkv: once, not once a bucket)
        seg = batch.tokens
        index = seg.row_slots[batch.bucket_rows] if padded else batch.bucket_rows
        restore = batch.restore[seg.slot_rows] if padded else batch.restore
        if bucket_attention.available(qkv):
            shapes = [(b.index.shape[0], b.index.shape[1]) for b in batch.buckets]
            return bucket_attention.bucket_attention(qkv, index, restore, shapes, [b.attend for b in batch.buckets],
                                                     heads)
        gathered = qkv.index_select(0, index).split([b.index.numel() for b in batch.buckets])
        for bucket, rows in zip(batch.buckets, gathered):
            n, s = bucket.index.shape
            q, k, v = rows.view(n, s, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=bucket.attend)
            parts.append(att.transpose(1, 2).reshape(n * s, width))
        return torch.cat(parts).index_select(0, restore)

    def _moe(self, h: Tensor, batch: PackedBatch, get) -> tuple[Tensor, Tensor, Tensor]:
        """(prompt tokens after the MoE block [prompt tokens, width], balance loss [D], experts reached [D, n])."""
        n = self.num_experts
        k = min(self.cfg.top_k, n)
        seg = batch.tokens  # h: the tokens in its padded layout
        probs, gate, chosen = route(h, seg, get, n, k, padded=True)
        picked = chosen.unsqueeze(-1) == torch.arange(n, device=h.device)  # [slots, k, n]
        counted = seg.real_slots if batch.compact else batch.counted[seg.slot_rows] & seg.real_slots
        mask = counted.to(probs.dtype)[:, None]
        dev = seg.slot_devices
        count = _sum(mask, dev, len(seg.counts)).clamp(min=1)  # [D, 1]
        f = _sum(picked.sum(1).to(probs.dtype) * mask, dev, len(seg.counts)) / (count * k)
        p = _sum(probs * mask, dev, len(seg.counts)) / count
        aux = n * (f * p).sum(-1)
        rows = seg.row_slots[batch.prompt_rows]
        x = h.index_select(0, rows)
        picked_k = picked.index_select(0, rows)
        out = mix_experts(x, batch.prompts, gate.index_select(0, rows), chosen.index_select(0, rows), get, n)
        reached = batch.prompts.sum(picked_k.any(1).to(probs.dtype)) > 0
        return out, aux, reached

    def _task_loss(self, task: str, kind: str, kept: Tensor, batch: PackedBatch, get) -> Tensor:
        """Each device's loss of one task [D]: the mean per-sample loss over its labelled samples."""
        seg, key = batch.task_samples[task], f"head/{task}"
        out = task_head(task, kept, batch, get)
        y = batch.targets[task]
        dev = seg.device_of
        if kind == "classification":
            per_sample = F.cross_entropy(out, y.long(), reduction="none", ignore_index=MISSING_LABEL)
            weight = (y != MISSING_LABEL).to(out.dtype)
        else:
            scale, mean = get(key, "target_scale")[dev], get(key, "target_mean")[dev]
            pred = out.squeeze(-1) * scale + mean
            diff = (pred - y.to(pred.dtype)) / scale
            per_sample, weight = diff * diff, torch.ones_like(diff)
        return seg.sum(per_sample * weight) / seg.sum(weight).clamp(min=1)


def _sum(values: Tensor, device_of: Tensor, devices: int) -> Tensor:
    """Per-device sums of per-row ``values`` [rows, ...] -> [devices, ...]."""
    return values.new_zeros(devices, *values.shape[1:]).index_add(0, device_of, values)


def _mlp(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """Per-device linear -> GELU -> linear over padded rows [n, longest, in] (weights [n, out, in], biases [n, out])."""
    return torch.baddbmm(b2[:, None], F.gelu(torch.baddbmm(b1[:, None], x, w1.transpose(1, 2))), w2.transpose(1, 2))


def _norm_linear(x: Tensor, nw: Tensor, nb: Tensor, fw: Tensor, fb: Tensor) -> Tensor:
    """Per-device LayerNorm (nn.LayerNorm's default eps, the heads' own) -> linear over padded rows."""
    normed = F.layer_norm(x, x.shape[-1:], eps=1e-5) * nw[:, None] + nb[:, None]
    return torch.baddbmm(fb[:, None], normed, fw.transpose(1, 2))


def task_head(task: str, kept: Tensor, batch: PackedBatch, get) -> Tensor:
    """Each labelled sample's output of one task's head [samples, out]: its kept tokens pooled, then each device's
    own head (training and evaluation alike)."""
    index = batch.heads[task]
    pooled = kept.index_select(0, index.flatten()).view(*index.shape, -1).mean(1)
    weights = (get(f"head/{task}", k) for k in ("norm.weight", "norm.bias", "fc.weight", "fc.bias"))
    return batch.task_samples[task].apply(pooled, _norm_linear, *weights)


def route(x: Tensor, seg: Segments, get, n: int, k: int, padded: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Each row's router probabilities [rows, n], its top-k gates renormalised to sum to 1 [rows, k] and the experts
    they pick [rows, k], with each device's own router (training and evaluation route alike); ``padded``: x's rows
    are in the padded layout of ``seg``, and so are the outputs."""
    router = torch.stack([get(f"expert/{i}", "router") for i in range(n)], 1)  # [D, n, W]
    bias = torch.stack([get(f"expert/{i}", "router_bias") for i in range(n)], 1)  # [D, n]
    logits = seg.affine_padded(x, router, bias) if padded else linear(x, seg, router, bias)
    probs = F.softmax(logits, dim=-1)
    gate, chosen = probs.topk(k, dim=-1)
    return probs, gate / gate.sum(-1, keepdim=True), chosen


def mix_experts(x: Tensor, seg: Segments, gate: Tensor, chosen: Tensor, get, n: int) -> Tensor:
    """x plus the gated sum of the experts each row chose (each device's own experts)."""
    out = torch.zeros_like(x)
    for i in range(n):
        w1, b1, w2, b2 = (get(f"expert/{i}", k) for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
        out = out + seg.apply(x, _mlp, w1, b1, w2, b2) * (gate * (chosen == i)).sum(-1, keepdim=True)
    return x + out


def _columns(x: Tensor, kernel: int, padding: int) -> tuple[Tensor, tuple[int, ...]]:
    """The first convolution's input windows, im2col's layout: [N, C, *size] -> ([N, C * kernel ** dims, positions],
    output size), channels (C, ky, kx); stride 1. Stacked shifted slices: rows of many contiguous values to copy,
    where ``F.unfold`` and a transpose to one window a row cost several times more."""
    out = tuple(s + 2 * padding - kernel + 1 for s in x.shape[2:])
    xp = F.pad(x, (padding, padding) * len(out))
    if len(out) == 2:  # image [N, C, H, W]
        h, w = out
        shifted = [xp[:, :, i:i + h, j:j + w] for i in range(kernel) for j in range(kernel)]
    else:  # signal [N, C, T]
        shifted = [xp[:, :, j:j + out[0]] for j in range(kernel)]
    return torch.stack(shifted, 2).view(x.shape[0], -1, math.prod(out)), out


def _stem(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, padding: int) -> Tensor:
    """An encoder's conv -> GELU -> patch conv as per-device matmuls: samples [n, L, C, *size] -> tokens
    [n, L, patches, width] (patches in the convolution's row-major order).

    The first convolution multiplies each sample's windows, read transposed in place, by its device's weight, so its
    output is channels-last; the patches then take their (ky, kx, channel) values as runs of kx * channels
    contiguous values, and the patch convolution's weight is permuted to that order instead of the activations."""
    n, length = x.shape[:2]
    cols, size = _columns(x.flatten(0, 1), w1.shape[-1], padding)  # [n * L, C * k^dims, positions]
    weight = w1.flatten(2).transpose(1, 2).repeat_interleave(length, 0)  # [n * L, C * k^dims, mid]
    mid = F.gelu(torch.baddbmm(b1.repeat_interleave(length, 0)[:, None], cols.transpose(1, 2), weight))
    patch, c = w2.shape[-1], mid.shape[-1]
    if len(size) == 2:  # [n * L, H, W, c] -> [n, L * h * w, (ky, kx, c)]
        h, w = (s // patch for s in size)
        mid = mid.view(n * length, *size, c)[:, :h * patch, :w * patch].reshape(n * length, h, patch, w, patch, c)
        patches = mid.permute(0, 1, 3, 2, 4, 5).reshape(n, length * h * w, -1)
        w2 = w2.permute(0, 1, 3, 4, 2)
    else:  # [n * L, T, c] -> [n, L * t, (k, c)]: a view
        t = size[0] // patch
        patches = mid[:, :t * patch].reshape(n, length * t, -1)
        w2 = w2.permute(0, 1, 3, 2)
    out = torch.baddbmm(b2[:, None], patches, w2.flatten(2).transpose(1, 2))
    return out.view(n, length, -1, out.shape[-1])
