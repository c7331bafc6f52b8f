"""The round loop: devices -> (D2D) -> edges -> every E_agg rounds the cloud -> back down.

Read it top to bottom; every step of a round is a call below, in order. The plan is what was
decided, the ``RoundOutcome`` what happened; loggers only read them, they never change what happens.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lightning.fabric import Fabric

from hffm.federation import d2d
from hffm.federation.aggregate import ModuleUpdate, Rule, aggregate_modules, make_rule
from hffm.federation.batched import DeviceJob, train_devices
from hffm.federation.checkpoint import check_resume, load_checkpoint, make_payload, restore_rng, save_checkpoint
from hffm.federation.config import FederationConfig
from hffm.federation.distributed import gather, shard
from hffm.federation.evaluation import evaluate_round
from hffm.federation.fault_steps import edges_this_round, round_faults, send
from hffm.federation.faults import FaultsConfig, attackers
from hffm.federation.local import LocalConfig
from hffm.federation.policy import TierPolicy
from hffm.federation.records import DeviceResult, Plan, RoundOutcome, Route, Transfer
from hffm.federation.screening import Rejection, log_rejections, screen_updates, thin_modules
from hffm.federation.state import FederationState
from hffm.federation.wireless import charge_outcome, d2d_links, eligible_modules, plan_round
from hffm.federation.world import World

log = logging.getLogger(__name__)

Logger = Callable[[dict[str, float], int, Plan, RoundOutcome], None]
"""Receives each round's metrics, its plan and its outcome; reads them, changes nothing."""


@dataclass
class FederationResult:
    state: FederationState
    history: list[dict[str, float]]
    last_plan: Plan | None = None
    last_outcome: RoundOutcome | None = None


def tier_policy(cfg: FederationConfig) -> TierPolicy:
    return TierPolicy.for_mode(cfg.mode, cfg.policy, cfg.e_agg)


def initial_state(world: World, policy: TierPolicy) -> FederationState:
    start = world.bank.state_of(world.bank.names())
    clone = lambda: {m: {k: v.clone() for k, v in s.items()} for m, s in start.items()}  # noqa: E731
    groups = policy.num_groups(world.topology.num_edges)
    return FederationState(
        round=0,
        group_states=[clone() for _ in range(groups)],
        cloud_state=clone(),
        pending_weight=[{} for _ in range(groups)],
    )


