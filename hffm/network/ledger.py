"""Per-round latency and energy, charged from what the round loop actually sent.

``charge_round`` runs one edge round's timeline (``timeline.py``: compute, D2D steps, relay hops,
uplinks, cloud, downlink), stage by stage, over the ``Traffic`` the round sent; ``uplink_queue`` runs
the stages before the uplinks alone, for a planner that needs to know when each uploader is ready, and
``uplink_ends`` the timeline up to the edge, for a deadline.

Round latency is the slowest path through this timeline; its ``latency/*`` breakdown splits that
critical path by link kind, so the parts sum to the total. Energy sums every computation and every
transfer; it is split by link kind (``energy/compute|d2d|uplink|backhaul|downlink``) and by the tier
that spends it (``energy/device|edge|cloud``). Receiving costs no energy.

``charge_star`` is the paper's star baseline: each device sends its model straight to
the cloud over its own fixed backhaul-like link (latency + 8 bytes / backhaul rate, devices in
parallel, charged at backhaul power to the device), with no wireless hop, no edge and no D2D; the
way back is ``cloud_to_device_bytes`` over the same links, charged to the cloud.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hffm.network.channel import ChannelState
from hffm.network.config import NetworkConfig
from hffm.network.cost import CostBook, D2DTransfer, DeviceUpload, RoundCost, TimePoint, latest
from hffm.network.timeline import (
    Traffic,
    UplinkQueue,
    backhaul_transfer,
    check_uploads,
    cloud_stage,
    compute_stage,
    d2d_stage,
    downlink_stage,
    relay_stage,
    uplink_seconds,
    uplink_stage,
)
from hffm.network.topology import Topology

__all__ = ["D2DTransfer", "DeviceUpload", "RoundCost", "Traffic", "UplinkQueue", "charge_round", "charge_star",
           "uplink_ends", "uplink_queue"]


def charge_round(
    net: NetworkConfig,
    topology: Topology,
    channel: ChannelState,
    device_cpu_hz: np.ndarray,
    traffic: Traffic,
    uplink_bandwidth_hz: np.ndarray | None = None,
    uplink_power_w: np.ndarray | None = None,
) -> RoundCost:
    """Charge one hierarchical round, stage by stage (the timeline: ``timeline.py``).

    device_cpu_hz: [N] CPU frequency per device (the drawn one, or the plan's where it chose one).
    uplink_bandwidth_hz: [N] band per device (the plan's; only uploaders use theirs, and each edge's
    total must fit edge_bandwidth_hz); None: the channel config's fixed per-device band if set, else
    an equal share of edge_bandwidth_hz among the edge's uploaders.
    uplink_power_w: [N] uplink transmit power per device (the plan's), for the rate and the energy;
    None: the channel config's device_tx_power_w for rates and uplink_energy_power_w for energy.
    Refused with device_energy_power_w set (a fixed energy power would ignore the power sent).
    """
    book = CostBook(topology.num_devices)
    queue = uplink_queue(net, topology, channel, device_cpu_hz, traffic, book)
    at_edge = uplink_stage(net, topology, channel, queue, uplink_bandwidth_hz, book, uplink_power_w, traffic.late,
                           traffic.deadline_s)
    back = cloud_stage(net, traffic, at_edge, book)
    end = downlink_stage(net, traffic, back, book)
    extra = {"count/uploads": float(len(traffic.uploads)),
             "count/relayed": float(sum(u.relay != u.device for u in traffic.uploads)),
             "count/uploaders": float(len(queue.uploaders))}
    return book.cost(latest(end), extra)


def charge_star(
    net: NetworkConfig,
    topology: Topology,
    device_cpu_hz: np.ndarray,
    uploads: Sequence[DeviceUpload],
    cloud_to_device_bytes: np.ndarray | float | None = None,
    late: frozenset[int] = frozenset(),
    deadline_s: float | None = None,
) -> RoundCost:
    """The star baseline: every device -> cloud over its own fixed link, and back (module docstring). A ``late``
    device's upload is charged in full, but the cloud stops waiting for it at ``deadline_s``."""
    ch, n = net.channel, topology.num_devices
    book = CostBook(n)
    by_dev = check_uploads(uploads, n)
    ready = compute_stage(net, device_cpu_hz, by_dev, book)
    arrivals = []
    for i, u in by_dev.items():
        if int(u.relay) != i:
            raise ValueError(f"star: device {i} relays through {u.relay}; star uploads are direct")
        nbytes, dt = backhaul_transfer(net, float(u.payload_bytes))
        if nbytes <= 0:
            continue
        book.charge("backhaul", "device", ch.backhaul_power_w * dt, nbytes, device=i)
        arrival = ready[i].plus("backhaul", dt)
        if i in late and deadline_s is not None and arrival.t > deadline_s:
            arrival = TimePoint(deadline_s, tuple(p * deadline_s / arrival.t for p in arrival.parts))
        arrivals.append(arrival)
    end = latest(arrivals)
    if ch.charge_downlink and cloud_to_device_bytes is not None:
        down = np.broadcast_to(np.asarray(cloud_to_device_bytes, dtype=float), (n,))
        if not np.all(np.isfinite(down)) or np.any(down < 0):
            raise ValueError(f"cloud_to_device_bytes must be finite bytes >= 0, one per device (shape [{n}])")
        worst = 0.0
        for k in np.flatnonzero(down > 0):
            nbytes, dt = backhaul_transfer(net, float(down[k]))
            book.charge("backhaul", "cloud", ch.backhaul_power_w * dt, nbytes)
            worst = max(worst, dt)
        end = end.plus("backhaul", worst)
    extra = {"count/uploads": float(len(by_dev)), "count/relayed": 0.0, "count/uploaders": float(len(arrivals))}
    return book.cost(end, extra)


def uplink_queue(
    net: NetworkConfig,
    topology: Topology,
    channel: ChannelState,
    device_cpu_hz: np.ndarray,
    traffic: Traffic,
    book: CostBook | None = None,
) -> UplinkQueue:
    """Stages before the uplinks: compute, D2D steps, relay hops. A planner calls it to learn when
    each uploader is ready and what it sends; ``charge_round`` to charge them into ``book``."""
    n = topology.num_devices
    if channel.num_devices != n:
        raise ValueError(f"channel has {channel.num_devices} devices but the topology has {n}")
    book = CostBook(n) if book is None else book
    by_dev = check_uploads(traffic.uploads, n)
    ready = compute_stage(net, device_cpu_hz, by_dev, book)
    d2d_stage(net, topology, channel, traffic.d2d, ready, book)
    return relay_stage(net, topology, channel, traffic, by_dev, ready, book)


def uplink_ends(
    net: NetworkConfig,
    topology: Topology,
    channel: ChannelState,
    device_cpu_hz: np.ndarray,
    traffic: Traffic,
    uplink_bandwidth_hz: np.ndarray | None = None,
    uplink_power_w: np.ndarray | None = None,
) -> dict[int, float]:
    """Uploader -> when its uplink ends (s from the round's start): the timeline ``charge_round``
    charges (same arguments), up to the edge (a deadline checks it)."""
    queue = uplink_queue(net, topology, channel, device_cpu_hz, traffic)
    seconds = uplink_seconds(net, topology, channel, queue, uplink_bandwidth_hz, uplink_power_w)
    return {j: queue.start[j].t + seconds[j] for j in queue.uploaders}
