"""The round loop: devices -> (D2D) -> edges -> every E_agg rounds the cloud -> back down.

Read it top to bottom; every step of a round is a call below, in order. Loggers only receive the
metrics, they never change what happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lightning.fabric import Fabric

from hffm.federation import d2d
from hffm.federation.aggregate import ModuleUpdate, aggregate_modules, make_rule
from hffm.federation.batched import DeviceJob, train_devices
from hffm.federation.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from hffm.federation.config import FederationConfig
from hffm.federation.distributed import gather, shard
from hffm.federation.evaluation import evaluate_round
from hffm.federation.local import LocalConfig
from hffm.federation.policy import KINDS, TierPolicy
from hffm.federation.state import FederationState
from hffm.federation.wireless import RoundDecision, charge_round_costs, eligible_modules, plan_round
from hffm.federation.world import World

Logger = Callable[[dict[str, float], int, RoundDecision], None]


@dataclass
class FederationResult:
    state: FederationState
    history: list[dict[str, float]]
    last_plan: RoundDecision | None = None


def tier_policy(cfg: FederationConfig) -> TierPolicy:
    """The policy a mode implies: star is the cloud every round, local keeps everything personal."""
    if cfg.mode == "local":
        return TierPolicy(places={k: "personal" for k in KINDS}, e_agg=0)
    if cfg.mode == "star":
        return TierPolicy(places=dict(cfg.policy), e_agg=1)
    return TierPolicy(places=dict(cfg.policy), e_agg=cfg.e_agg)


def initial_state(world: World, cfg: FederationConfig) -> FederationState:
    start = world.bank.state_of(world.bank.names())
    groups = 1 if cfg.mode == "star" else world.topology.num_edges
    clone = lambda: {m: {k: v.clone() for k, v in s.items()} for m, s in start.items()}  # noqa: E731
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
    solver_options: dict[str, float] | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    loggers: Sequence[Logger] = (),
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> FederationResult:
    policy = tier_policy(cfg)
    rule = make_rule(cfg.rule, **_rule_options(cfg))
    local = LocalConfig(cfg.local_steps, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.optimizer)
    group_of = np.zeros(world.num_devices, dtype=int) if cfg.mode == "star" else world.topology.device_edge
    ckpt_path = Path(out_dir) / "checkpoints" / "federation.pt" if out_dir is not None else None
    rng = np.random.default_rng(seed)

    state = initial_state(world, cfg)
    if cfg.resume:
        payload = load_checkpoint(cfg.resume)
        state = FederationState.from_dict(payload["state"])
        restore_rng(payload["rng"], rng)

    plan = None
    while state.round < cfg.rounds:
        t = state.round
        tic = time.perf_counter()
        cloud_round = policy.is_cloud_round(t) and cfg.mode != "local"

        # 1. This round's channel draw, participants and plan (placement, relays, bandwidth).
        channel = world.draw_channel(rng)
        participants = _draw_participants(rng, world.num_devices, cfg.participation)
        plan = plan_round(world, channel, participants, cfg, solver, solver_options or {})

        # 2-5, one edge at a time (trained in waves of edges), so a round holds one wave's trained modules.
        fetched = _fetch(world, state, participants, policy) if cfg.d2d_fetch else {}
        results: list[tuple[int, tuple[str, ...], dict[str, float]]] = []
        routes: list[d2d.Route] = []
        d2d_transfers: list[d2d.Transfer] = []
        waves = _train_waves(fabric, world, state, plan.placement, fetched, _by_group(participants, group_of),
                             local, cfg, seed, t)
        for group, trained_here in waves:
            # 3. Personal modules stay on the device; shared ones become updates.
            updates: list[ModuleUpdate] = []
            for device, trained, losses in trained_here:
                results.append((device, tuple(trained), losses))
                for name, module_state in trained.items():
                    if policy.shared(world.bank.kind(name)):
                        updates.append(ModuleUpdate(device, name, module_state, world.num_samples[device]))
                    else:
                        state.personal.setdefault(device, {})[name] = module_state

            # 4. D2D: aggregation up a tree in the cluster, cooperative gossip, or the plan's relays.
            if cfg.d2d_tree:
                updates, sent, moved = d2d.tree_aggregate(
                    updates, world.topology.d2d_adj, channel.uplink_gain, channel.d2d_rate
                )
            elif cfg.d2d_gossip:
                updates, sent, moved = d2d.cooperate(updates, world.topology.d2d_adj, cfg.cons_rounds)
            else:
                updates, sent = d2d.relay(updates, plan.relay, cfg.relay_aggregates)
                moved = []
            routes += sent
            d2d_transfers += moved
            if cfg.d2d_tree:
                plan.tree_links += [(t.src, t.dst) for t in moved]

            # 5. Edge aggregation: masked, per module, over the updates that reached the edge.
            new, weight = aggregate_modules(state.group_states[group], updates, rule)
            state.group_states[group].update(new)
            for name, w in weight.items():
                state.pending_weight[group][name] = state.pending_weight[group].get(name, 0.0) + w
        d2d_transfers += [d2d.Transfer(j, d, (m,)) for d, got in fetched.items() for m, j in got.items()]

        # 6. Every E_agg rounds the cloud aggregates the edges (per module, masked) and broadcasts.
        edge_to_cloud = np.zeros(len(state.group_states))
        if cloud_round:
            edge_to_cloud = _cloud_round(state, world, policy, rule)

        # 7. The ledger charges what was actually sent, over the routes it took.
        cost = charge_round_costs(
            world, channel, plan, routes, d2d_transfers, results, cfg,
            cloud_round=cloud_round, edge_to_cloud_bytes=edge_to_cloud,
        )

        # 8. Metrics, logging, checkpoint.
        metrics = {"round": float(t + 1), "cloud_round": float(cloud_round)}
        metrics |= _train_metrics(results, participants)
        metrics |= plan.metrics() | cost.as_metrics("cost/")
        previous = state.history[-1] if state.history else {}
        for key in ("latency_s", "energy_j"):
            metrics[f"cost/cum_{key}"] = previous.get(f"cost/cum_{key}", 0.0) + metrics[f"cost/{key}"]
        if (t + 1) % cfg.eval_every == 0 or t + 1 == cfg.rounds:
            metrics |= evaluate_round(fabric, world, state, cfg, group_of)
        metrics["time/round_s"] = time.perf_counter() - tic
        state.history.append(metrics)
        state.round = t + 1
        for log in loggers:
            log(metrics, t + 1, plan)
        if progress is not None:
            progress(t + 1, cfg.rounds, metrics)
        last = state.round == cfg.rounds
        due = cfg.checkpoint_every and state.round % cfg.checkpoint_every == 0
        if ckpt_path is not None and fabric.global_rank == 0 and (due or last):
            save_checkpoint(ckpt_path, {"state": state.to_dict(), "rng": rng_state(rng), "round": state.round})
    return FederationResult(state=state, history=state.history, last_plan=plan)


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
                                      seed=_device_seed(seed, t, device)))
        trained = train_devices(fabric, world.bank, jobs, local, cfg.batched, cfg.max_batch_devices)
        mine = [(job.device, states, losses) for job, (states, losses) in zip(jobs, trained)]
        by_device = {r[0]: r for r in gather(mine, fabric)}
        for g, devices in wave:
            yield g, [by_device[d] for d in sorted(devices)]
        wave = []


def _cloud_round(state: FederationState, world: World, policy: TierPolicy, rule) -> np.ndarray:
    """Aggregate each cloud-level module over the edges that trained it; returns bytes sent per edge."""
    sent = np.zeros(len(state.group_states))
    updates = []
    for group, weights in enumerate(state.pending_weight):
        for name, w in weights.items():
            if policy.to_cloud(world.bank.kind(name)) and w > 0:
                updates.append(ModuleUpdate(group, name, state.group_states[group][name], w))
                sent[group] += world.module_bytes[name]
    new, _ = aggregate_modules(state.cloud_state, updates, rule)
    state.cloud_state.update(new)
    for group_states in state.group_states:
        for name in new:
            group_states[name] = {k: v.clone() for k, v in new[name].items()}
    state.pending_weight = [{} for _ in state.group_states]
    return sent


def _fetch(world: World, state: FederationState, participants: list[int], policy: TierPolicy) -> dict:
    needs = {d: [m for m in eligible_modules(world, d) if not policy.shared(world.bank.kind(m))] for d in participants}
    return d2d.fetch_missing(needs, state.personal, world.topology.d2d_adj)


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


def _device_seed(seed: int, round_index: int, device: int) -> int:
    return int(np.random.SeedSequence([seed, round_index, device]).generate_state(1)[0])


def _train_metrics(results, participants: list[int]) -> dict[str, float]:
    out: dict[str, float] = {
        "participants": float(len(participants)),
        "train/modules_trained": float(sum(len(trained) for _, trained, _ in results)),
    }
    sums: dict[str, list[float]] = {}
    for _, _, losses in results:
        for key, value in losses.items():
            sums.setdefault(key, []).append(value)
    out |= {f"train/{k}": float(np.mean(v)) for k, v in sums.items()}
    return out
