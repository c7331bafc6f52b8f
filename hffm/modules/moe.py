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
    """Tensors that get a gradient only from kept tokens routed to this expert (the router always gets one)."""

    def __init__(self, width: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.router = nn.Parameter(torch.randn(width) * 0.02)
        self.router_bias = nn.Parameter(torch.zeros(()))
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor) -> Tensor:
        return self.fc2(self.drop(F.gelu(self.fc1(h))))


def moe_forward(h: Tensor, experts: Sequence[Expert], top_k: int, valid: Tensor | None = None,
                dense: bool = False, keep: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Route tokens of h [B, S, W] to top_k of `experts`; return (h + moe(h), aux loss, chosen [B, S, k]).

    valid [B, S] bool marks tokens that count for the balance loss (padding/absent tokens do not).
    keep: only the first `keep` positions of each sequence need the output (the model's heads read its
    task prompts only), so the experts run on those, the output is [B, keep, W] and an expert no kept
    token chose is left out of the graph; routing and the balance loss still see every token.
    dense: run every expert on every kept token and zero the gates of unchosen ones: the same sums in
    the same order, without the data-dependent gather, so `torch.func.vmap` can map it.
    """
    if not experts:
        raise ValueError("moe: a sub-model needs at least one expert")
    n = len(experts)
    k = min(top_k, n)
    b, s, w = h.shape
    flat = h.reshape(-1, w)
    weight = torch.stack([e.router for e in experts])  # [n, W]
    bias = torch.stack([e.router_bias for e in experts])  # [n]
    probs = F.softmax(flat @ weight.t() + bias, dim=-1)  # [T, n]
    gate, chosen = probs.topk(k, dim=-1)  # [T, k]
    gate = gate / gate.sum(-1, keepdim=True)
    picked = chosen.unsqueeze(-1) == torch.arange(n, device=h.device)  # [T, k, n]
    mask = torch.ones(flat.shape[0], dtype=torch.bool, device=h.device) if valid is None else valid.reshape(-1)
    count = mask.sum().clamp(min=1)
    dispatch = picked.sum(1).to(probs.dtype)  # [T, n], k ones per token
    f = (dispatch * mask[:, None]).sum(0) / (count * k)
    p = (probs * mask[:, None]).sum(0) / count
    aux = n * (f * p).sum()
    kept = s if keep is None else min(keep, s)
    part = h[:, :kept]
    x = part.reshape(-1, w)
    gate_k, chosen_k, picked_k = (t.view(b, s, *t.shape[1:])[:, :kept].reshape(-1, *t.shape[1:])
                                  for t in (gate, chosen, picked))
    out = torch.zeros_like(x)
    for i, expert in enumerate(experts):
        if dense:
            out = out + expert(x) * (gate_k * picked_k[..., i]).sum(-1, keepdim=True)
            continue
        rows, slot = (chosen_k == i).nonzero(as_tuple=True)
        if rows.numel():
            out.index_add_(0, rows, expert(x[rows]) * gate_k[rows, slot].unsqueeze(-1))
    return part + out.view_as(part), aux, chosen.view(b, s, k)
