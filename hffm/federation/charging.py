"""Charging a round: the bytes each device really sent, over the route it took, at the plan's band, power and
frequency (the ledger), and the timeline a deadline reads before the round runs (``upload_ends``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from hffm.federation.config import FederationConfig
from hffm.federation.d2d_modes import mode_of
from hffm.federation.policy import TierPolicy
from hffm.federation.records import Plan, RoundOutcome, Route, Transfer
from hffm.federation.traffic import eligible_modules, holders_of, round_links, traffic_of
from hffm.federation.world import World
from hffm.network.channel import ChannelState
from hffm.network.ledger import RoundCost, charge_round, charge_star, uplink_ends
from hffm.network.topology import Topology


def charge_outcome(
    world: World, channel: ChannelState, plan: Plan, outcome: RoundOutcome, cfg: FederationConfig, policy: TierPolicy,
    topology: Topology | None = None,
) -> RoundCost:
    """Charge the bytes each device really sent, over the route it used, at the planned bandwidth, uplink power
    and CPU frequency (where the plan set them), with stragglers' compute slowed. ``topology`` / ``channel``: the
    round's (devices re-attached by an edge outage)."""
    topology = world.topology if topology is None else topology
    trained = {r.device: r.modules for r in outcome.results}
    samples = {r.device: r.samples for r in outcome.results}
    slowdown = outcome.faults.drawn.slowdown
    late, deadline = frozenset(outcome.faults.late), outcome.faults.deadline_s
    hops, hop_transfers = wasted_hops(wasted_updates(world, policy, outcome), plan, outcome.routes)
    if policy.star:
        uploads = traffic_of(world, cfg, trained, outcome.routes, (), slowdown=slowdown,
                             levels=plan.compression, samples=samples, wasted=hops).uploads
        return charge_star(world.network, topology, plan.device_cpu_hz(world.cpu_hz), uploads,
                           _star_return_bytes(world, trained), late, deadline)
    traffic = traffic_of(world, cfg, trained, outcome.routes, (*outcome.transfers, *hop_transfers),
                         outcome.cloud_round, outcome.edge_to_cloud_bytes, slowdown, topology, plan.compression,
                         samples, hops)
    traffic = dataclasses.replace(traffic, late=late if deadline is not None else frozenset(), deadline_s=deadline)
    return charge_round(world.network, topology, channel, plan.device_cpu_hz(world.cpu_hz), traffic, plan.bandwidth_hz,
                        plan.tx_power_w)


def wasted_updates(world: World, policy: TierPolicy, outcome: RoundOutcome) -> dict[int, tuple[str, ...]]:
    """Device -> the modules whose updates it sent but that never counted: a late device's every shared update
    (it was sent, and arrived after the deadline), those the screen rejected and those the defense dropped at the
    edge (they had to arrive to be judged). Dropped devices and failed relays vanish before uploading: nothing."""
    out: dict[int, list[str]] = {}
    late = set(outcome.faults.late)
    for r in outcome.results:
        if r.device in late:
            out.setdefault(r.device, []).extend(m for m in r.modules if policy.shared(world.bank.kind(m)))
    for rejection in (*outcome.rejected, *outcome.defended):
        out.setdefault(rejection.node, []).append(rejection.module)
    return {d: tuple(dict.fromkeys(ms)) for d, ms in sorted(out.items()) if ms}


def wasted_hops(
    wasted: Mapping[int, Sequence[str]], plan: Plan, routes: Sequence[Route]
) -> tuple[list[Route], list[Transfer]]:
    """Each wasted update's first hop, where it was judged and stopped: the device's own route when some of its
    updates counted; else its tree parent (a D2D transfer), else its relay (a D2D hop the relay does not
    forward when it aggregates), else its own uplink."""
    relay_of = {r.device: r.relay for r in routes}
    hops, transfers = [], []
    for device, modules in wasted.items():
        parent = plan.parent.get(device, device)
        if device not in relay_of and parent != device:
            transfers.append(Transfer(device, parent, tuple(modules), 0, "tree"))
        else:
            hops.append(Route(device, tuple(modules), relay_of.get(device, plan.relay.get(device, device))))
    return hops, transfers


def upload_ends(
    world: World, topology: Topology, channel: ChannelState, plan: Plan, cfg: FederationConfig, policy: TierPolicy,
    silent: frozenset[int], slowdown: Mapping[int, float],
) -> dict[int, float]:
    """Device -> when its update would reach its edge (s into the round): the end of the last uplink carrying it
    (its own, its relay's, its tree root's, its cluster's gossip uploads: the D2D mode's ``predict``), on the
    ledger's own timeline of the plan's traffic (``silent`` devices compute but send nothing)."""
    holders = {d: ms for d, ms in holders_of(world, policy, plan.placement).items() if d not in silent}
    predicted = mode_of(cfg.d2d).predict(holders, round_links(topology, channel, cfg, plan))
    traffic = traffic_of(world, cfg, plan.placement, predicted.routes, predicted.transfers, slowdown=slowdown,
                         topology=topology, levels=plan.compression)
    ends = uplink_ends(world.network, topology, channel, plan.device_cpu_hz(world.cpu_hz), traffic, plan.bandwidth_hz,
                       plan.tx_power_w)
    out = {}
    for d, carriers in predicted.carriers.items():
        arrived = [ends[c] for c in carriers if c in ends]
        if arrived:
            out[d] = max(arrived)
    return out


def _star_return_bytes(world: World, trained: Mapping[int, Sequence[str]]) -> np.ndarray:
    out = np.zeros(world.num_devices)
    for device in trained:
        out[device] = sum(world.module_bytes[m] for m in eligible_modules(world, device))
    return out
