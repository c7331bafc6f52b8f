"""lambda = 0, one edge above the model's size: module moves between two or three devices, priced at the edge's
latency.

At the edge's latency T every uploader j needs the band h_j(T) = R_j^-1(U_j / (T - S_j)) and the bands sum to B_e,
so a change that lowers the summed band at T lets the edge finish before T. A change of one device's modules
changes only its uploader's h (its own, or its relay's: the group's bits and, through the device's ready time, its
start), so every move whose devices upload through different uploaders is priced exactly by table look-ups:
  transfer: a hands module k to b (k's coverage changes by s_b - s_a);
  exchange: a hands k to b and b hands l to a (both coverages change, neither device's module count);
  merge: b takes k from both a and c (k's coverage changes by s_b - s_a - s_c).
An exchange or a merge is what single moves (solvers/local.py) cannot find at once: each part alone changes a
coverage or raises the band. The tables cost O(n M^2) band evaluations and the moves O(n^2 M^2 + n^3 M) sums,
against one exact min-max solve per candidate in the local search; the best moves on disjoint uploaders are applied
together, kept only when the edge's exact latency falls. Relay moves (a device to a relay, or back to direct)
are priced the same way, on its old and new uploader.
"""

from __future__ import annotations

import numpy as np

from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock
from solvers.energy import edge_latency
from solvers.evaluate import link_rates
from solvers.instance import RoundProblem

MOVES_PER_PASS = 8
"""Improving moves (on disjoint uploaders, best first) applied together before the exact latency is recomputed."""
SCAN = 4000
"""Candidate moves looked at per pass (best first) for ones on disjoint uploaders that keep every coverage."""