def run_federation(
    fabric: Fabric,
    world: World,
    cfg: FederationConfig,
    *,
    solver: str = "none",
    solver_options: Mapping[str, float] | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    loggers: Sequence[Logger] = (),
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    run_config: Mapping[str, Any] | None = None,
    faults: FaultsConfig | None = None,
) -> FederationResult:
    """``run_config``: the run's resolved config (config.json), stored in checkpoints and checked on resume.
    ``faults``: dropouts, stragglers, relay failures, edge outages and attackers (none by default)."""
    faults = faults or FaultsConfig()
    run_config = run_config if run_config is not None else {"seed": seed, "federation": dataclasses.asdict(cfg)}
    policy = tier_policy(cfg)
    rule = make_rule(cfg.rule, **_rule_options(cfg))
    local = LocalConfig(cfg.local_steps, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.optimizer)
    group_of = policy.group_of(world.topology.device_edge)
    ckpt_path = Path(out_dir) / "checkpoints" / "federation.pt" if out_dir is not None else None
    rng = np.random.default_rng(seed)
    attacking = attackers(faults, world.num_devices, seed)

    state = initial_state(world, policy)
    if cfg.resume:
        payload = load_checkpoint(cfg.resume)
        check_resume(payload, cfg.resume, run_config, cfg.rounds, state.to_dict())
        state = FederationState.from_dict(payload["state"])
        restore_rng(payload["rng"], rng)

    plan, outcome = None, None
    warned_thin: set[str] = set()
    while state.round < cfg.rounds:
        t = state.round
        tic = time.perf_counter()
        cloud_round = policy.is_cloud_round(t)

        # 1. This round's channel draw, participants (less those of a down edge) and plan.
        channel = world.draw_channel(rng)
        net = edges_this_round(world, channel, faults, seed, t, policy)
        participants, stranded = net.keep(_draw_participants(rng, world.num_devices, cfg.participation))
        plan = plan_round(world, channel, participants, cfg, policy, solver, solver_options or {})
        # 1b. Faults: who drops, straggles or fails as a relay (the plan routes around them), who misses the deadline.
        plan, fault = round_faults(world, net, plan, cfg, faults, policy, seed, t, stranded, attacking)
        links = d2d_links(world, net.channel, cfg, plan)

        # 2-5, one edge at a time (trained in waves of edges), so a round holds one wave's trained modules.
        fetched = _fetch(world, state, participants, policy, net.topology.adjacency) if cfg.d2d_fetch else {}
        results: list[DeviceResult] = []
        rejected: list[Rejection] = []
        thin: dict[str, int] = {}
        routes: list[Route] = []
        transfers: list[Transfer] = [
            Transfer(j, d, (m,), kind="fetch") for d, got in fetched.items() for m, j in got.items()
        ]
        groups = _by_group(participants, policy.group_of(np.maximum(net.edge, 0)))
        waves = _train_waves(fabric, world, state, plan.placement, fetched, groups, local, cfg, seed, t)
        for group, trained_here in waves:
            # 3. Personal modules stay on the device; shared ones become updates.
            updates: list[ModuleUpdate] = []
            for device, trained, losses in trained_here:
                results.append(DeviceResult(device, tuple(trained), losses))
                for name, module_state in trained.items():
                    if policy.shared(world.bank.kind(name)):
                        updates.append(ModuleUpdate(device, name, module_state, world.num_samples[device]))
                    else:
                        state.personal.setdefault(device, {})[name] = module_state

            # 3b. What leaves the devices: nothing from dropped, failed or late ones; poison from attackers.
            updates = send(updates, fault, state.group_states[group], faults, seed, t)

            # 4a. Screening: a non-finite, misshapen or (with max_update_norm) too large update goes no further.
            updates, refused = screen_updates(updates, state.group_states[group], cfg.max_update_norm)
            log_rejections(refused, f"round {t + 1}, edge {group}")
            rejected += refused

            # 4b. D2D in the configured mode (none, relay, tree or gossip): what reaches the edge, and how.
            sent = d2d.exchange(cfg.d2d, updates, links)
            routes += sent.routes
            transfers += sent.transfers

            # 5. Edge aggregation: masked, per module, over the updates that reached the edge.
            thin |= thin_modules(sent.updates, cfg.rule)
            new, weight = aggregate_modules(state.group_states[group], sent.updates, rule)
            state.group_states[group].update(new)
            for name, w in weight.items():
                state.pending_weight[group][name] = state.pending_weight[group].get(name, 0.0) + w

        # 6. Every E_agg rounds the cloud aggregates the edges (per module, masked) and broadcasts.
        edge_to_cloud, cloud_rejected = np.zeros(len(state.group_states)), list[Rejection]()
        if cloud_round:
            edge_to_cloud, cloud_rejected = _cloud_round(state, world, policy, rule)
        outcome = RoundOutcome(t, tuple(results), tuple(routes), tuple(transfers), cloud_round, edge_to_cloud,
                               tuple(rejected), tuple(cloud_rejected), fault)
        _warn_thin(thin, cfg.rule, warned_thin)

        # 7. The ledger charges what was actually sent, over the routes it took.
        cost = charge_outcome(world, net.channel, plan, outcome, cfg, policy, net.topology)
        del channel, net, links  # the next round draws its own: never hold two rounds' channels at once

        # 8. Metrics, logging, checkpoint.
        metrics = {"round": float(t + 1), "cloud_round": float(cloud_round)}
        metrics |= _train_metrics(results, participants)
        metrics["faults/rejected_updates"] = float(len(outcome.rejected) + len(outcome.cloud_rejected))
        metrics |= outcome.faults.metrics() | plan.metrics() | cost.as_metrics("cost/")
        previous = state.history[-1] if state.history else {}
        for key in ("cost/latency_s", "cost/energy_j", "faults/rejected_updates"):
            cum = key.replace("/", "/cum_")
            metrics[cum] = previous.get(cum, 0.0) + metrics[key]
        if (t + 1) % cfg.eval_every == 0 or t + 1 == cfg.rounds:
            metrics |= evaluate_round(fabric, world, state, cfg, policy, group_of)
        metrics["time/round_s"] = time.perf_counter() - tic
        state.history.append(metrics)
        state.round = t + 1
        for log in loggers:
            log(metrics, t + 1, plan, outcome)
        if progress is not None:
            progress(t + 1, cfg.rounds, metrics)
        last = state.round == cfg.rounds
        due = cfg.checkpoint_every and state.round % cfg.checkpoint_every == 0
        if ckpt_path is not None and fabric.global_rank == 0 and (due or last):
            save_checkpoint(ckpt_path, make_payload(state.to_dict(), rng, run_config))
    return FederationResult(state=state, history=state.history, last_plan=plan, last_outcome=outcome)


