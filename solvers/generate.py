"""Seeded random instances from the network model of docs/network-model.md (its default preset).

Edge servers at least 500 m apart in a square (5000 m for 10 servers, the side grows with sqrt(E) so
the packing stays possible); per server a cluster centre within 1000 m and its devices within 500 m of
the centre. Uplink gain = beta0 (d / 1 m)^-3 |h|^2 with beta0 = -30 dB and Rayleigh |h|^2 ~ Exp(1);
N0 = -174 dBm/Hz; 1 W uplink; D2D at 0.2 W on a fixed D2D band to the nearest neighbours of the same
cluster, rate from the Shannon formula. Module training cost: 6 cycles per parameter per sample.
"""

from __future__ import annotations

import numpy as np

from solvers.instance import RoundProblem

_NAMES = ("encoder/image", "encoder/text", "encoder/signal", "prompt/vqa", "prompt/caption", "adapter/0",
          "adapter/1", "expert/0", "expert/1", "head/vqa", "head/caption", "expert/2")


def _servers(rng: np.random.Generator, num_edges: int, side: float, min_sep: float) -> np.ndarray:
    pts: list[np.ndarray] = []
    for _ in range(200000):
        p = rng.uniform(0, side, size=2)
        if all(np.hypot(*(p - q)) >= min_sep for q in pts):
            pts.append(p)
            if len(pts) == num_edges:
                return np.array(pts)
    raise ValueError(f"num_edges={num_edges}: cannot place servers {min_sep} m apart in a {side:.0f} m square")


def _disc(rng: np.random.Generator, centre: np.ndarray, radius: float, count: int) -> np.ndarray:
    r = radius * np.sqrt(rng.uniform(size=count))
    phi = rng.uniform(0, 2 * np.pi, size=count)
    return centre + np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)


def random_instance(num_devices: int, num_edges: int, num_modules: int, seed: int, *,
                    d2d_neighbours: int = 3, bandwidth_per_device_hz: float = 1e6, d2d_bandwidth_hz: float = 1e6,
                    gamma: float = 0.5, lam: float = 0.0, relay_aggregates: bool = False,
                    eligibility: float = 0.7, memory_fraction: tuple[float, float] = (1.0, 1.5),
                    relay_capacity: int | None = None) -> RoundProblem:
    """A RoundProblem drawn from the network model of docs/network-model.md; the same seed gives the same instance.

    Devices are split as evenly as possible over the edges; each edge's band is bandwidth_per_device_hz
    times its device count (1 MHz per device: the prototype's 4 MHz for 4 devices). Each device is eligible
    for each module with probability `eligibility` (at least one); its memory holds memory_fraction (drawn
    uniformly in the range) of its eligible modules' memory, but always its largest eligible module.
    """
    if num_devices < 1 or num_edges < 1 or num_edges > num_devices:
        raise ValueError(f"num_devices={num_devices}, num_edges={num_edges}: need 1 <= num_edges <= num_devices")
    if not 1 <= num_modules <= 64:
        raise ValueError(f"num_modules={num_modules}: must be in 1..64")
    rng = np.random.default_rng(seed)
    beta0, alpha = 10 ** (-30 / 10), 3.0
    n0 = 10 ** (-174 / 10) * 1e-3
    side = 5000.0 * max(1.0, np.sqrt(num_edges / 10))
    servers = _servers(rng, num_edges, side, 500.0)
    edge_of = np.repeat(np.arange(num_edges), np.diff(np.linspace(0, num_devices, num_edges + 1).round().astype(int)))
    pos = np.zeros((num_devices, 2))
    for e in range(num_edges):
        members = np.flatnonzero(edge_of == e)
        centre = _disc(rng, servers[e], 1000.0, 1)[0]
        pos[members] = _disc(rng, centre, 500.0, members.size)
    dist = np.maximum(np.hypot(*(pos - servers[edge_of]).T), 1.0)
    gain = beta0 * dist ** -alpha * rng.exponential(1.0, num_devices)
    names = tuple(_NAMES[k] if k < len(_NAMES) else f"expert/{k}" for k in range(num_modules))
    params = np.exp(rng.uniform(np.log(0.25e6), np.log(5e6), num_modules))  # 0.25 M .. 5 M parameters
    module_bytes = 4.0 * params
    module_memory = 3.0 * module_bytes  # weights + gradients + optimizer state
    cycles = 6.0 * params
    eligible = rng.uniform(size=(num_devices, num_modules)) < eligibility
    eligible[np.arange(num_devices), rng.integers(0, num_modules, num_devices)] = True
    need = eligible @ module_memory
    largest = np.max(np.where(eligible, module_memory, 0.0), axis=1)
    memory = np.maximum(need * rng.uniform(*memory_fraction, num_devices), largest)
    src, dst, rate = [], [], []
    for e in range(num_edges):
        members = np.flatnonzero(edge_of == e)
        if members.size < 2:
            continue
        d = np.hypot(*(pos[members, None, :] - pos[None, members, :]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        near = np.argsort(d, axis=1)[:, :min(d2d_neighbours, members.size - 1)]
        pairs = {(min(a, b), max(a, b)) for a in range(members.size) for b in near[a]}
        for a, b in sorted(pairs):
            g = beta0 * max(d[a, b], 1.0) ** -alpha * rng.exponential(1.0)  # reciprocal channel
            r = d2d_bandwidth_hz * np.log2(1 + 0.2 * g / (n0 * d2d_bandwidth_hz))
            for s, t in ((a, b), (b, a)):
                src.append(members[s])
                dst.append(members[t])
                rate.append(r)
    counts = np.bincount(edge_of, minlength=num_edges)
    return RoundProblem(
        device_ids=tuple(range(num_devices)), edge_ids=tuple(f"e{e}" for e in range(num_edges)), module_names=names,
        device_edge=edge_of, samples=rng.integers(50, 501, num_devices).astype(float),
        cpu_hz=rng.uniform(1e9, 2e9, num_devices), memory_bytes=memory, tx_power_w=np.ones(num_devices),
        uplink_gain=gain, d2d_power_w=np.full(num_devices, 0.2), eligible=eligible, module_bytes=module_bytes,
        module_memory_bytes=module_memory, module_cycles=cycles, edge_bandwidth_hz=bandwidth_per_device_hz * counts,
        d2d_src=np.array(src, dtype=int), d2d_dst=np.array(dst, dtype=int), d2d_rate_bps=np.array(rate),
        noise_w_per_hz=n0, gamma=gamma, lam=lam, relay_aggregates=relay_aggregates, kappa=1e-28,
        relay_capacity=relay_capacity,
    )
