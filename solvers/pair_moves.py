"""lambda = 0, one edge above the model's size: module moves between two devices, priced at the edge's latency.

At the edge's latency T every uploader j needs the band h_j(T) = R_j^-1(U_j / (T - S_j)) and the bands sum to B_e,
so a change that lowers the summed band at T lets the edge finish before T. For devices that upload alone (no relay
either way) a change of one device's modules changes only its own h, so every move of two such devices a, b is
priced exactly by two table look-ups:
  transfer: a hands module k to b (k's coverage changes by s_b - s_a);
  exchange: a hands k to b and b hands l to a (both coverages change, neither device's module count).
An exchange is what single moves (solvers/local.py) cannot find: each half alone changes two coverages or raises
the band. The tables cost O(n M^2) band evaluations and the moves O(n^2 M^2) sums, against one exact min-max solve
per candidate in the local search; the best moves on disjoint devices are applied together, kept only when the
edge's exact latency falls.
"""

from __future__ import annotations

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock
from solvers.energy import edge_latency
from solvers.instance import RoundProblem

MOVES_PER_PASS = 8
"""Improving moves (on disjoint devices, best first) applied together before the exact latency is recomputed."""


def _bands(p: RoundProblem, x: np.ndarray, t: float) -> np.ndarray:
    """[...] the band each placement row of x [..., M] needs to upload alone by t (its device on the last axis but
    one; inf where it cannot finish, 0 for an empty placement)."""
    xf = x.astype(float)
    shape = (p.num_devices,) + (1,) * (x.ndim - 2)
    tau = p.samples.reshape(shape) * (xf @ p.module_cycles) / p.cpu_hz.reshape(shape)
    bits = 8.0 * (xf @ p.module_bytes)
    win = t - tau
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(win > 0, bits / np.where(win > 0, win, 1.0), np.inf)
    q = np.where(bits > 0, q, 0.0)
    return min_bandwidth(q, np.broadcast_to(p.snr_hz.reshape(shape), q.shape))


def _moves(p: RoundProblem, x: np.ndarray, relay: np.ndarray, t: float) -> list[tuple[float, int, int, int, int]]:
    """Improving moves at latency t, best first: (summed band change, a, b, k, l), l = -1 for a transfer."""
    n, m = x.shape
    free = relay == np.arange(n)
    free &= np.bincount(relay[~free], minlength=n) == 0  # serves nobody
    h0 = _bands(p, x, t)
    eye = np.eye(m, dtype=bool)
    one = x[:, None, :] ^ eye[None]  # [n, k, M] toggle k
    h1 = _bands(p, one, t) - h0[:, None]
    two = x[:, None, None, :] ^ eye[None, :, None] ^ eye[None, None, :]  # [n, k, l, M] toggle k and l
    h2 = _bands(p, two, t) - h0[:, None, None]
    mem_ok1 = one.astype(float) @ p.module_memory_bytes <= p.memory_bytes[:, None] * (1 + 1e-12)
    mem_ok2 = two.astype(float) @ p.module_memory_bytes <= p.memory_bytes[:, None, None] * (1 + 1e-12)
    can = p.eligible & (p.samples[:, None] > 0)
    demand = p.coverage_demand()[0]
    slack = (p.samples @ x.astype(float)) - demand * (1 - 1e-12)  # [M] coverage above demand
    s = p.samples
    give = x & free[:, None]  # [n, M] a may give k
    take = ~x & can & free[:, None] & mem_ok1  # b may take k (memory with k added)
    out: list[tuple[float, int, int, int, int]] = []
    # transfer: a gives k to b
    d_t = h1[:, None, :] + h1[None, :, :]  # [a, b, k]
    ok_t = give[:, None, :] & take[None, :, :] & (s[None, :, None] - s[:, None, None] + slack[None, None, :] >= 0)
    ok_t &= ~np.eye(n, dtype=bool)[:, :, None]
    a, b, k = np.nonzero(ok_t & (d_t < 0))
    out += [(float(d_t[i, j, q]), int(i), int(j), int(q), -1) for i, j, q in zip(a, b, k, strict=True)]
    # exchange: a gives k to b, b gives l to a; device a toggles (k, l), so does b
    gk = give[:, :, None] & ~x[:, None, :] & can[:, None, :] & mem_ok2  # [a, k, l]: a holds k, takes l
    ok_x = gk[:, None, :, :] & np.swapaxes(gk, 1, 2)[None, :, :, :]  # b holds l, takes k
    cov = s[None, :, None, None] - s[:, None, None, None]  # s_b - s_a: change of k's coverage; l's is its negative
    ok_x &= (cov + slack[None, None, :, None] >= 0) & (-cov + slack[None, None, None, :] >= 0)
    d_x = h2[:, None, :, :] + h2[None, :, :, :]
    ok_x &= ~np.eye(n, dtype=bool)[:, :, None, None]
    a, b, k, l2 = np.nonzero(ok_x & (d_x < 0))
    out += [(float(d_x[i, j, q, r]), int(i), int(j), int(q), int(r)) for i, j, q, r in zip(a, b, k, l2, strict=True)]
    out.sort()
    return out


def pair_moves(p: RoundProblem, x: np.ndarray, relay: np.ndarray, clock: Clock,
               per_pass: int = MOVES_PER_PASS) -> tuple[np.ndarray, np.ndarray, float]:
    """Improve the one-edge problem p's plan (x [n, M], relay [n] local) by transfers and exchanges until none
    lowers the band or `clock` runs out: (x, relay, its exact latency); relays are kept."""
    x = np.asarray(x, dtype=bool).copy()
    t = float(edge_latency(p, [(x, relay)])[0][0])
    s = p.samples
    while not clock.expired():
        moves = _moves(p, x, relay, t)
        if not moves:
            break
        trial, used = x.copy(), set[int]()
        cov = s @ trial.astype(float)
        demand = p.coverage_demand()[0] * (1 - 1e-12)
        applied = 0
        for _, a, b, k, l2 in moves:
            if a in used or b in used:
                continue
            new = cov.copy()
            new[k] += s[b] - s[a]
            if l2 >= 0:
                new[l2] += s[a] - s[b]
            if np.any(new < demand):
                continue
            trial[a, k], trial[b, k] = False, True
            if l2 >= 0:
                trial[b, l2], trial[a, l2] = False, True
            cov, applied = new, applied + 1
            used.update((a, b))
            if applied >= per_pass:
                break
        t_new = float(edge_latency(p, [(trial, relay)])[0][0])
        if not t_new < t * (1 - 1e-12):
            if applied <= 1:
                break
            per_pass = 1  # the moves interact through T: one at a time from here
            continue
        x, t = trial, t_new
    return x, relay, t
