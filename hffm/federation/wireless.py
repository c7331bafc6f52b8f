"""The loop's bridge to the network model and the solver: plan a round, then charge what it did.

``solvers/`` sees plain arrays (a ``RoundProblem``) and answers a plan; the loop obeys it: devices
train only their placed modules, updates take the planned relays or tree, and the ledger charges
the planned bandwidth for the bytes really sent (the ``RoundOutcome``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

import solvers
from hffm.federation import d2d
from hffm.federation.config import D2DMode, FederationConfig
from hffm.federation.policy import Mode, TierPolicy
from hffm.federation.records import Plan, RoundOutcome, Route, Transfer
from hffm.federation.world import World
from hffm.network.channel import ChannelState
from hffm.network.config import NetworkConfig
from hffm.network.ledger import (
    D2DTransfer,
    DeviceUpload,
    RoundCost,
    Traffic,
    charge_round,
    charge_star,
    uplink_ends,
    uplink_queue,
)
from hffm.network.topology import Topology
from solvers.bandwidth import minmax_bandwidth

MEMORY_FACTOR = 4.0
"""Training memory of a module in units of its size: weights, gradients and two Adam moments."""
POWER_FREQUENCY_SOLVERS = tuple(m.name for m in solvers.METHODS.values() if m.power_frequency)
"""The ``solvers.METHODS`` that plan uplink power and CPU frequency (solvers/README.md); the others keep them fixed."""


def eligible_modules(world: World, device: int) -> list[str]:
    """The modules a device's modalities and tasks need: what it may be asked to train."""
    part = world.parts[device]
    return list(world.bank.required_modules(part.modalities, part.tasks))


def samples_per_round(cfg: FederationConfig) -> float:
    return float(cfg.local_steps * cfg.batch_size)


def module_cycles(world: World, name: str) -> float:
    bank = world.bank
    return world.network.compute.cycles_per_sample(bank.kind(name), bank.num_params(name))


def plan_round(
    world: World,
    channel: ChannelState,
    participants: Sequence[int],
    cfg: FederationConfig,
    policy: TierPolicy,
    solver: str,
    options: Mapping[str, float],
) -> Plan:
    """The round's plan for the D2D mode that will run.

    Without a solver (or in star / local mode): full placement, direct uploads, the ledger's default
    bandwidth, and in ``tree`` mode the default tree (``d2d.tree_parents``). With one: the solver's
    placement, relays (``relay`` mode) or aggregation tree (``tree`` mode: the solver chooses each edge's
    tree and uploader), bandwidth, and uplink power and CPU frequency when ``options`` make them decisions
    (``build_problem``). In ``gossip`` mode, and in ``tree`` mode when the solver gave no tree, the
    bandwidth is planned for the devices that really upload (one per group), when they are ready.
    """
    eligible = {d: eligible_modules(world, d) for d in participants}
    plan = Plan(eligible, {}, info={"solver_used": 0.0})
    if solver != "none" and policy.mode == Mode.hierarchical:
        plan = _solve(world, channel, participants, eligible, cfg, solver, options)
    if cfg.d2d == D2DMode.tree and not plan.parent:
        links = _links(world, channel, cfg, plan.relay, {})
        parent = d2d.tree_parents(list(_shared(world, policy, plan.placement)), links.adjacency, links.uplink_gain,
                                  links.rate)
        plan = dataclasses.replace(plan, parent=parent)
        if plan.bandwidth_hz is not None:
            plan = _group_bandwidth(world, channel, cfg, policy, plan)
    if plan.bandwidth_hz is not None and cfg.d2d == D2DMode.gossip:
        plan = _group_bandwidth(world, channel, cfg, policy, plan)
    return plan


