"""Charging a round: the bytes each device really sent, over the route it took, at the plan's band, power and
frequency (the ledger), and the timeline a deadline reads before the round runs (``upload_ends``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hffm.federation.config import FederationConfig
from hffm.federation.d2d_modes import mode_of
from hffm.federation.policy import TierPolicy
from hffm.federation.records import Plan, RoundOutcome
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
    if policy.star:
        uploads = traffic_of(world, cfg, trained, outcome.routes, (), slowdown=slowdown,
                             levels=plan.compression, samples=samples).uploads
        return charge_star(world.network, topology, plan.device_cpu_hz(world.cpu_hz), uploads,
                           _star_return_bytes(world, trained))
    traffic = traffic_of(world, cfg, trained, outcome.routes, outcome.transfers, outcome.cloud_round,
                         outcome.edge_to_cloud_bytes, slowdown, topology, plan.compression, samples)
    return charge_round(world.network, topology, channel, plan.device_cpu_hz(world.cpu_hz), traffic, plan.bandwidth_hz,
                        plan.tx_power_w)


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
