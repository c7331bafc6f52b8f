"""The round loop's fault steps, in the order it calls them (all no-ops when faults are off).

1. ``edges_this_round``: edge outages, before the round is planned: a device of a down edge re-attaches
   to the nearest edge that is up (``faults.reattach``; it keeps its D2D links to old cluster mates that moved
   to the same edge) or skips the round.
2. ``round_faults``: after the plan, the seeded draws (dropouts, stragglers, failed relays), the plan
   rewired around the devices that fail or moved (their relay clients upload directly), and the
   deadline: who would finish after ``federation.deadline_s`` (or the round's ``deadline_quantile`` of arrivals)
   on the ledger's own timeline.
3. ``send``: before screening, silent devices' updates vanish and attackers' are poisoned.

What happened goes into the round's ``FaultRecord``; the ledger charges it from there.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import torch

from hffm.federation.aggregate import ModuleUpdate, StateDict
from hffm.federation.attacks import floating_delta
from hffm.federation.charging import upload_ends
from hffm.federation.config import FederationConfig
from hffm.federation.faults import (
    FaultsConfig,
    attack_state,
    attack_strength,
    draw_outages,
    draw_round_faults,
    reattach,
)
from hffm.federation.policy import Mode, TierPolicy
from hffm.federation.records import FaultRecord, Plan
from hffm.federation.world import World
from hffm.network.channel import ChannelState, path_gain
from hffm.network.topology import Topology


@dataclasses.dataclass(frozen=True, eq=False)
class RoundNetwork:
    """The round's view of the network: devices' edges after outages (-1: skips), with the topology and
    channel re-attached devices really use (their uplink to the new edge; D2D links only with cluster mates
    that re-attached to the same edge)."""

    edge: np.ndarray
    topology: Topology
    channel: ChannelState

    def keep(self, participants: Sequence[int]) -> tuple[list[int], tuple[int, ...]]:
        """(participants that have an edge this round, the stranded ones)."""
        return ([d for d in participants if self.edge[d] >= 0],
                tuple(d for d in participants if self.edge[d] < 0))


def edges_this_round(
    world: World, channel: ChannelState, faults: FaultsConfig, seed: int, round_index: int, policy: TierPolicy
) -> RoundNetwork:
    """Step 1: each device's edge this round (outages only matter with edges, in hierarchical mode)."""
    topo = world.topology
    if policy.mode != Mode.hierarchical or faults.edge_outage <= 0:
        return RoundNetwork(np.asarray(topo.device_edge), topo, channel)
    down = draw_outages(faults, seed, round_index, topo.num_edges)
    distance = np.linalg.norm(topo.device_pos[:, None, :] - topo.edge_pos[None, :, :], axis=2)
    edge = reattach(topo.device_edge, distance, down, faults.reattach)
    moved = np.flatnonzero((edge >= 0) & (edge != topo.device_edge))
    if moved.size == 0:
        return RoundNetwork(edge, topo, channel)
    ch = world.network.channel
    new_edge = np.array(topo.device_edge)
    new_edge[moved] = edge[moved]
    regrouped, kept = topo.regrouped(new_edge)  # D2D stays inside the round's clusters
    gain = np.array(channel.uplink_gain)
    old_d, new_d = distance[moved, topo.device_edge[moved]], distance[moved, edge[moved]]
    gain[moved] *= (path_gain(new_d, ch.beta0_db, ch.path_loss_exponent, ch.d0_m)
                    / path_gain(old_d, ch.beta0_db, ch.path_loss_exponent, ch.d0_m))  # same fading, new distance
    return RoundNetwork(edge, regrouped, channel.regrouped(regrouped, kept, gain))