class _Groups:
    """The plan's upload groups at latency t: per device its uploader, and what the rest of its group sends and
    when the rest is ready, so that a change of the device's modules prices its uploader's band exactly."""

    def __init__(self, p: RoundProblem, x: np.ndarray, relay: np.ndarray, t: float) -> None:
        n = p.num_devices
        self.p, self.t, self.relay = p, t, relay
        self.factor = p.byte_factor
        self.rate = link_rates(p, relay)  # inf for direct
        tau, pay = self._row(x)
        ready = np.where(relay == np.arange(n), tau, tau + pay / self.rate)
        bits = np.bincount(relay, weights=pay, minlength=n)
        start = np.zeros(n)
        np.maximum.at(start, relay, ready)
        self.h = self._band(bits, start, np.arange(n))  # [n] each uploader's band (0 where it sends nothing)
        self.tau, self.pay, self.bits, self.start = tau, pay, bits, start
        self.rest_bits = bits[relay] - pay  # [n] what the rest of the device's group sends
        # the rest's latest ready time: the group's top two ready times
        order = np.lexsort((-ready, relay))
        first = np.full(n, -np.inf)
        second = np.full(n, -np.inf)
        for d in order:  # n steps, once a table
            u = relay[d]
            if first[u] == -np.inf:
                first[u] = ready[d]
            elif second[u] == -np.inf:
                second[u] = ready[d]
        top = first[relay]
        self.rest_ready = np.where(ready >= top, second[relay], top)  # ties: the other holds the same time

    def _row(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(compute time, payload bits) of placement rows x [n, ..., M] (the device first)."""
        p = self.p
        shape = (p.num_devices,) + (1,) * (x.ndim - 2)
        xf = x.astype(float)
        tau = p.samples.reshape(shape) * (xf @ p.module_cycles) / p.cpu_hz.reshape(shape)
        return tau, 8.0 * (xf @ p.module_bytes) * self.factor.reshape(shape)

    def _band(self, bits: np.ndarray, start: np.ndarray, up: np.ndarray) -> np.ndarray:
        win = self.t - start
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(win > 0, bits / np.where(win > 0, win, 1.0), np.inf)
        q = np.where(bits > 0, q, 0.0)
        return min_bandwidth(q, np.broadcast_to(self.p.snr_hz[up], q.shape))

    def delta(self, x: np.ndarray) -> np.ndarray:
        """[n, ...] the change of the summed band when device d's placement becomes x[d, ...] (rows [n, ..., M]);
        inf where a relayed device would train nothing (a relay may: it still uploads its group)."""
        n = self.p.num_devices
        shape = (n,) + (1,) * (x.ndim - 2)
        tau, pay = self._row(x)
        own = (self.relay == np.arange(n)).reshape(shape)
        with np.errstate(invalid="ignore"):
            ready = np.where(own, tau, tau + pay / self.rate.reshape(shape))
        start = np.maximum(ready, self.rest_ready.reshape(shape))
        up = np.broadcast_to(self.relay.reshape(shape), pay.shape)
        out = self._band(self.rest_bits.reshape(shape) + pay, start, up) - self.h[self.relay].reshape(shape)
        return np.where(~own & (pay <= 0), np.inf, out)


def _moves(p: RoundProblem, x: np.ndarray, relay: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Improving moves at latency t, best first: (summed band change [K], [K, 6] rows (a, b, k, l, c, r)), a gives k
    to b; l >= 0: b gives l to a (exchange); c >= 0: c gives k to b too (merge); r >= 0: a relay move instead, a to
    relay r (r = a: direct)."""
    n, m = x.shape
    g = _Groups(p, x, relay, t)
    eye = np.eye(m, dtype=bool)
    one = x[:, None, :] ^ eye[None]  # [n, k, M] toggle k
    h1 = g.delta(one)
    two = x[:, None, None, :] ^ eye[None, :, None] ^ eye[None, None, :]  # [n, k, l, M] toggle k and l
    h2 = g.delta(two)
    mem1 = one.astype(float) @ p.module_memory_bytes <= p.memory_bytes[:, None] * (1 + 1e-12)
    mem2 = two.astype(float) @ p.module_memory_bytes <= p.memory_bytes[:, None, None] * (1 + 1e-12)
    can = p.eligible & (p.samples[:, None] > 0)
    slack = (p.samples @ x.astype(float)) - p.coverage_demand()[0] * (1 - 1e-12)  # [M] coverage above demand
    s = p.samples
    apart = relay[:, None] != relay[None, :]  # [a, b] different uploaders: their changes add up
    give = x & np.isfinite(h1)
    take = ~x & can & mem1 & np.isfinite(h1)
    found: list[tuple[np.ndarray, ...]] = []
    # transfer: a gives k to b
    d_t = h1[:, None, :] + h1[None, :, :]  # [a, b, k]
    ok = give[:, None, :] & take[None, :, :] & apart[:, :, None]
    ok &= s[None, :, None] - s[:, None, None] + slack[None, None, :] >= 0
    a, b, k = np.nonzero(ok & (d_t < 0))
    found.append((d_t[a, b, k], a, b, k, np.full(a.size, -1), np.full(a.size, -1)))
    # exchange: a gives k to b, b gives l to a; device a toggles (k, l), so does b
    gk = x[:, :, None] & ~x[:, None, :] & can[:, None, :] & mem2 & np.isfinite(h2)  # [a, k, l]: holds k, takes l
    ok2 = gk[:, None, :, :] & np.swapaxes(gk, 1, 2)[None, :, :, :] & apart[:, :, None, None]  # b holds l, takes k
    cov = s[None, :, None, None] - s[:, None, None, None]  # s_b - s_a: change of k's coverage; l's is its negative
    ok2 &= (cov + slack[None, None, :, None] >= 0) & (-cov + slack[None, None, None, :] >= 0)
    d_x = h2[:, None, :, :] + h2[None, :, :, :]
    a, b, k, l2 = np.nonzero(ok2 & (d_x < 0))
    found.append((d_x[a, b, k, l2], a, b, k, l2, np.full(a.size, -1)))
    # merge: b takes k from a and c (a < c)
    for q in np.flatnonzero(take.any(axis=0) & (give.sum(axis=0) >= 2)):
        gv, tk = np.flatnonzero(give[:, q]), np.flatnonzero(take[:, q])
        d3 = h1[gv, q][:, None] + h1[gv, q][None, :]  # [a, c]
        pair = (gv[:, None] < gv[None, :]) & apart[np.ix_(gv, gv)]
        d_m = d3[None, :, :] + h1[tk, q][:, None, None]  # [b, a, c]
        okm = pair[None] & apart[np.ix_(tk, gv)][:, :, None] & apart[np.ix_(tk, gv)][:, None, :]
        okm &= s[tk][:, None, None] - s[gv][None, :, None] - s[gv][None, None, :] + slack[q] >= 0
        bi, ai, ci = np.nonzero(okm & (d_m < 0))
        found.append((d_m[bi, ai, ci], gv[ai], tk[bi], np.full(ai.size, q), np.full(ai.size, -1), gv[ci]))
    found = [(*f, np.full(f[0].size, -1)) for f in found]  # r = -1: placement moves
    d_r, r_rows = _relay_moves(p, g, relay)
    none = np.full(d_r.size, -1)
    found.append((d_r, r_rows[:, 0], none, none, none, none, r_rows[:, 1]))
    delta = np.concatenate([f[0] for f in found])
    rows = np.stack([np.concatenate([f[i] for f in found]) for i in range(1, 7)], axis=1).astype(int)
    order = np.argsort(delta, kind="stable")
    return delta[order], rows[order]


def _relay_moves(p: RoundProblem, g: _Groups, relay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Improving relay moves at g's latency: (band change [K], [K, 2] rows (i, r)), device i to relay r (r = i:
    direct). Each changes the band of i's old and new uploader only."""
    n = p.num_devices
    own = relay == np.arange(n)
    served = np.bincount(relay[~own], minlength=n)
    cap = n if p.relay_capacity is None else p.relay_capacity
    src, dst, rate = p.d2d_src, p.d2d_dst, p.d2d_rate_bps
    # leaving: i's old uploader u loses i (what the rest of its group sends, from when the rest is ready)
    u = relay
    leave = np.where(own, -g.h, g._band(g.rest_bits, g.rest_ready, u) - g.h[u])  # [n]
    alone = g._band(g.pay, g.tau, np.arange(n))  # [n] i direct, alone
    out_d, out_r = [], []
    go = ~own  # relayed -> direct
    d_dir = leave + alone
    i = np.flatnonzero(go & (d_dir < 0))
    out_d.append(d_dir[i])
    out_r.append(np.stack([i, i], axis=1))
    # i -> via j: j uploads its own group, i serves nobody, the link exists, j has room
    ok = own[dst] & (served[src] == 0) & (g.pay[src] > 0) & (g.bits[dst] > 0) & (served[dst] < cap)
    ok &= src != dst
    s_, d_, r_ = src[ok], dst[ok], rate[ok]
    arrive = g.tau[s_] + g.pay[s_] / r_
    join = g._band(g.bits[d_] + g.pay[s_], np.maximum(g.start[d_], arrive), d_) - g.h[d_]
    same = relay[s_] == d_
    d_via = np.where(same, np.inf, leave[s_] + join)
    keep = d_via < 0
    out_d.append(d_via[keep])
    out_r.append(np.stack([s_[keep], d_[keep]], axis=1))
    delta = np.concatenate(out_d)
    return delta, np.concatenate(out_r).astype(int)


def pair_moves(p: RoundProblem, x: np.ndarray, relay: np.ndarray, clock: Clock,
               per_pass: int = MOVES_PER_PASS) -> tuple[np.ndarray, np.ndarray, float]:
    """Improve the one-edge problem p's plan (x [n, M], relay [n] local) by transfers, exchanges, merges and relay
    moves until none lowers the band or `clock` runs out: (x, relay, its exact latency)."""
    x = np.asarray(x, dtype=bool).copy()
    relay = np.asarray(relay, dtype=int)
    t = float(edge_latency(p, [(x, relay)])[0][0])
    if p.relay_aggregates:  # a group sends the union: a device's change is not priced by its own payload
        return x, relay, t
    s = p.samples
    demand = p.coverage_demand()[0] * (1 - 1e-12)
    while not clock.expired():
        _, rows = _moves(p, x, relay, t)
        if rows.shape[0] == 0:
            break
        trial, trial_r, used = x.copy(), relay.copy(), set[int]()
        cov = s @ trial.astype(float)
        applied = 0
        for a, b, k, l2, c, r in rows[:SCAN].tolist():
            if r >= 0:  # a relay move: a's old and new uploader, and a itself
                ups = {int(relay[a]), r, a}
                if not ups & used:
                    trial_r[a] = r
                    used |= ups
                    applied += 1
                    if applied >= per_pass:
                        break
                continue
            ups = {int(relay[a]), int(relay[b])} | ({int(relay[c])} if c >= 0 else set())
            if ups & used:
                continue
            new = cov.copy()
            new[k] += s[b] - s[a] - (s[c] if c >= 0 else 0.0)
            if l2 >= 0:
                new[l2] += s[a] - s[b]
            if np.any(new < demand):
                continue
            trial[a, k], trial[b, k] = False, True
            if l2 >= 0:
                trial[b, l2], trial[a, l2] = False, True
            if c >= 0:
                trial[c, k] = False
            cov, applied = new, applied + 1
            used |= ups
            if applied >= per_pass:
                break
        t_new = float(edge_latency(p, [(trial, trial_r)])[0][0])
        if not t_new < t * (1 - 1e-12):
            if applied <= 1:
                break
            per_pass = 1  # priced apart, the moves should add up; if not, one at a time from here
            continue
        x, relay, t = trial, trial_r, t_new
    return x, relay, t