def _solve(
    world: World,
    channel: ChannelState,
    participants: Sequence[int],
    eligible: Mapping[int, list[str]],
    cfg: FederationConfig,
    solver: str,
    options: Mapping[str, float],
) -> Plan:
    problem = build_problem(world, channel, participants, eligible, cfg, **options)
    # one process: the solver's pool forks, which a torch process with threads (or Fabric ranks) must not do
    opts = {"workers": 1} if "workers" in solvers.METHODS[solver].options_for(problem) else {}
    plan = solvers.solve(problem, method=solver, **opts)  # never raises: logs the cause and falls back
    names, parts = problem.module_names, list(participants)
    placement = {d: [names[m] for m in np.flatnonzero(plan.placement[k])] for k, d in enumerate(parts)}
    relay, parent = {}, {}
    if plan.parent is not None:  # tree mode: the solver's tree (its relay array repeats it)
        parent = {d: int(parts[int(plan.parent[k])]) for k, d in enumerate(parts)}
    else:
        relay = {d: int(parts[int(plan.relay[k])]) for k, d in enumerate(parts)}
    bandwidth = np.zeros(world.num_devices)
    bandwidth[parts] = plan.bandwidth_hz
    power = cpu = None
    if plan.tx_power_w is not None:  # the solver planned them: its values for the participants, fixed elsewhere
        power = np.full(world.num_devices, world.network.channel.device_tx_power_w)
        power[parts] = plan.tx_power_w
    if plan.cpu_hz is not None:
        cpu = np.array(world.cpu_hz, dtype=float)
        cpu[parts] = plan.cpu_hz
    info = {
        "solver_used": 1.0,
        "fallback": float(plan.fallback),
        "latency_s": float(plan.latency_s),
        "energy_j": float(plan.energy_j),
        "solve_s": float(plan.solve_seconds),
        "relays_used": float(sum(1 for d, r in relay.items() if r != d)),
        "tree_links": float(sum(1 for d, p in parent.items() if p != d)),
        "lower_bound": float(plan.lower_bound),
        "modules_placed": float(plan.placement.sum()),
        "modules_eligible": float(problem.eligible.sum()),
        "power_frequency": float(power is not None or cpu is not None),
    }
    return Plan(placement, relay, bandwidth, parent, info, power, cpu)