def round_faults(
    world: World, net: RoundNetwork, plan: Plan, cfg: FederationConfig, faults: FaultsConfig, policy: TierPolicy,
    seed: int, round_index: int, stranded: tuple[int, ...], attackers: frozenset[int],
) -> tuple[Plan, FaultRecord]:
    """Step 2: this round's draws, the plan rewired around them, and the deadline's cut."""
    topo = world.topology
    moved = {d: int(net.edge[d]) for d in plan.participants if net.edge[d] != topo.device_edge[d]}
    relays = [r for d, r in plan.relay.items() if r != d] + [p for d, p in plan.parent.items() if p != d]
    drawn = draw_round_faults(faults, seed, round_index, plan.participants, relays, topo.num_edges)
    gone = drawn.dropped | drawn.failed_relays
    plan = _rewire(plan, gone | set(moved), net.topology, world.network.channel.edge_bandwidth_hz, gone)
    late: tuple[int, ...] = ()
    deadline = cfg.deadline_s
    if cfg.deadline_s is not None or cfg.deadline_quantile is not None:
        ends = upload_ends(world, net.topology, net.channel, plan, cfg, policy, gone, drawn.slowdown)
        if cfg.deadline_quantile is not None:
            deadline = round_deadline(ends, cfg.deadline_quantile)
        if deadline is not None:
            late = tuple(sorted(d for d, end in ends.items() if end > deadline))
    sending = set(plan.participants) - gone - set(late)
    return plan, FaultRecord(drawn, moved, stranded, late, tuple(sorted(attackers & sending)), deadline)


def round_deadline(ends: Mapping[int, float], quantile: float) -> float | None:
    """``federation.deadline_quantile``: the time (s into the round) by which ``quantile`` of the round's updates
    arrive (``ends``: device -> its arrival on the ledger's timeline); None when nothing is sent."""
    if not ends:
        return None
    return float(np.quantile(np.fromiter(ends.values(), dtype=float), quantile))


def _rewire(plan: Plan, cut: Collection[int], topology: Topology, budget_hz: float,
            silent: Collection[int] = ()) -> Plan:
    """No D2D hop through or from a device in ``cut`` (failed, dropped or re-attached): its clients and
    children upload directly. A device that now uploads itself with no planned band gets an equal share of its
    edge's budget (the others' bands shrink to make room); bands are scaled down where an edge is overfilled.
    ``silent``: devices that send nothing this round (they get no band)."""
    if not cut:
        return plan
    relay = {d: d if d in cut or r in cut else r for d, r in plan.relay.items()}
    parent = {d: d if d in cut or p in cut else p for d, p in plan.parent.items()}
    band = plan.bandwidth_hz
    if band is not None:
        band = np.array(band, dtype=float)
        newly = {d for d in relay if relay[d] == d and plan.relay.get(d, d) != d}
        newly |= {d for d in parent if parent[d] == d and plan.parent.get(d, d) != d}
        newly |= {d for d in cut if d in plan.participants}
        for e in range(topology.num_edges):
            mine = topology.device_edge == e
            starved = [d for d in sorted(newly - set(silent)) if mine[d] and not band[d] > 0]
            if starved:
                uploaders = int(np.count_nonzero(band[mine] > 0)) + len(starved)
                share = budget_hz / uploaders
                others = float(band[mine].sum())
                if others > 0:
                    band[mine] *= min(1.0, (budget_hz - share * len(starved)) / others)
                band[starved] = share
            total = float(band[mine].sum())
            if total > budget_hz:
                band[mine] *= budget_hz / total
    return dataclasses.replace(plan, relay=relay, parent=parent, bandwidth_hz=band)


def send(
    updates: list[ModuleUpdate], record: FaultRecord, received: dict[str, StateDict], faults: FaultsConfig,
    seed: int, round_index: int,
) -> list[ModuleUpdate]:
    """Step 3: what leaves the devices: nothing from silent ones, poison from attackers (``received``: the
    edge's module states they started from; omniscient attacks see the honest updates of the same module)."""
    silent, attackers = record.silent, set(record.attackers)
    strength = attack_strength(faults)
    honest: dict[str, list[dict[str, torch.Tensor]]] = {}
    if attackers:
        for u in updates:
            if u.node not in silent and u.node not in attackers:
                honest.setdefault(u.module, []).append(floating_delta(u.state, received[u.module]))
    out = []
    for u in updates:
        if u.node in silent:
            continue
        if u.node in attackers:
            gen = torch.Generator().manual_seed(_attack_seed(seed, round_index, u.node, u.module))
            u = ModuleUpdate(u.node, u.module, attack_state(faults.attack, u.state, received[u.module], strength,
                                                            gen, honest.get(u.module, ())), u.num_samples)
        out.append(u)
    return out


def _attack_seed(seed: int, round_index: int, device: int, module: str) -> int:
    tag = zlib.crc32(module.encode())
    return int(np.random.SeedSequence([seed, 0xFA17, 2, round_index, device, tag]).generate_state(1)[0])
