"""Planning a round: the solver's plan (or the default one) for the D2D mode that will run.

``solvers/`` sees plain arrays (a ``RoundProblem``) and answers a plan; the loop obeys it: devices
train only their placed modules, updates take the planned relays or tree, and the ledger
(``charging``) charges the planned bandwidth for the bytes really sent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

import solvers
from hffm.federation import d2d
from hffm.federation.config import FederationConfig
from hffm.federation.d2d_modes import mode_of
from hffm.federation.policy import Mode, TierPolicy
from hffm.federation.records import Plan
from hffm.federation.traffic import (
    codec_bytes,
    eligible_modules,
    holders_of,
    module_cycles,
    round_links,
    samples_per_round,
    traffic_of,
)
from hffm.network.channel import ChannelState
from hffm.network.config import NetworkConfig
from hffm.network.ledger import uplink_queue
from solvers.bandwidth import minmax_bandwidth

if TYPE_CHECKING:
    from hffm.federation.world import World

SOLVE_OPTIONS = ("time_limit_s", "gap", "budget")
"""Solver options (``SolverConfig.solve_options``) that go to ``solvers.solve``, not to the problem."""
MEMORY_FACTOR = 4.0
"""Training memory of a module in units of its size: weights, gradients and two Adam moments."""
POWER_FREQUENCY_SOLVERS = tuple(m.name for m in solvers.METHODS.values() if m.power_frequency)
"""The ``solvers.METHODS`` that plan uplink power and CPU frequency (solvers/README.md); the others keep them fixed."""


def plan_round(
    world: World,
    channel: ChannelState,
    participants: Sequence[int],
    cfg: FederationConfig,
    policy: TierPolicy,
    solver: str,
    options: Mapping[str, float | str],
    cache: solvers.ModelCache | None = None,
) -> Plan:
    """The round's plan for the D2D mode that will run.

    Without a solver (or in star / local mode): full placement, direct uploads, the ledger's default
    bandwidth. With one: the solver's placement, relays or aggregation trees (as the mode offers them),
    bandwidth, and uplink power and CPU frequency when ``options`` make them decisions (``build_problem``).
    Then the mode completes the plan (``D2DMode.complete_plan``: in ``tree`` mode a default tree when the
    solver gave none; in group modes the band re-planned for the devices that really upload).
    ``cache``: the run's ``solvers.ModelCache`` (one per run, passed every round), so rounds of the same structure
    re-solve the solver's compiled model instead of compiling it again.
    """
    eligible = {d: eligible_modules(world, d) for d in participants}
    plan = Plan(eligible, {}, info={"solver_used": 0.0})
    if solver != "none" and policy.mode == Mode.hierarchical:
        plan = _solve(world, channel, participants, eligible, cfg, solver, options, cache)
    return mode_of(cfg.d2d).complete_plan(plan, _Round(world, channel, cfg, policy))


@dataclass(frozen=True)
class _Round:
    """The round being planned, for ``D2DMode.complete_plan`` (a ``d2d_modes.PlanningRound``)."""

    world: World
    channel: ChannelState
    cfg: FederationConfig
    policy: TierPolicy

    def default_tree(self, plan: Plan) -> dict[int, int]:
        links = round_links(self.channel.topology, self.channel, self.cfg, plan)
        holders = holders_of(self.world, self.policy, plan.placement)
        return d2d.tree_parents(list(holders), links.adjacency, links.uplink_gain, links.rate)

    def uploader_band(self, plan: Plan) -> Plan:
        return _uploader_band(self.world, self.channel, self.cfg, self.policy, plan)


def _solve(
    world: World,
    channel: ChannelState,
    participants: Sequence[int],
    eligible: Mapping[int, list[str]],
    cfg: FederationConfig,
    solver: str,
    options: Mapping[str, float | str],
    cache: solvers.ModelCache | None = None,
) -> Plan:
    problem = build_problem(world, channel, participants, eligible, cfg,  # the problem's options are numbers
                            **{k: float(v) for k, v in options.items() if k not in SOLVE_OPTIONS})
    takes = solvers.METHODS[solver].options_for(problem)  # the method's record says what it takes
    # one process: the solver's pool forks, which a torch process with threads (or Fabric ranks) must not do
    opts: dict[str, object] = {"workers": 1} if "workers" in takes else {}
    opts |= {k: options[k] for k in SOLVE_OPTIONS if k in options and k in takes}  # the method's own options
    if cache is not None and "cache" in takes:
        opts["cache"] = cache
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
    levels = {}
    if cfg.codebook().auto:  # the solver's level per device; a plan without levels (a fallback) sends at full size
        levels = {d: "none" if plan.level is None else problem.level_names[int(plan.level[k])]
                  for k, d in enumerate(parts)}
    info = {
        "solver_used": 1.0,
        "fallback": float(plan.fallback),
        "latency_s": float(plan.latency_s),
        "energy_j": float(plan.energy_j),
        "solve_s": float(plan.solve_seconds),
        "relays_used": float(sum(1 for d, r in relay.items() if r != d)),
        "tree_links": float(sum(1 for d, p in parent.items() if p != d)),
        "lower_bound": float(plan.lower_bound),
        "gap": float(plan.gap),
        "proven": float(plan.status == "optimal"),  # solver.gap proven; 0: time ran out or the bound is not proven
        "modules_placed": float(plan.placement.sum()),
        "modules_eligible": float(problem.eligible.sum()),
        "power_frequency": float(power is not None or cpu is not None),
    }
    if levels:
        info["compressed_devices"] = float(sum(1 for v in levels.values() if v != "none"))
        info["level_model"] = float(plan.message.startswith(solvers.LEVEL_MODEL_MESSAGE))  # solvers/level_model.py
    return Plan(placement, relay, bandwidth, parent, info, power, cpu, levels)


def _uploader_band(
    world: World, channel: ChannelState, cfg: FederationConfig, policy: TierPolicy, plan: Plan
) -> Plan:
    """Min-max uplink bandwidth for the devices that really upload in the mode's predicted traffic (a tree's
    roots, gossip's group uploaders), from the ledger's own timeline of when each is ready (compute, then the
    D2D steps) and what it sends. Planned power and frequency are dropped: the solver chose them for other
    uploaders on a timeline without D2D."""
    holders = holders_of(world, policy, plan.placement)
    predicted = mode_of(cfg.d2d).predict(holders, round_links(world.topology, channel, cfg, plan))
    traffic = traffic_of(world, cfg, plan.placement, predicted.routes, predicted.transfers,
                         levels=plan.compression)
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
    D2D links are offered where the D2D mode says (``solver_links``: one-hop relays, or with ``solver_tree``
    each edge's aggregation tree: ``tree_aggregation``). Uplink power is a decision in (0, max_tx_power_w] when
    that is given (``p_max``), CPU frequency one in [cpu_scale_min, cpu_scale_max] x each device's drawn
    cpu_hz when that range is not [1, 1] (``f_min``, ``f_max``); else both stay fixed."""
    net = world.network
    mode = mode_of(cfg.d2d)
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
    if mode.solver_links:
        pos = {d: i for i, d in enumerate(parts)}
        for i, d in enumerate(parts):
            for j in world.topology.neighbours(d):
                r = channel.d2d_rate_of(d, int(j)) if int(j) in pos else 0.0
                if r > 0:
                    src.append(i)
                    dst.append(pos[int(j)])
                    rate.append(r)
    raw = np.array([float(world.module_bytes[n]) for n in names])
    codebook = cfg.codebook()
    sizes = np.array([float(codec_bytes(world, codebook, n)) for n in names])  # auto kinds at full size here
    uplink_budget = np.full(len(edges), net.channel.edge_bandwidth_hz)
    cpu = world.cpu_hz[parts]
    p_max = None if max_tx_power_w is None else np.full(k, float(max_tx_power_w))
    scaled = (cpu_scale_min, cpu_scale_max) != (1.0, 1.0)
    return solvers.RoundProblem(
        device_ids=tuple(parts),
        edge_ids=tuple(edges),
        module_names=names,
        device_edge=np.array([edge_index[int(world.topology.device_edge[d])] for d in parts]),
        samples=np.array([samples_per_round(world, cfg, d) for d in parts], dtype=float),
        cpu_hz=cpu,
        memory_bytes=world.memory_bytes[parts],
        tx_power_w=np.full(k, net.channel.device_tx_power_w),
        uplink_gain=channel.uplink_gain[parts],
        d2d_power_w=np.full(k, net.channel.d2d_energy_power),
        eligible=mask,
        module_bytes=sizes,
        module_memory_bytes=MEMORY_FACTOR * raw,
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
        tree_aggregation=mode.solver_tree,
        p_max=p_max,
        f_min=cpu_scale_min * cpu if scaled else None,
        f_max=cpu_scale_max * cpu if scaled else None,
        **(compression_offer(world, cfg, names, k) if codebook.auto else {}),
    )


def compression_offer(world: World, cfg: FederationConfig, names: Sequence[str], devices: int) -> dict:
    """``federation.compression=auto``: the levels the solver may choose per device, each with its bytes factor
    (over the modules whose kind auto decides) and its measured distortion, and the round's budget and penalty
    (the mean budget times the devices planned)."""
    codebook = cfg.codebook()
    auto = [n for n in names if codebook.kinds.get(world.bank.kind(n), codebook.level) == "auto"]
    full = sum(world.module_bytes[n] for n in auto) or 1
    levels = list(cfg.compression_levels)
    factor = [sum(codec_bytes(world, codebook, n, level) for n in auto) / full for level in levels]
    budget = cfg.compression_budget
    return {"level_names": tuple(levels), "level_factor": np.array(factor, dtype=float),
            "level_distortion": np.array([cfg.compression_distortion[level] for level in levels], dtype=float),
            "distortion_budget": None if budget is None else budget * devices,
            "distortion_penalty": cfg.compression_penalty}


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