def _train_waves(fabric: Fabric, world: World, state: FederationState, placement: Mapping[int, Sequence[str]],
                 fetched: dict, groups: list[tuple[int, list[int]]], local: LocalConfig, cfg: FederationConfig,
                 seed: int, t: int) -> Iterator[tuple[int, list[tuple[int, dict, dict[str, float]]]]]:
    """2. Local training, devices sharded over ranks; every rank then holds every result.

    Edges are trained in waves of about ``max_batch_devices`` devices, so batched passes span edges;
    each edge's results are yielded (in device order) before its aggregation. A device trains from
    its own edge's and its own personal modules only, so training an edge before the previous one
    aggregated changes nothing.
    """
    limit = cfg.max_batch_devices if cfg.batched else 1
    wave: list[tuple[int, list[int]]] = []
    for i, (group, members) in enumerate(groups):
        wave.append((group, members))
        if sum(len(m) for _, m in wave) < limit and i + 1 < len(groups):
            continue
        jobs = []
        for g, devices in wave:
            for device in shard(devices, fabric):
                states = state.device_states(g, device)
                states |= {m: state.personal[j][m] for m, j in fetched.get(device, {}).items()}
                jobs.append(DeviceJob(device, world.train[device], states, tuple(placement[device]),
                                      seed=device_seed(seed, t, device)))
        trained = train_devices(fabric, world.bank, jobs, local, cfg.batched, cfg.max_batch_devices)
        mine = [(job.device, states, losses) for job, (states, losses) in zip(jobs, trained)]
        by_device = {r[0]: r for r in gather(mine, fabric)}
        for g, devices in wave:
            yield g, [by_device[d] for d in sorted(devices)]
        wave = []


def _cloud_round(
    state: FederationState, world: World, policy: TierPolicy, rule: Rule
) -> tuple[np.ndarray, list[Rejection]]:
    """Aggregate each cloud-level module over the edges that trained it; returns the bytes each edge
    sent and the edge updates the screen rejected."""
    sent = np.zeros(len(state.group_states))
    updates = []
    for group, weights in enumerate(state.pending_weight):
        for name, w in weights.items():
            if policy.to_cloud(world.bank.kind(name)) and w > 0:
                updates.append(ModuleUpdate(group, name, state.group_states[group][name], w))
                sent[group] += world.module_bytes[name]
    updates, rejected = screen_updates(updates, state.cloud_state)
    log_rejections(rejected, f"round {state.round + 1}, cloud")
    new, _ = aggregate_modules(state.cloud_state, updates, rule)
    state.cloud_state.update(new)
    for group_states in state.group_states:
        for name in new:
            group_states[name] = {k: v.clone() for k, v in new[name].items()}
    state.pending_weight = [{} for _ in state.group_states]
    return sent, rejected


def _warn_thin(thin: dict[str, int], rule: str, warned: set[str]) -> None:
    """Once a run per module: a robust rule over fewer than 3 holders cannot outvote a bad update."""
    new = {m: c for m, c in thin.items() if m not in warned}
    if new:
        log.warning("rule %s aggregates %s over fewer than 3 holders: a bad update there is not outvoted",
                    rule, ", ".join(f"{m} ({c})" for m, c in sorted(new.items())))
        warned |= set(new)


def _fetch(
    world: World, state: FederationState, participants: list[int], policy: TierPolicy, adjacency: np.ndarray
) -> dict:
    needs = {d: [m for m in eligible_modules(world, d) if not policy.shared(world.bank.kind(m))] for d in participants}
    return d2d.fetch_missing(needs, state.personal, adjacency)


def _by_group(participants: list[int], group_of: np.ndarray) -> list[tuple[int, list[int]]]:
    groups: dict[int, list[int]] = {}
    for device in participants:
        groups.setdefault(int(group_of[device]), []).append(device)
    return sorted(groups.items())


def _rule_options(cfg: FederationConfig) -> dict[str, float]:
    if cfg.rule == "trimmed_mean":
        return {"trim_fraction": cfg.trim_fraction}
    if cfg.rule == "clip":
        return {"max_norm": cfg.max_norm}
    return {}


def _draw_participants(rng: np.random.Generator, n: int, fraction: float) -> list[int]:
    if fraction >= 1.0:
        return list(range(n))
    k = max(1, int(round(fraction * n)))
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def device_seed(seed: int, round_index: int, device: int) -> int:
    """A device's seed for a round (its batches and dropout): the same in every path and process."""
    return int(np.random.SeedSequence([seed, round_index, device]).generate_state(1)[0])


def _train_metrics(results: Sequence[DeviceResult], participants: list[int]) -> dict[str, float]:
    out: dict[str, float] = {
        "participants": float(len(participants)),
        "train/modules_trained": float(sum(len(r.modules) for r in results)),
    }
    sums: dict[str, list[float]] = {}
    for r in results:
        for key, value in r.losses.items():
            sums.setdefault(key, []).append(value)
    out |= {f"train/{k}": float(np.mean(v)) for k, v in sums.items()}
    return out
