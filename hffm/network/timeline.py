"""One edge round's timeline, stage by stage: what the ledger (``ledger.py``) charges.

1. Device i trains: compute time tau_i = cycles_i / f_i, energy kappa * cycles_i * f_i^2.
2. Optional D2D steps (``D2DTransfer``: tree aggregation, gossip, fetches) inside a cluster, after
   its participants finished computing. Steps run one after another; within a step different senders
   transmit in parallel on orthogonal D2D channels, while one sender's transfers are sequential. A
   participant is ready to upload once its cluster's D2D steps are over.
3. A relayed device i sends its payload P_i to relay j over D2D, arriving at ready_i + 8 P_i / r_ij
   (links into one relay are orthogonal, hence parallel). Relay j starts its uplink when its own
   work and its last input are done, and sends U_j = its own payload plus every payload it received
   (or, with ``relay_aggregates``, one aggregated payload), taking 8 U_j / R_j(b_j) with
   R_j(b) = b log2(1 + p_j g_j / (N0 b)); f_i and p_j are the plan's when it set them (else the drawn
   frequency and the config's device_tx_power_w), and uplink energy is p_j x time.
4. The edge is ready when its last uplink arrived; an uplink in ``Traffic.late`` (it misses the deadline) is
   charged in full, but the edge waits for it only until ``Traffic.deadline_s``.
5. In a cloud round each edge then sends to the cloud over the backhaul (latency + 8 bytes / rate,
   edges in parallel), the cloud waits for all edges, and sends back down.
6. Finally each edge broadcasts to its cluster at the downlink rate.

Each step is one function (``compute_stage``, ``d2d_stage``, ``relay_stage``, ``uplink_stage``,
``cloud_stage``, ``downlink_stage``): each charges its energy and bytes into a ``CostBook`` and hands on
when each device (or edge) is ready for the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hffm.network.channel import ChannelState
from hffm.network.compute import compute_energy, compute_time
from hffm.network.config import NetworkConfig
from hffm.network.cost import CostBook, D2DTransfer, DeviceUpload, TimePoint, latest
from hffm.network.topology import Topology


def _edge_array(name: str, value: np.ndarray | float | None, e: int) -> np.ndarray:
    arr = np.zeros(e) if value is None else np.broadcast_to(np.asarray(value, dtype=float), (e,)).copy()
    if arr.shape != (e,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite bytes >= 0, one per edge (shape [{e}])")
    return arr


def _check_device(name: str, i: int, n: int) -> int:
    if not isinstance(i, int | np.integer) or not 0 <= int(i) < n:
        raise ValueError(f"{name} = {i!r} is not a device index in [0, {n})")
    return int(i)


def _check_bytes(name: str, b: float) -> float:
    if not np.isfinite(b) or b < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {b!r}")
    return float(b)


@dataclass(frozen=True, eq=False)
class Traffic:
    """What one round sent, in bytes: the input of the ledger.

    uploads: one DeviceUpload per device that trained (relay == device: a direct uplink).
    d2d: D2D transfers in steps (tree aggregation, gossip, fetches), charged before the uplinks.
    relay_aggregates: a relay merges what it received with its own update into one payload, of size
    relay_payload_bytes[relay] if given, else the largest of its inputs (exact when they carry the
    same modules). Edge arrays are [E] bytes (or a scalar for all edges); backhaul bytes must be 0
    unless cloud_round. late: uploaders whose uplink misses ``deadline_s`` (s into the round): they spend
    their uplink's energy and band, but their edge stops waiting at the deadline.
    """

    uploads: Sequence[DeviceUpload]
    d2d: Sequence[D2DTransfer] = ()
    relay_aggregates: bool = False
    relay_payload_bytes: Mapping[int, int] | None = None
    cloud_round: bool = False
    edge_to_cloud_bytes: np.ndarray | float | None = None
    cloud_to_edge_bytes: np.ndarray | float | None = None
    edge_to_device_bytes: np.ndarray | float | None = None
    late: frozenset[int] = frozenset()
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        if self.late and (self.deadline_s is None or not np.isfinite(self.deadline_s) or self.deadline_s < 0):
            raise ValueError(f"Traffic.late names uploaders {sorted(self.late)} that miss a deadline, but "
                             f"deadline_s = {self.deadline_s!r}: give the round's deadline (s >= 0)")


@dataclass(frozen=True)
class UplinkQueue:
    """Who uploads, when each can start (its own work and every input done) and how many bytes."""

    uploaders: list[int]
    start: dict[int, TimePoint]
    nbytes: dict[int, float]


def charged_bytes(net: NetworkConfig, b: float) -> float:
    """Bytes charged for a payload of b bytes (the prototype preset charges a fixed model size)."""
    fixed = net.fixed_payload_bytes
    return float(fixed) if fixed is not None and b > 0 else b


def backhaul_transfer(net: NetworkConfig, raw_bytes: float) -> tuple[float, float]:
    """(bytes charged, seconds) of one transfer over a backhaul link (edge <-> cloud, or a star device's
    fixed link to the cloud): the fixed latency plus the bits over the backhaul rate."""
    nbytes = charged_bytes(net, raw_bytes)
    return nbytes, net.channel.backhaul_latency_s + 8.0 * nbytes / net.channel.backhaul_rate_bps


def check_uploads(uploads: Sequence[DeviceUpload], n: int) -> dict[int, DeviceUpload]:
    by_dev: dict[int, DeviceUpload] = {}
    for u in uploads:
        i = _check_device("DeviceUpload.device", u.device, n)
        if i in by_dev:
            raise ValueError(f"device {i} appears in two DeviceUploads; merge its payloads into one")
        _check_device(f"DeviceUpload.relay of device {i}", u.relay, n)
        _check_bytes(f"DeviceUpload.payload_bytes of device {i}", u.payload_bytes)
        if not np.isfinite(u.compute_cycles) or u.compute_cycles < 0:
            raise ValueError(f"DeviceUpload.compute_cycles of device {i} must be finite and >= 0")
        by_dev[i] = u
    return by_dev


def compute_stage(
    net: NetworkConfig, device_cpu_hz: np.ndarray, by_dev: Mapping[int, DeviceUpload], book: CostBook
) -> list[TimePoint]:
    """Stage 1: every device's local training; returns when each device is done."""
    n, comp = book.device.shape[0], net.compute
    cpu = np.asarray(device_cpu_hz, dtype=float)
    if cpu.shape != (n,) or np.any(~np.isfinite(cpu)) or np.any(cpu <= 0):
        raise ValueError(f"device_cpu_hz must hold {n} finite frequencies > 0 (draw_cpu_hz), got shape {cpu.shape}")
    ready = [TimePoint() for _ in range(n)]
    for i, u in by_dev.items():
        if comp.enabled and u.compute_cycles > 0:
            book.charge("compute", "device", float(compute_energy(u.compute_cycles, cpu[i], comp.kappa)), device=i)
            ready[i] = ready[i].plus("compute", float(compute_time(u.compute_cycles, cpu[i])))
    return ready


