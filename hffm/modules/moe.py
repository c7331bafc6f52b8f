"""Mixture-of-experts feed-forward block, split so each expert is its own federated module.

An Expert holds its FFN and its own row of the router, so averaging `expert/i` over the devices
that trained it also averages how tokens are routed to it. Routing: softmax over the router
logits of the experts a sub-model holds, top-k, gates renormalised over the chosen k; the
Switch-style balance loss is n * sum_i f_i * P_i over valid (unmasked) tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Expert(nn.Module):
    """One expert: a two-layer FFN plus its router row (logit = <router, h> + router_bias)."""

    routed_prefixes = ("fc1.", "fc2.")
    """Tensors that get a gradient only from tokens routed to this expert (the router always gets one)."""

    def __init__(self, width: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.router = nn.Parameter(torch.randn(width) * 0.02)
        self.router_bias = nn.Parameter(torch.zeros(()))
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor) -> Tensor:
        return self.fc2(self.drop(F.gelu(self.fc1(h))))


def moe_forward(h: Tensor, experts: Sequence[Expert], top_k: int,
                valid: Tensor | None = None, dense: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Route tokens of h [B, S, W] to top_k of `experts`; return (h + moe(h), aux loss, chosen [B, S, k]).

    valid [B, S] bool marks tokens that count for the balance loss (padding/absent tokens do not).
    dense: run every expert on every token and zero the gates of unchosen ones: the same sums in
    the same order, without the data-dependent gather, so `torch.func.vmap` can map it.
    """
    if not experts:
        raise ValueError("moe: a sub-model needs at least one expert")
    n = len(experts)
    k = min(top_k, n)
    flat = h.reshape(-1, h.shape[-1])
    weight = torch.stack([e.router for e in experts])  # [n, W]
    bias = torch.stack([e.router_bias for e in experts])  # [n]
    probs = F.softmax(flat @ weight.t() + bias, dim=-1)  # [T, n]
    gate, chosen = probs.topk(k, dim=-1)  # [T, k]
    gate = gate / gate.sum(-1, keepdim=True)
    picked = chosen.unsqueeze(-1) == torch.arange(n, device=h.device)  # [T, k, n]
    out = torch.zeros_like(flat)
    for i, expert in enumerate(experts):
        if dense:
            out = out + expert(flat) * (gate * picked[..., i]).sum(-1, keepdim=True)
            continue
        rows, slot = (chosen == i).nonzero(as_tuple=True)
        if rows.numel():
            out.index_add_(0, rows, expert(flat[rows]) * gate[rows, slot].unsqueeze(-1))
    mask = torch.ones(flat.shape[0], dtype=torch.bool, device=h.device) if valid is None else valid.reshape(-1)
    count = mask.sum().clamp(min=1)
    dispatch = picked.sum(1).to(probs.dtype)  # [T, n], k ones per token
    f = (dispatch * mask[:, None]).sum(0) / (count * k)
    p = (probs * mask[:, None]).sum(0) / count
    aux = n * (f * p).sum()
    return h + out.view_as(h), aux, chosen.view(*h.shape[:2], k)
