"""The round's traffic as the network model sees it: who computes what, which bytes go over which link.

Planning (``planning``) predicts it from a plan, charging (``charging``) reads it from what happened; both
build it here, so the solver's prediction and the ledger's charge count the same bytes and cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from hffm.federation.compression import Codebook
from hffm.federation.config import FederationConfig
from hffm.federation.d2d import Links
from hffm.federation.policy import TierPolicy
from hffm.federation.records import Plan, Route, Transfer
from hffm.network.channel import ChannelState
from hffm.network.ledger import D2DTransfer, DeviceUpload, Traffic
from hffm.network.topology import Topology
from hffm.spec import rows_trained

if TYPE_CHECKING:
    from hffm.federation.world import World


def eligible_modules(world: World, device: int) -> list[str]:
    """The modules a device's modalities and tasks need: what it may be asked to train."""
    part = world.parts[device]
    return list(world.bank.required_modules(part.modalities, part.tasks))


def samples_per_round(world: World, cfg: FederationConfig, device: int) -> float:
    """The samples a device trains on in a round: ``local_steps`` mini-batches drawn from the rows it holds
    (fewer than ``batch_size`` x steps when it holds fewer). The engine reports the same count
    (``TrainResult.samples``); tests bind the two."""
    return float(rows_trained(len(world.train[device]), cfg.batch_size, cfg.local_steps))


def module_cycles(world: World, name: str) -> float:
    bank = world.bank
    return world.network.compute.cycles_per_sample(bank.kind(name), bank.num_params(name))


def holders_of(world: World, policy: TierPolicy, trained: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
    """Device -> the modules it trained that leave it (updates), for devices that have any."""
    out = {d: [m for m in ms if policy.shared(world.bank.kind(m))] for d, ms in trained.items()}
    return {d: ms for d, ms in out.items() if ms}


def wire_size(world: World, cfg: FederationConfig, levels: Mapping[int, str] | None = None
              ) -> Callable[[int, str], int]:
    """(device, module) -> the bytes that device's update of that module takes on the wire: the module's size
    through the device's codec (``federation.compression``; ``levels``: the plan's choice under auto)."""
    size = world.module_bytes
    codebook = cfg.codebook()
    if codebook.off:
        return lambda device, module: size[module]
    levels = levels or {}
    return lambda device, module: codec_bytes(world, codebook, module, levels.get(device))


def codec_bytes(world: World, codebook: Codebook, module: str, level: str | None = None) -> int:
    """One module's update through its codec, in bytes (cached on the world: shapes never change in a run)."""
    kind = world.bank.kind(module)
    codec = codebook.codec(kind, level)
    key = ("wire", codec.name, codebook.options, module)
    cache = world._views
    if key not in cache:
        state = world.bank.state_of([module])[module]
        cache[key] = codebook.module_wire_bytes(state, kind, level)
    return int(cache[key])


def round_links(topology: Topology, channel: ChannelState, cfg: FederationConfig, plan: Plan) -> Links:
    """What the round's D2D mode may use: the graph, this round's channel and the plan's relays and tree."""
    return Links(topology.adjacency, channel.uplink_gain, channel.rate_matrix(), plan.relay, plan.parent,
                 cfg.relay_aggregates, cfg.cons_rounds, topology.device_edge)


def traffic_of(
    world: World,
    cfg: FederationConfig,
    trained: Mapping[int, Sequence[str]],
    routes: Sequence[Route],
    transfers: Sequence[Transfer],
    cloud_round: bool = False,
    edge_to_cloud_bytes: np.ndarray | None = None,
    slowdown: Mapping[int, float] | None = None,
    topology: Topology | None = None,
    levels: Mapping[int, str] | None = None,
    samples: Mapping[int, float] | None = None,
    wasted: Sequence[Route] = (),
) -> Traffic:
    """The ledger's view of a round: who computed what (a straggler's compute takes ``slowdown`` x its
    cycles), and which bytes went over which link. An update is charged at its wire size (``wire_size``: through
    the device's codec, ``levels`` the plan's choice under auto); a D2D hop at its sender's codec; a fetched
    personal module and the downlink at full size (devices train from the exact edge state). ``samples``: device
    -> the samples it really trained on (the engine's count); None predicts them (``samples_per_round``).
    ``wasted``: updates sent that never counted (late, rejected by the screen, dropped by the defense), each
    charged to its device over its first hop (its route's when it has one) but carried no further (the hop that
    judged it keeps it: a relay that aggregates does not upload it)."""
    slowdown = slowdown or {}
    size = world.module_bytes
    wire = wire_size(world, cfg, levels)
    sent = {r.device: r for r in routes}
    lost = {r.device: r for r in wasted}
    uploads = []
    carried: dict[int, set[str]] = {}
    for device, modules in sorted(trained.items()):
        route = sent.get(device) or lost.get(device)
        payload = sent[device].modules if device in sent else ()
        spent = lost[device].modules if device in lost else ()
        relay = route.relay if route is not None else device
        rows = samples[device] if samples is not None else samples_per_round(world, cfg, device)
        cycles = rows * sum(module_cycles(world, m) for m in modules) * slowdown.get(device, 1.0)
        uploads.append(DeviceUpload(device, int(sum(wire(device, m) for m in (*payload, *spent))), relay, cycles))
        carried.setdefault(relay, set()).update(payload)
    return Traffic(
        uploads=uploads,
        d2d=[D2DTransfer(t.src, t.dst, int(sum(size[m] if t.kind == "fetch" else wire(t.src, m) for m in t.modules)),
                         t.step) for t in transfers],
        relay_aggregates=cfg.relay_aggregates,
        relay_payload_bytes={j: int(sum(wire(j, m) for m in ms)) for j, ms in carried.items()},
        cloud_round=cloud_round,
        edge_to_cloud_bytes=edge_to_cloud_bytes,
        cloud_to_edge_bytes=edge_to_cloud_bytes,
        edge_to_device_bytes=_downlink_bytes(world, trained, (topology or world.topology).device_edge),
    )


def _downlink_bytes(world: World, trained: Mapping[int, Sequence[str]], device_edge: np.ndarray) -> np.ndarray:
    """Each edge broadcasts once every module its round's devices need next (their union)."""
    need: dict[int, set[str]] = {}
    for device in trained:
        need.setdefault(int(device_edge[device]), set()).update(eligible_modules(world, device))
    out = np.zeros(world.topology.num_edges)
    for e, modules in need.items():
        out[e] = sum(world.module_bytes[m] for m in modules)
    return out