def d2d_stage(
    net: NetworkConfig,
    topology: Topology,
    channel: ChannelState,
    transfers: Sequence[D2DTransfer],
    ready: list[TimePoint],
    book: CostBook,
) -> None:
    """Stage 2, D2D steps per cluster (tree aggregation, gossip, fetches): start when the cluster's
    participants are done computing; in a step, senders run in parallel and each sender's transfers
    back to back; the cluster's participants then wait for the end."""
    if not transfers:
        return
    n = topology.num_devices
    clusters: dict[int, list[D2DTransfer]] = {}
    for g in transfers:
        s = _check_device("D2DTransfer.src", g.src, n)
        d = _check_device("D2DTransfer.dst", g.dst, n)
        _check_bytes(f"D2DTransfer.payload_bytes ({s} -> {d})", g.payload_bytes)
        if not isinstance(g.step, int | np.integer) or g.step < 0:
            raise ValueError(f"D2DTransfer.step must be an int >= 0, got {g.step!r}")
        if s == d or not topology.linked(s, d):
            raise ValueError(f"D2D transfer {s} -> {d} is not a D2D link (src and dst must be linked neighbours)")
        if channel.d2d_rate_of(s, d) <= 0:
            raise ValueError(f"D2D link {s} -> {d} has rate 0 this round")
        clusters.setdefault(int(topology.device_edge[s]), []).append(g)
    for transfers in clusters.values():
        members = sorted({int(g.src) for g in transfers} | {int(g.dst) for g in transfers})
        t = latest([ready[i] for i in members])
        for step in sorted({int(g.step) for g in transfers}):
            busy: dict[int, float] = {}
            for g in (g for g in transfers if g.step == step):
                nbytes = charged_bytes(net, float(g.payload_bytes))
                dt = 8.0 * nbytes / channel.d2d_rate_of(int(g.src), int(g.dst))
                busy[int(g.src)] = busy.get(int(g.src), 0.0) + dt
                book.charge("d2d", "device", net.channel.d2d_energy_power * dt, nbytes, device=int(g.src))
            t = t.plus("d2d", max(busy.values()))
        for i in members:
            ready[i] = t