def _shared(world: World, policy: TierPolicy, trained: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
    """Device -> the modules it trained that leave it (updates), for devices that have any."""
    out = {d: [m for m in ms if policy.shared(world.bank.kind(m))] for d, ms in trained.items()}
    return {d: ms for d, ms in out.items() if ms}


def _group_bandwidth(
    world: World, channel: ChannelState, cfg: FederationConfig, policy: TierPolicy, plan: Plan
) -> Plan:
    """Min-max uplink bandwidth for the uploaders of a tree or gossip round, from the ledger's own
    timeline of when each uploader is ready (compute, then the D2D steps) and what it sends. Planned
    power and frequency are dropped: the solver chose them for other uploaders on a timeline without D2D."""
    holders = _shared(world, policy, plan.placement)
    if cfg.d2d == D2DMode.tree:
        routes, transfers = d2d.tree_traffic(holders, plan.parent)
    else:
        routes, transfers = d2d.gossip_traffic(holders, world.topology.adjacency, cfg.cons_rounds)
    traffic = _traffic(world, cfg, plan.placement, routes, transfers)
    queue = uplink_queue(world.network, world.topology, channel, world.cpu_hz, traffic)
    band = np.zeros(world.num_devices)
    info = {k: v for k, v in plan.info.items() if k not in ("latency_s", "energy_j")}  # the solver's model had no D2D
    if "power_frequency" in info:
        info["power_frequency"] = 0.0
    if queue.uploaders:
        up = np.array(queue.uploaders)
        edges = world.topology.device_edge[up]
        snr_hz = channel.device_tx_power_w * channel.uplink_gain[up] / channel.n0_w_per_hz
        start = np.array([queue.start[j].t for j in up])
        bits = np.array([8.0 * queue.nbytes[j] for j in up])
        budget = np.full(world.topology.num_edges, world.network.channel.edge_bandwidth_hz)
        _, band[up] = minmax_bandwidth(edges, start, bits, snr_hz, budget)
        info["group_bandwidth"] = 1.0
    return dataclasses.replace(plan, bandwidth_hz=band, info=info, tx_power_w=None, cpu_hz=None)


def build_problem(
    world: World,
    channel: ChannelState,
    participants: Sequence[int],
    eligible: Mapping[int, list[str]],
    cfg: FederationConfig,
    gamma: float = 0.5,
    lam: float = 0.0,
    max_tx_power_w: float | None = None,
    cpu_scale_min: float = 1.0,
    cpu_scale_max: float = 1.0,
) -> solvers.RoundProblem:
    """This round's symbols in SI units, over the participants (indexed 0..K-1 in that order).
    D2D links are offered in ``relay`` mode (one-hop relays) and ``tree`` mode (the solver chooses each
    edge's aggregation tree: ``tree_aggregation``). Uplink power is a decision in (0, max_tx_power_w] when
    that is given (``p_max``), CPU frequency one in [cpu_scale_min, cpu_scale_max] x each device's drawn
    cpu_hz when that range is not [1, 1] (``f_min``, ``f_max``); else both stay fixed."""
    net = world.network
    check_power_frequency(net, max_tx_power_w, cpu_scale_min, cpu_scale_max)
    names = tuple(world.bank.names())
    col = {name: j for j, name in enumerate(names)}
    parts = list(participants)
    k = len(parts)
    mask = np.zeros((k, len(names)), dtype=bool)
    for i, d in enumerate(parts):
        mask[i, [col[m] for m in eligible[d]]] = True
    edges = sorted({int(world.topology.device_edge[d]) for d in parts})
    edge_index = {e: j for j, e in enumerate(edges)}
    src, dst, rate = [], [], []
    if cfg.d2d in (D2DMode.relay, D2DMode.tree):
        pos = {d: i for i, d in enumerate(parts)}
        for i, d in enumerate(parts):
            for j in world.topology.neighbours(d):
                r = channel.d2d_rate_of(d, int(j)) if int(j) in pos else 0.0
                if r > 0:
                    src.append(i)
                    dst.append(pos[int(j)])
                    rate.append(r)
    sizes = np.array([float(world.module_bytes[n]) for n in names])
    uplink_budget = np.full(len(edges), net.channel.edge_bandwidth_hz)
    cpu = world.cpu_hz[parts]
    p_max = None if max_tx_power_w is None else np.full(k, float(max_tx_power_w))
    scaled = (cpu_scale_min, cpu_scale_max) != (1.0, 1.0)
    return solvers.RoundProblem(
        device_ids=tuple(parts),
        edge_ids=tuple(edges),
        module_names=names,
        device_edge=np.array([edge_index[int(world.topology.device_edge[d])] for d in parts]),
        samples=np.full(k, samples_per_round(cfg)),
        cpu_hz=cpu,
        memory_bytes=world.memory_bytes[parts],
        tx_power_w=np.full(k, net.channel.device_tx_power_w),
        uplink_gain=channel.uplink_gain[parts],
        d2d_power_w=np.full(k, net.channel.d2d_energy_power),
        eligible=mask,
        module_bytes=sizes,
        module_memory_bytes=MEMORY_FACTOR * sizes,
        module_cycles=np.array([module_cycles(world, n) for n in names]),
        edge_bandwidth_hz=uplink_budget,
        d2d_src=np.array(src, dtype=int),
        d2d_dst=np.array(dst, dtype=int),
        d2d_rate_bps=np.array(rate, dtype=float),
        noise_w_per_hz=channel.n0_w_per_hz,
        gamma=gamma,
        lam=lam,
        relay_aggregates=cfg.relay_aggregates,
        kappa=net.compute.kappa,
        tree_aggregation=cfg.d2d == D2DMode.tree,
        p_max=p_max,
        f_min=cpu_scale_min * cpu if scaled else None,
        f_max=cpu_scale_max * cpu if scaled else None,
    )


def check_power_frequency(
    net: NetworkConfig, max_tx_power_w: float | None = None, cpu_scale_min: float = 1.0, cpu_scale_max: float = 1.0
) -> None:
    """Refuse power / frequency decision ranges the network cannot honour, naming the fields and the fix."""
    ch = net.channel
    if max_tx_power_w is not None:
        if not (isinstance(max_tx_power_w, int | float) and math.isfinite(max_tx_power_w)
                and max_tx_power_w >= ch.device_tx_power_w):
            raise ValueError(
                f"solver.max_tx_power_w = {max_tx_power_w!r} W: must be a finite power >= "
                f"topology.channel.device_tx_power_w = {ch.device_tx_power_w:g} W (the fixed power, which the "
                "range includes); raise it, or lower device_tx_power_w")
        if ch.device_energy_power_w is not None:
            raise ValueError(
                f"solver.max_tx_power_w: topology.channel.device_energy_power_w = {ch.device_energy_power_w:g} W "
                "charges uplink energy at a fixed power whatever is sent (the prototype preset does), so a planned "
                "power could not change the energy; use topology.preset=default, or plan no power")
    for name, v in (("cpu_scale_min", cpu_scale_min), ("cpu_scale_max", cpu_scale_max)):
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ValueError(f"solver.{name} = {v!r}: must be a finite number > 0 (a fraction of the drawn cpu_hz)")
    if not cpu_scale_min <= 1.0 <= cpu_scale_max:
        raise ValueError(
            f"solver.cpu_scale_min = {cpu_scale_min:g}, solver.cpu_scale_max = {cpu_scale_max:g}: the range must "
            "hold 1 (the drawn cpu_hz): cpu_scale_min <= 1 <= cpu_scale_max, e.g. 0.3 and 1")
    if (cpu_scale_min, cpu_scale_max) != (1.0, 1.0) and not net.compute.enabled:
        raise ValueError(
            "solver.cpu_scale_min / cpu_scale_max: topology.compute.enabled is false, so computation costs "
            "nothing and a planned CPU frequency changes nothing; enable it or leave the range at 1, 1")


def d2d_links(world: World, channel: ChannelState, cfg: FederationConfig, plan: Plan) -> d2d.Links:
    """What the round's D2D mode may use: the graph, this round's channel and the plan's relays and tree."""
    return _links(world, channel, cfg, plan.relay, plan.parent)


def _links(
    world: World, channel: ChannelState, cfg: FederationConfig, relay: Mapping[int, int], parent: Mapping[int, int]
) -> d2d.Links:
    return d2d.Links(channel.topology.adjacency, channel.uplink_gain, channel.rate_matrix(), relay, parent,
                     cfg.relay_aggregates, cfg.cons_rounds)


def charge_outcome(
    world: World, channel: ChannelState, plan: Plan, outcome: RoundOutcome, cfg: FederationConfig, policy: TierPolicy,
    topology: Topology | None = None,
) -> RoundCost:
    """Charge the bytes each device really sent, over the route it used, at the planned bandwidth, uplink power
    and CPU frequency (where the plan set them), with stragglers' compute slowed. ``topology`` / ``channel``: the
    round's (devices re-attached by an edge outage)."""
    topology = world.topology if topology is None else topology
    trained = {r.device: r.modules for r in outcome.results}
    slowdown = outcome.faults.drawn.slowdown
    if policy.star:
        uploads = _traffic(world, cfg, trained, outcome.routes, (), slowdown=slowdown).uploads
        return charge_star(world.network, topology, plan.device_cpu_hz(world.cpu_hz), uploads,
                           _star_return_bytes(world, trained))
    traffic = _traffic(world, cfg, trained, outcome.routes, outcome.transfers, outcome.cloud_round,
                       outcome.edge_to_cloud_bytes, slowdown, topology)
    return charge_round(world.network, topology, channel, plan.device_cpu_hz(world.cpu_hz), traffic, plan.bandwidth_hz,
                        plan.tx_power_w)


def upload_ends(
    world: World, topology: Topology, channel: ChannelState, plan: Plan, cfg: FederationConfig, policy: TierPolicy,
    silent: frozenset[int], slowdown: Mapping[int, float],
) -> dict[int, float]:
    """Device -> when its update would reach its edge (s into the round): the end of the uplink carrying it, on the
    ledger's own timeline of the plan's traffic (``silent`` devices compute but send nothing). A relayed or tree
    device ends with its relay's or root's upload; with gossip, with the last uploader of its cluster."""
    placed = {d: ms for d, ms in plan.placement.items()}
    holders = {d: ms for d, ms in _shared(world, policy, placed).items() if d not in silent}
    carrier = {d: d for d in holders}
    transfers: Sequence[Transfer] = ()
    if cfg.d2d == D2DMode.relay:
        routes = [Route(d, tuple(ms), plan.relay.get(d, d)) for d, ms in sorted(holders.items())]
        carrier = {d: plan.relay.get(d, d) for d in holders}
    elif cfg.d2d == D2DMode.tree:
        parent = d2d.aggregation_tree(list(holders), plan.parent or None, topology.adjacency, channel.uplink_gain,
                                      channel.rate_matrix())
        routes, transfers = d2d.tree_traffic(holders, parent)
        carrier = {d: d2d.root_of(parent, d) for d in holders}
    elif cfg.d2d == D2DMode.gossip:
        routes, transfers = d2d.gossip_traffic(holders, topology.adjacency, cfg.cons_rounds)
    else:
        routes = [Route(d, tuple(ms), d) for d, ms in sorted(holders.items())]
    traffic = _traffic(world, cfg, placed, routes, transfers, slowdown=slowdown, topology=topology)
    ends = uplink_ends(world.network, topology, channel, plan.device_cpu_hz(world.cpu_hz), traffic, plan.bandwidth_hz,
                       plan.tx_power_w)
    if cfg.d2d == D2DMode.gossip:
        last: dict[int, float] = {}
        for j, end in ends.items():
            edge = int(topology.device_edge[j])
            last[edge] = max(last.get(edge, 0.0), end)
        return {d: last.get(int(topology.device_edge[d]), 0.0) for d in holders}
    return {d: ends[carrier[d]] for d in holders if carrier[d] in ends}


def _traffic(
    world: World,
    cfg: FederationConfig,
    trained: Mapping[int, Sequence[str]],
    routes: Sequence[Route],
    transfers: Sequence[Transfer],
    cloud_round: bool = False,
    edge_to_cloud_bytes: np.ndarray | None = None,
    slowdown: Mapping[int, float] | None = None,
    topology: Topology | None = None,
) -> Traffic:
    """The ledger's view of a round: who computed what (a straggler's compute takes ``slowdown`` x its
    cycles), and which bytes went over which link."""
    slowdown = slowdown or {}
    size = world.module_bytes
    sent = {r.device: r for r in routes}
    uploads = []
    carried: dict[int, set[str]] = {}
    for device, modules in sorted(trained.items()):
        route = sent.get(device)
        payload = route.modules if route is not None else ()
        relay = route.relay if route is not None else device
        cycles = samples_per_round(cfg) * sum(module_cycles(world, m) for m in modules) * slowdown.get(device, 1.0)
        uploads.append(DeviceUpload(device, int(sum(size[m] for m in payload)), relay, cycles))
        carried.setdefault(relay, set()).update(payload)
    return Traffic(
        uploads=uploads,
        d2d=[D2DTransfer(t.src, t.dst, int(sum(size[m] for m in t.modules)), t.step) for t in transfers],
        relay_aggregates=cfg.relay_aggregates,
        relay_payload_bytes={j: int(sum(size[m] for m in ms)) for j, ms in carried.items()},
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


def _star_return_bytes(world: World, trained: Mapping[int, Sequence[str]]) -> np.ndarray:
    out = np.zeros(world.num_devices)
    for device in trained:
        out[device] = sum(world.module_bytes[m] for m in eligible_modules(world, device))
    return out
