"""Latency and energy of any plan, from the formulas of solvers/README.md (vectorized; used by every solver).

`timeline` works on a batch of K candidate plans of the same n devices at once, which is what the exact
enumeration and the local search need; a whole round is the batch K = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers.instance import RoundProblem

LN2 = float(np.log(2.0))


def uplink_rate(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Shannon rate R(b) = b log2(1 + a / b) in bit/s, a = p g / N0 in Hz; R(0) = 0."""
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = b * np.log1p(a / b) / LN2
    return np.where(b > 0, r, 0.0)


@dataclass(frozen=True)
class Timeline:
    """Per device (shape [K, n]): compute time, own payload bits, upload start, upload bits, uploads?"""

    tau: np.ndarray
    payload_bits: np.ndarray
    start: np.ndarray
    bits: np.ndarray
    uploader: np.ndarray
    relayed: np.ndarray


def timeline(x: np.ndarray, relay: np.ndarray, link_rate: np.ndarray, samples: np.ndarray, cpu_hz: np.ndarray,
             module_cycles: np.ndarray, module_bytes: np.ndarray, aggregates: bool,
             factor: np.ndarray | None = None) -> Timeline:
    """x [K, n, M] bool, relay [K, n] local indices (one hop), link_rate [K, n] D2D rate to the relay; factor
    [K, n] or [n]: each device's compression level's bytes factor (an aggregating relay sends the union at its
    own; None: full size)."""
    k, n, _ = x.shape
    xf = x.astype(float)
    tau = samples * (xf @ module_cycles) / cpu_hz
    payload = 8.0 * (xf @ module_bytes)
    scale = None if factor is None else np.broadcast_to(np.asarray(factor, dtype=float), (k, n))
    if scale is not None:
        payload = payload * scale
    relayed = relay != np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        arrival = np.where(relayed, tau + payload / link_rate, tau)
    target = (relay + n * np.arange(k)[:, None]).ravel()
    start = tau.ravel().copy()
    np.maximum.at(start, target, arrival.ravel())
    if aggregates:
        union = np.zeros((k * n, x.shape[2]), dtype=np.uint8)
        np.maximum.at(union, target, x.reshape(k * n, -1).astype(np.uint8))
        bits = 8.0 * (union @ module_bytes)
        if scale is not None:
            bits = bits * scale.ravel()
    else:
        bits = np.zeros(k * n)
        np.add.at(bits, target, payload.ravel())
    bits = bits.reshape(k, n)
    return Timeline(tau=tau, payload_bits=payload, start=start.reshape(k, n), bits=bits,
                    uploader=~relayed & (bits > 0), relayed=relayed)


def link_rates(problem: RoundProblem, relay: np.ndarray) -> np.ndarray:
    """D2D rate r_{i, rho(i)} for every device (inf for direct uploads, 0 where no such link exists)."""
    rate = np.full(problem.num_devices, np.inf)
    idx = np.flatnonzero(relay != np.arange(problem.num_devices))
    if idx.size:
        rate[idx] = problem.link_rate(idx, relay[idx])
    return rate


def round_timeline(problem: RoundProblem, x: np.ndarray, relay: np.ndarray,
                   cpu_hz: np.ndarray | None = None) -> Timeline:
    """Timeline of a whole round (K = 1, squeezed to [N]); cpu_hz: planned frequencies (default the instance's)."""
    relay = np.asarray(relay, dtype=int)
    f = problem.cpu_hz if cpu_hz is None else cpu_hz
    factor = None if problem.level is None else problem.byte_factor
    tl = timeline(np.asarray(x, dtype=bool)[None], relay[None], link_rates(problem, relay)[None], problem.samples,
                  f, problem.module_cycles, problem.module_bytes, problem.relay_aggregates, factor)
    return Timeline(*(a[0] for a in (tl.tau, tl.payload_bits, tl.start, tl.bits, tl.uploader, tl.relayed)))


@dataclass(frozen=True)
class Cost:
    latency_s: float
    energy_j: float
    objective: float
    edge_latency_s: np.ndarray  # [E]


def evaluate(problem: RoundProblem, x: np.ndarray, relay: np.ndarray, bandwidth_hz: np.ndarray,
             power: np.ndarray | None = None, cpu_hz: np.ndarray | None = None) -> Cost:
    """T, E and T + lambda E (+ the distortion penalty of chosen levels) of a plan (inf latency if an uploader got
    no bandwidth); power and cpu_hz are the planned uplink powers and CPU frequencies (default: the instance's)."""
    relay = np.asarray(relay, dtype=int)
    pw = problem.tx_power_w if power is None else np.asarray(power, dtype=float)
    f = problem.cpu_hz if cpu_hz is None else np.asarray(cpu_hz, dtype=float)
    tl = round_timeline(problem, x, relay, f)
    rate = uplink_rate(np.asarray(bandwidth_hz, dtype=float), pw * problem.uplink_gain / problem.noise_w_per_hz)
    with np.errstate(divide="ignore"):
        up_time = np.where(tl.uploader, tl.bits / np.where(tl.uploader, rate, 1.0), 0.0)
    finish = np.where(tl.uploader, tl.start + up_time, 0.0)
    edge_t = np.zeros(problem.num_edges)
    np.maximum.at(edge_t, problem.device_edge, finish)
    cycles = problem.samples * (np.asarray(x, dtype=float) @ problem.module_cycles)
    energy = float(np.sum(problem.kappa * cycles * f ** 2))
    lr = link_rates(problem, relay)
    if tl.relayed.any():
        energy += float(np.sum(problem.d2d_power_w[tl.relayed] * tl.payload_bits[tl.relayed] / lr[tl.relayed]))
    energy += float(np.sum(pw * up_time))
    latency = float(edge_t.max())
    objective = latency + problem.lam * energy + problem.distortion_penalty * problem.distortion(x)
    return Cost(latency_s=latency, energy_j=energy, objective=objective, edge_latency_s=edge_t)