def relay_stage(
    net: NetworkConfig,
    topology: Topology,
    channel: ChannelState,
    traffic: Traffic,
    by_dev: Mapping[int, DeviceUpload],
    ready: list[TimePoint],
    book: CostBook,
) -> UplinkQueue:
    """Stage 3: one-hop D2D relays; then what each uploader sends and when it can start."""
    inputs: dict[int, list[TimePoint]] = {}
    received: dict[int, list[float]] = {}
    for i, u in by_dev.items():
        j = int(u.relay)
        if j == i:
            continue
        if not topology.linked(i, j):
            raise ValueError(
                f"device {i} relays through device {j}, which is not its D2D neighbour "
                f"(neighbours: {topology.neighbours(i).tolist()}); relays must be linked devices of the same cluster"
            )
        if j in by_dev and int(by_dev[j].relay) != j:
            raise ValueError(f"device {i} relays through device {j}, which itself relays: relays must upload directly")
        rate = channel.d2d_rate_of(i, j)
        if rate <= 0:
            raise ValueError(f"D2D link {i} -> {j} has rate 0 this round")
        nbytes = charged_bytes(net, float(u.payload_bytes))
        dt = 8.0 * nbytes / rate
        book.charge("d2d", "device", net.channel.d2d_energy_power * dt, nbytes, device=i)
        inputs.setdefault(j, []).append(ready[i].plus("d2d", dt))
        received.setdefault(j, []).append(nbytes)
    uploaders = sorted({i for i, u in by_dev.items() if u.relay == i} | set(inputs))
    up_bytes = {}
    for j in uploaders:
        own = [charged_bytes(net, float(by_dev[j].payload_bytes))] if j in by_dev else []
        parts = own + received.get(j, [])
        given = None if traffic.relay_payload_bytes is None else traffic.relay_payload_bytes.get(j)
        if traffic.relay_aggregates and j in inputs and given is not None:
            up_bytes[j] = charged_bytes(net, _check_bytes(f"relay_payload_bytes[{j}]", given))
        elif traffic.relay_aggregates and j in inputs:
            up_bytes[j] = max(parts)
        else:
            up_bytes[j] = float(sum(parts))
    uploaders = [j for j in uploaders if up_bytes[j] > 0]  # nothing to send: no uplink, no band
    start = {j: latest([ready[j], *inputs.get(j, [])]) for j in uploaders}
    return UplinkQueue(uploaders, start, {j: up_bytes[j] for j in uploaders})


def _uplink_bandwidth(
    net: NetworkConfig, topology: Topology, uploaders: list[int], given: np.ndarray | None
) -> np.ndarray:
    """[N] band per device: the plan's (checked against each edge's budget) or the default share."""
    n, budget = topology.num_devices, net.channel.edge_bandwidth_hz
    per_edge = {k: [j for j in uploaders if topology.device_edge[j] == k] for k in range(topology.num_edges)}
    band = np.zeros(n)
    if given is None:
        fixed = net.channel.uplink_bandwidth_per_device_hz
        for k, devs in per_edge.items():
            if not devs:
                continue
            if fixed is not None and len(devs) * fixed > budget * (1 + 1e-9):
                raise ValueError(
                    f"edge {k}: {len(devs)} uploaders x uplink_bandwidth_per_device_hz = {fixed:g} Hz exceed "
                    f"edge_bandwidth_hz = {budget:g}; pass uplink_bandwidth_hz or raise the budget"
                )
            band[devs] = fixed if fixed is not None else budget / len(devs)
        return band
    band = np.asarray(given, dtype=float)
    if band.shape != (n,) or not np.all(np.isfinite(band)) or np.any(band < 0):
        raise ValueError(f"uplink_bandwidth_hz must hold {n} finite values >= 0 (Hz per device)")
    for j in uploaders:
        if band[j] <= 0:
            raise ValueError(f"device {j} uploads but uplink_bandwidth_hz[{j}] = {band[j]:g}: give it a band > 0")
    for k in range(topology.num_edges):
        total = float(band[topology.device_edge == k].sum())
        if total > budget * (1 + 1e-9):
            raise ValueError(
                f"uplink_bandwidth_hz of edge {k}'s devices sums to {total:g} Hz, over its "
                f"edge_bandwidth_hz budget of {budget:g} Hz"
            )
    return band


def _uplink_power(net: NetworkConfig, n: int, given: np.ndarray | None) -> np.ndarray | None:
    """[N] planned uplink power per device (checked), or None for the channel config's fixed power."""
    if given is None:
        return None
    if net.channel.device_energy_power_w is not None:
        raise ValueError(
            f"uplink_power_w (planned uplink powers) cannot be combined with ChannelConfig.device_energy_power_w = "
            f"{net.channel.device_energy_power_w:g} W, a fixed power charged for uplink energy whatever is sent; "
            "unset device_energy_power_w (energy at the power sent) or pass no uplink_power_w")
    power = np.asarray(given, dtype=float)
    if power.shape != (n,) or not np.all(np.isfinite(power)) or np.any(power <= 0):
        raise ValueError(f"uplink_power_w must hold {n} finite powers > 0 (W per device), got shape {power.shape}")
    return power


