"""Localized cooperative aggregation: consensus (gossip) averaging over a D2D graph.

Devices of a cluster mix their module states with their D2D neighbours for ``cons_rounds``
rounds using Metropolis-Hastings weights. The mixing matrix is symmetric and doubly stochastic,
so gossiping ``(w * x, w)`` pairs and dividing converges to the *sample-weighted* mean on every
connected component, without any node seeing more than its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hffm.federation.aggregate import StateDict
from hffm.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")


def metropolis_weights(adjacency: np.ndarray) -> np.ndarray:
    """W_ij = 1 / (1 + max(deg_i, deg_j)) on edges, the rest on the diagonal."""
    adj = np.asarray(adjacency, dtype=bool)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"adjacency must be square, got shape {adj.shape}")
    if not np.array_equal(adj, adj.T):
        raise ValueError("adjacency must be symmetric (D2D links are two-way)")
    adj = adj & ~np.eye(len(adj), dtype=bool)
    deg = adj.sum(1)
    w = np.where(adj, 1.0 / (1.0 + np.maximum(deg[:, None], deg[None, :])), 0.0)
    w[np.diag_indices_from(w)] = 1.0 - w.sum(1)
    return w


def gossip_average(
    states: Sequence[StateDict], weights: Sequence[float], adjacency: np.ndarray, rounds: int
) -> list[StateDict]:
    """Run ``rounds`` of weighted consensus; returns each node's state afterwards."""
    n = len(states)
    if n == 0:
        return []
    if adjacency.shape != (n, n):
        raise ValueError(f"adjacency shape {adjacency.shape} does not match {n} states")
    if rounds < 0:
        raise ValueError(f"cons_rounds must be >= 0, got {rounds}")
    mix = torch.from_numpy(np.linalg.matrix_power(metropolis_weights(adjacency), rounds))
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    if (w <= 0).any():
        raise ValueError(f"gossip weights (sample counts) must be > 0, got {w.tolist()}")
    mixed_w = mix @ w
    out: list[StateDict] = [{} for _ in range(n)]
    for key in states[0]:
        stacked = torch.stack([s[key].to(torch.float64) for s in states])
        flat = stacked.reshape(n, -1) * w[:, None]
        mixed = (mix @ flat) / mixed_w[:, None]
        for i in range(n):
            out[i][key] = mixed[i].reshape(stacked.shape[1:]).to(states[i][key].dtype)
    return out
