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

from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

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
        self.stems: dict[str, tuple[int, int]] = {}
        """Per conv-stem modality: the first convolution's padding and the second's stride."""
        self.iq = {m.name: bool(getattr(bank.module(f"encoder/{m.name}"), "iq_features", False))
                   for m in layout.modalities}
        for m in layout.modalities:
            stem = getattr(bank.module(f"encoder/{m.name}"), "stem", None)
            if stem is not None:
                self.stems[m.name] = (int(stem[0].padding[0]), int(stem[2].stride[0]))

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
        h = torch.cat(prompts + [e.flatten(0, 1) for e in encoded]).index_select(0, batch.source)
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
            rows = table.flatten(0, 1)[dev[:, None] * table.shape[1] + ids]
            tokens = torch.where((ids != 0)[..., None], rows, rows.detach())  # padding_idx 0: no gradient
        else:
            if self.iq[name]:
                i, q = x[:, :1], x[:, 1:]
                x = torch.cat([x, i * i + q * q, i * i - q * q, 2 * i * q], dim=1)
            w1, b1, w2, b2 = (get(key, k) for k in ("stem.0.weight", "stem.0.bias", "stem.2.weight", "stem.2.bias"))
            pad1, stride2 = self.stems[name]

            def stem(xp: Tensor, devs: Tensor) -> Tensor:
                n, length = xp.shape[:2]
                grouped = xp.transpose(0, 1).reshape(length, n * xp.shape[2], *xp.shape[3:])
                y = _conv(grouped, w1[devs].flatten(0, 1), b1[devs].flatten(), 1, pad1, n)
                y = _conv(F.gelu(y), w2[devs].flatten(0, 1), b2[devs].flatten(), stride2, 0, n)
                return y.reshape(length, n, -1, *y.shape[2:]).transpose(0, 1)

            out = seg.apply(x, stem)
            tokens = out.flatten(2).transpose(1, 2)
        pos = get(key, "pos_embed")[:, : tokens.shape[1]]
        return tokens + pos[dev] + get(key, "type_embed")[dev][:, None]

    def _lora(self, x: Tensor, seg: Segments, get, layer: int, linear_name: str) -> Tensor:
        a = get(f"adapter/{layer}", f"lora.{linear_name}.A")  # [D, r, in]
        b = get(f"adapter/{layer}", f"lora.{linear_name}.B")  # [D, out, r]
        scale = self.lora_scale

        def fn(xp: Tensor, devs: Tensor) -> Tensor:
            return torch.bmm(torch.bmm(xp, a[devs].transpose(1, 2)) * scale, b[devs].transpose(1, 2))
        return seg.apply(x, fn)

    def _layer(self, i: int, layer, h: Tensor, batch: PackedBatch, get) -> Tensor:
        seg = batch.tokens
        x = layer.ln1(h)
        qkv = layer.qkv(x) + self._lora(x, seg, get, i, "qkv")
        att = self._attention(qkv, batch, layer.heads)
        h = h + (layer.out(att) + self._lora(att, seg, get, i, "out"))
        x = layer.ln2(h)
        mid = F.gelu(layer.fc1(x) + self._lora(x, seg, get, i, "fc1"))
        h = h + (layer.fc2(mid) + self._lora(mid, seg, get, i, "fc2"))
        key = f"adapter/{i}"
        dw, db, uw, ub = (get(key, k) for k in ("down.weight", "down.bias", "up.weight", "up.bias"))

        def bottleneck(xp: Tensor, devs: Tensor) -> Tensor:
            mid = F.gelu(torch.baddbmm(db[devs][:, None], xp, dw[devs].transpose(1, 2)))
            return torch.baddbmm(ub[devs][:, None], mid, uw[devs].transpose(1, 2))
        return h + seg.apply(h, bottleneck)

    @staticmethod
    def _attention(qkv: Tensor, batch: PackedBatch, heads: int) -> Tensor:
        width = qkv.shape[1] // 3
        parts = []
        for bucket in batch.buckets:
            n, s = bucket.index.shape
            rows = qkv.index_select(0, bucket.index.flatten())
            q, k, v = rows.view(n, s, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=bucket.attend)
            parts.append(att.transpose(1, 2).reshape(n * s, width))
        return torch.cat(parts).index_select(0, batch.restore)

    def _moe(self, h: Tensor, batch: PackedBatch, get) -> tuple[Tensor, Tensor, Tensor]:
        """(prompt tokens after the MoE block [prompt tokens, width], balance loss [D], experts reached [D, n])."""
        n = self.num_experts
        k = min(self.cfg.top_k, n)
        seg = batch.tokens
        router = torch.stack([get(f"expert/{i}", "router") for i in range(n)], 1)  # [D, n, W]
        bias = torch.stack([get(f"expert/{i}", "router_bias") for i in range(n)], 1)  # [D, n]
        probs = F.softmax(linear(h, seg, router, bias), dim=-1)
        gate, chosen = probs.topk(k, dim=-1)
        gate = gate / gate.sum(-1, keepdim=True)
        picked = chosen.unsqueeze(-1) == torch.arange(n, device=h.device)  # [T, k, n]
        mask = batch.counted.to(probs.dtype)[:, None]
        count = seg.sum(mask).clamp(min=1)  # [D, 1]
        f = seg.sum(picked.sum(1).to(probs.dtype) * mask) / (count * k)
        p = seg.sum(probs * mask) / count
        aux = n * (f * p).sum(-1)
        rows = batch.prompt_rows
        x = h.index_select(0, rows)
        gate_k, picked_k = gate.index_select(0, rows), picked.index_select(0, rows)
        out = torch.zeros_like(x)
        for i in range(n):
            key = f"expert/{i}"
            w1, b1, w2, b2 = (get(key, k) for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))

            def expert(xp: Tensor, devs: Tensor, w1=w1, b1=b1, w2=w2, b2=b2) -> Tensor:
                mid = F.gelu(torch.baddbmm(b1[devs][:, None], xp, w1[devs].transpose(1, 2)))
                return torch.baddbmm(b2[devs][:, None], mid, w2[devs].transpose(1, 2))
            out = out + batch.prompts.apply(x, expert) * (gate_k * picked_k[..., i]).sum(-1, keepdim=True)
        reached = batch.prompts.sum(picked_k.any(1).to(probs.dtype)) > 0
        return x + out, aux, reached

    def _task_loss(self, task: str, kind: str, kept: Tensor, batch: PackedBatch, get) -> Tensor:
        """Each device's loss of one task [D]: the mean per-sample loss over its labelled samples."""
        seg = batch.task_samples[task]
        key = f"head/{task}"
        index = batch.heads[task]
        pooled = kept.index_select(0, index.flatten()).view(*index.shape, -1).mean(1)
        nw, nb, fw, fb = (get(key, k) for k in ("norm.weight", "norm.bias", "fc.weight", "fc.bias"))
        eps = 1e-5  # nn.LayerNorm's default, the heads' own

        def head(xp: Tensor, devs: Tensor) -> Tensor:
            normed = F.layer_norm(xp, xp.shape[-1:], eps=eps) * nw[devs][:, None] + nb[devs][:, None]
            return torch.baddbmm(fb[devs][:, None], normed, fw[devs].transpose(1, 2))

        out = seg.apply(pooled, head)
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


def _conv(x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int, groups: int) -> Tensor:
    return (F.conv1d if weight.dim() == 3 else F.conv2d)(x, weight, bias, stride=stride, padding=padding,
                                                         groups=groups)