def uplink_seconds(
    net: NetworkConfig, topology: Topology, channel: ChannelState, queue: UplinkQueue, given: np.ndarray | None,
    power: np.ndarray | None = None,
) -> dict[int, float]:
    """Uploader -> its uplink's duration at the planned (or default) band and power."""
    band = _uplink_bandwidth(net, topology, queue.uploaders, given)
    rates = channel.uplink_rate_at(band, _uplink_power(net, topology.num_devices, power))
    out = {}
    for j in queue.uploaders:
        if rates[j] <= 0:
            raise ValueError(f"device {j} uploads but its uplink rate is 0 (bandwidth {band[j]:g} Hz)")
        out[j] = 8.0 * queue.nbytes[j] / float(rates[j])
    return out


def uplink_stage(
    net: NetworkConfig,
    topology: Topology,
    channel: ChannelState,
    queue: UplinkQueue,
    given: np.ndarray | None,
    book: CostBook,
    power: np.ndarray | None = None,
    late: frozenset[int] = frozenset(),
    deadline_s: float | None = None,
) -> list[TimePoint]:
    """Stage 4: FDMA uplinks at the planned (or default) band and power (energy: the power sent, or the
    config's fixed uplink energy power); returns when each edge has everything it waits for (a ``late``
    uploader is charged in full, but its edge gives up on it at ``deadline_s``)."""
    seconds = uplink_seconds(net, topology, channel, queue, given, power)
    edge_ready: list[list[TimePoint]] = [[] for _ in range(topology.num_edges)]
    for j in queue.uploaders:
        dt = seconds[j]
        watts = net.channel.uplink_energy_power_w if power is None else float(power[j])
        book.charge("uplink", "device", watts * dt, queue.nbytes[j], device=j)
        arrival = queue.start[j].plus("uplink", dt)
        if j in late and deadline_s is not None and arrival.t > deadline_s:
            arrival = _cut_at(queue.start[j], deadline_s)
        edge_ready[int(topology.device_edge[j])].append(arrival)
    return [latest(p) for p in edge_ready]


def _cut_at(start: TimePoint, deadline_s: float) -> TimePoint:
    """When an edge stops waiting for an uplink that started at ``start``: the deadline, reached on the uplink
    (or, for one that had not started by then, on the path that delayed it, scaled to end at the deadline)."""
    if start.t <= deadline_s:
        return start.plus("uplink", deadline_s - start.t)
    scale = deadline_s / start.t
    return TimePoint(deadline_s, tuple(p * scale for p in start.parts))


def cloud_stage(net: NetworkConfig, traffic: Traffic, at_edge: list[TimePoint], book: CostBook) -> list[TimePoint]:
    """Stage 5: in a cloud round, edges -> cloud over the backhaul, the cloud waits for all, and back."""
    ch, e = net.channel, len(at_edge)
    e2c = _edge_array("edge_to_cloud_bytes", traffic.edge_to_cloud_bytes, e)
    c2e = _edge_array("cloud_to_edge_bytes", traffic.cloud_to_edge_bytes, e)
    if not traffic.cloud_round:
        if e2c.any() or c2e.any():
            raise ValueError("edge_to_cloud_bytes / cloud_to_edge_bytes are nonzero but cloud_round=False; "
                             "pass zeros (or None) on edge-only rounds")
        return at_edge
    to_cloud = []
    for k in range(e):
        if e2c[k] > 0:
            nbytes, dt = backhaul_transfer(net, e2c[k])
            book.charge("backhaul", "edge", ch.backhaul_power_w * dt, nbytes)
            to_cloud.append(at_edge[k].plus("backhaul", dt))
    at_cloud = latest(to_cloud)
    back = []
    for k in range(e):
        p = latest([at_edge[k], at_cloud])
        if ch.charge_downlink and c2e[k] > 0:
            nbytes, dt = backhaul_transfer(net, c2e[k])
            book.charge("backhaul", "cloud", ch.backhaul_power_w * dt, nbytes)
            p = p.plus("backhaul", dt)
        back.append(p)
    return back


def downlink_stage(net: NetworkConfig, traffic: Traffic, back: list[TimePoint], book: CostBook) -> list[TimePoint]:
    """Stage 6: each edge broadcasts the aggregated modules to its cluster."""
    ch = net.channel
    e2d = _edge_array("edge_to_device_bytes", traffic.edge_to_device_bytes, len(back))
    if not ch.charge_downlink:
        return back
    done = []
    for k, p in enumerate(back):
        if e2d[k] > 0:
            nbytes = charged_bytes(net, e2d[k])
            dt = 8.0 * nbytes / ch.downlink_rate_bps
            book.charge("downlink", "edge", ch.edge_tx_power_w * dt, nbytes)
            p = p.plus("downlink", dt)
        done.append(p)
    return done
