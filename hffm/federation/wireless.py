"""The loop's bridge to the network model and the solver: plan a round, then charge it.

``solvers/`` sees plain arrays (a ``RoundProblem``) and answers a ``RoundPlan``; the loop obeys it:
devices train only their placed modules, updates take the planned relays, and the ledger charges
the planned bandwidth for the bytes really sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import solvers
from hffm.federation.config import FederationConfig
from hffm.federation.d2d import Route, Transfer
from hffm.federation.world import World
from hffm.network.channel import ChannelState
from hffm.network.ledger import D2DTransfer, DeviceUpload, RoundCost, charge_round

MEMORY_FACTOR = 4.0
"""Training memory of a module in units of its size: weights, gradients and two Adam moments."""


@dataclass
class RoundDecision:
    """What the loop obeys this round."""

    placement: dict[int, list[str]]
    relay: dict[int, int]
    bandwidth_hz: np.ndarray | None
    info: dict[str, float] = field(default_factory=dict)
    tree_links: list[tuple[int, int]] = field(default_factory=list)
    """(device, parent) links the round's D2D tree aggregation used (filled in by the loop)."""

    def metrics(self) -> dict[str, float]:
        return {f"plan/{k}": v for k, v in self.info.items()}


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
    solver: str,
    options: dict[str, float],
) -> RoundDecision:
    """Full placement, direct uploads and the ledger's default bandwidth when ``solver`` is none;
    otherwise the solver's plan over this round's participants (D2D links only with ``d2d_relay``)."""
    eligible = {d: eligible_modules(world, d) for d in participants}
    if solver == "none" or cfg.mode == "local" or cfg.mode == "star":
        return RoundDecision(eligible, {d: d for d in participants}, None, {"solver_used": 0.0})
    problem = build_problem(world, channel, participants, eligible, cfg, **options)
    plan = solvers.solve(problem, method=solver)  # never raises: logs the cause and falls back
    names = problem.module_names
    placement = {d: [names[m] for m in np.flatnonzero(plan.placement[k])] for k, d in enumerate(participants)}
    relay = {d: int(participants[int(plan.relay[k])]) for k, d in enumerate(participants)}
    bandwidth = np.zeros(world.num_devices)
    bandwidth[list(participants)] = plan.bandwidth_hz
    info = {
        "solver_used": 1.0,
        "fallback": float(plan.fallback),
        "latency_s": float(plan.latency_s),
        "energy_j": float(plan.energy_j),
        "solve_s": float(plan.solve_seconds),
        "relays_used": float(sum(1 for d, r in relay.items() if r != d)),
        "modules_placed": float(plan.placement.sum()),
        "modules_eligible": float(problem.eligible.sum()),
    }
    return RoundDecision(placement, relay, bandwidth, info)


def build_problem(
    world: World,
    channel: ChannelState,
    participants: Sequence[int],
    eligible: dict[int, list[str]],
    cfg: FederationConfig,
    gamma: float = 0.5,
    lam: float = 0.0,
) -> solvers.RoundProblem:
    """This round's symbols in SI units, over the participants (indexed 0..K-1 in that order)."""
    net = world.network
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
    if cfg.d2d_relay:
        pos = {d: i for i, d in enumerate(parts)}
        for i, d in enumerate(parts):
            for j in world.topology.neighbours(d):
                if int(j) in pos and channel.d2d_rate[d, j] > 0:
                    src.append(i)
                    dst.append(pos[int(j)])
                    rate.append(float(channel.d2d_rate[d, j]))
    sizes = np.array([float(world.module_bytes[n]) for n in names])
    uplink_budget = np.full(len(edges), net.channel.edge_bandwidth_hz)
    return solvers.RoundProblem(
        device_ids=tuple(parts),
        edge_ids=tuple(edges),
        module_names=names,
        device_edge=np.array([edge_index[int(world.topology.device_edge[d])] for d in parts]),
        samples=np.full(k, samples_per_round(cfg)),
        cpu_hz=world.cpu_hz[parts],
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
    )


def charge_round_costs(
    world: World,
    channel: ChannelState,
    decision: RoundDecision,
    routes: Sequence[Route],
    gossip: Sequence[Transfer],
    results: Sequence[tuple[int, Sequence[str], dict]],
    cfg: FederationConfig,
    *,
    cloud_round: bool,
    edge_to_cloud_bytes: np.ndarray,
) -> RoundCost:
    """Charge the bytes each device really sent, over the route it used, at the planned bandwidth."""
    size = world.module_bytes
    sent = {r.device: r for r in routes}
    uploads = []
    carried: dict[int, set[str]] = {}
    for device, trained, _ in results:
        route = sent.get(device)
        modules = route.modules if route is not None else ()
        relay = route.relay if route is not None else device
        cycles = samples_per_round(cfg) * sum(module_cycles(world, m) for m in trained)
        uploads.append(DeviceUpload(device, int(sum(size[m] for m in modules)), relay, cycles))
        carried.setdefault(relay, set()).update(modules)
    star = cfg.mode == "star"
    down = _downlink_bytes(world, results) if not star else None
    return charge_round(
        world.network,
        world.topology,
        channel,
        world.cpu_hz,
        uploads,
        cloud_round=cloud_round or star,
        uplink_bandwidth_hz=decision.bandwidth_hz,
        relay_aggregates=cfg.relay_aggregates,
        relay_payload_bytes={j: int(sum(size[m] for m in ms)) for j, ms in carried.items()},
        edge_to_cloud_bytes=None if star else edge_to_cloud_bytes,
        cloud_to_edge_bytes=None if star else edge_to_cloud_bytes,
        edge_to_device_bytes=down,
        gossip=[D2DTransfer(t.src, t.dst, int(sum(size[m] for m in t.modules)), t.step) for t in gossip],
        star=star,
        cloud_to_device_bytes=_star_return_bytes(world, results) if star else None,
    )


def _downlink_bytes(world: World, results: Sequence[tuple[int, Sequence[str], dict]]) -> np.ndarray:
    """Each edge broadcasts once every module its round's devices need next (their union)."""
    need: dict[int, set[str]] = {}
    for device, _, _ in results:
        need.setdefault(int(world.topology.device_edge[device]), set()).update(eligible_modules(world, device))
    out = np.zeros(world.topology.num_edges)
    for e, modules in need.items():
        out[e] = sum(world.module_bytes[m] for m in modules)
    return out


def _star_return_bytes(world: World, results: Sequence[tuple[int, Sequence[str], dict]]) -> np.ndarray:
    out = np.zeros(world.num_devices)
    for device, _, _ in results:
        out[device] = sum(world.module_bytes[m] for m in eligible_modules(world, device))
    return out
