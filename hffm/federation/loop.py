"""The round loop: devices -> (D2D) -> edges -> every E_agg rounds the cloud -> back down.

Read it top to bottom; every step of a round is a call below, in order. The plan is what was
decided, the ``RoundOutcome`` what happened; loggers only read them, they never change what happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from lightning.fabric import Fabric

import solvers
from hffm.engine import DeviceJob, LocalConfig, Trainer, TrainResult, train_devices
from hffm.federation import d2d
from hffm.federation.aggregate import ModuleUpdate, Rule, aggregate_modules, make_rule
from hffm.federation.attacks import attack_of, poisoned_trainer
from hffm.federation.charging import charge_outcome
from hffm.federation.checkpoint import (
    check_resume,
    config_dict,
    load_checkpoint,
    make_payload,
    restore_rng,
    save_checkpoint,
)
from hffm.federation.compression import compress_updates
from hffm.federation.config import FederationConfig
from hffm.federation.d2d_modes import mode_of
from hffm.federation.defense import (
    Defended,
    DefenseConfig,
    DefenseMemory,
    consensus,
    defend,
    judge_devices,
    judge_tasks,
)
from hffm.federation.distributed import gather, shard
from hffm.federation.evaluation import evaluate_round
from hffm.federation.fault_steps import edges_this_round, round_faults, send
from hffm.federation.faults import attackers
from hffm.federation.planning import plan_round
from hffm.federation.policy import TierPolicy
from hffm.federation.records import DeviceResult, Plan, RoundOutcome, Route, Transfer
from hffm.federation.screening import Rejection, log_rejections, screen_updates, thin_modules
from hffm.federation.state import FederationState
from hffm.federation.traffic import eligible_modules, round_links
from hffm.federation.validation import (
    pair_evidence,
    reported_shares,
    server_validation_set,
    task_evidence,
    validation_task_scores,
    wave_candidates,
)
from hffm.federation.world import World

if TYPE_CHECKING:
    from hffm.config import Config

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
    cfg: Config,
    *,
    out_dir: str | Path | None = None,
    loggers: Sequence[Logger] = (),
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    trainer: Trainer = train_devices,
) -> FederationResult:
    """Run ``cfg.federation.rounds`` rounds of the composed config ``cfg`` (``hffm.compose``): its federation,
    solver, faults and seed all come from that one record, so none can be left behind by a forgotten keyword.

    ``trainer``: the local-training engine (``hffm.engine.Trainer``); wrap ``train_devices`` to plug in an
    attack on the data, a defense, a profiler. ``loggers`` read each round's metrics, plan and outcome.
    """
    if not all(hasattr(cfg, k) for k in ("federation", "solver", "faults", "seed")):
        raise TypeError(
            f"run_federation(fabric, world, cfg): cfg must be the composed Config (hffm.compose(...)), which holds "
            f"federation, solver, faults and seed together; got a {type(cfg).__name__}. Passing cfg.federation alone "
            "would drop the solver and the faults: pass cfg itself, or hffm.Config(federation=..., solver=..., "
            "faults=..., seed=...)")
    fed, faults, seed = cfg.federation, cfg.faults, cfg.seed
    run_config = config_dict(cfg)  # what checkpoints carry and check on resume
    policy = tier_policy(fed)
    d2d_mode = mode_of(fed.d2d)
    rule = make_rule(fed.rule, **_rule_options(fed))
    local = LocalConfig(fed.local_steps, fed.batch_size, fed.lr, fed.weight_decay, fed.optimizer, fed.batched,
                        fed.max_batch_devices)
    group_of = policy.group_of(world.topology.device_edge)
    ckpt_path = Path(out_dir) / "checkpoints" / "federation.pt" if out_dir is not None else None
    rng = np.random.default_rng(seed)
    attacking = attackers(faults, world.num_devices, seed)
    if attacking and attack_of(faults.attack).flips_labels:
        trainer = poisoned_trainer(trainer, attacking)  # data poisoning goes through the trainer seam
    defense: DefenseConfig = getattr(cfg, "defense", None) or DefenseConfig.off()
    solver, solver_options = cfg.solver.name, {**cfg.solver.options(), **cfg.solver.solve_options()}
    model_cache = solvers.ModelCache()  # the solver's compiled models, kept across this run's rounds
    state = initial_state(world, policy)
    if fed.resume:
        payload = load_checkpoint(fed.resume)
        check_resume(payload, fed.resume, run_config, fed.rounds, state.to_dict())
        state = FederationState.from_dict(payload["state"])
        restore_rng(payload["rng"], rng)
    memory = DefenseMemory.from_dict(state.defense)
    # the aggregator's own labelled data, no device's (None: off, or none to be had and the record falls back)
    validation = server_validation_set(cfg.data.benchmark, cfg.data.source, seed, defense)
    attack = attack_of(faults.attack)
    shares = None if validation is None else reported_shares(  # the labels each device trains on, as it reports them
        world, attacking if attack.flips_labels else frozenset(), attacking if attack.misreports else frozenset())
    state.defense = memory.to_dict()  # refreshed every round: checkpoints carry what the defense remembers

    plan, outcome = None, None
    warned_thin: set[str] = set()
    while state.round < fed.rounds:
        t = state.round
        tic = time.perf_counter()
        cloud_round = policy.is_cloud_round(t)

        # 1. This round's channel draw, participants (less those of a down edge) and plan.
        channel = world.draw_channel(rng)
        net = edges_this_round(world, channel, faults, seed, t, policy)
        participants, stranded = net.keep(_draw_participants(rng, world.num_devices, fed.participation))
        now = fed.at_round(t)  # the round's top-k fraction during a warm-up: codec, planner and ledger agree
        codebook = now.codebook()
        plan = plan_round(world, channel, participants, now, policy, solver, solver_options, model_cache)
        # 1b. Faults: who drops, straggles or fails as a relay (the plan routes around them), who misses the deadline.
        plan, fault = round_faults(world, net, plan, now, faults, policy, seed, t, stranded, attacking)
        links = round_links(net.channel.topology, net.channel, now, plan)

        # 2-5, one edge at a time (trained in waves of edges), so a round holds one wave's trained modules.
        fetched = _fetch(world, state, participants, policy, net.topology.adjacency) if fed.d2d_fetch else {}
        results: list[DeviceResult] = []
        rejected: list[Rejection] = []
        defended: list[Rejection] = []
        distrusted: set[int] = set()
        overruled: set[int] = set()  # devices whose class-share report the check overruled (validation_classes=checked)
        clipped = damped = 0  # damped: distrusted devices' updates kept at defense.distrusted_weight
        thin: dict[str, int] = {}
        routes: list[Route] = []
        transfers: list[Transfer] = [
            Transfer(j, d, (m,), kind="fetch") for d, got in fetched.items() for m, j in got.items()
        ]
        groups = _by_group(participants, policy.group_of(np.maximum(net.edge, 0)))
        waves = _train_waves(fabric, world, state, plan.placement, fetched, groups, local, trainer, seed, t)
        for wave in waves:
            leaving: list[tuple[int, list[ModuleUpdate]]] = []
            for group, trained_here in wave:
                # 3. Personal modules stay on the device; shared ones become updates.
                updates: list[ModuleUpdate] = []
                for trained in trained_here:
                    device = trained.device
                    results.append(DeviceResult(device, tuple(trained.states), trained.losses, trained.samples))
                    for name, module_state in trained.states.items():
                        if policy.shared(world.bank.kind(name)):
                            updates.append(ModuleUpdate(device, name, module_state, world.num_samples[device]))
                        else:
                            state.personal.setdefault(device, {})[name] = module_state

                # 3b. What leaves the devices: nothing from dropped, failed or late ones; poison from attackers; every
                #     update through its device's codec, as the edge decodes it (error-feedback residuals stay behind).
                #     A late device did send (past the deadline, charged as wasted): its codec ran, so its residual is
                #     what it did not send, as for any other sender.
                late = [u for u in updates if u.node in set(fault.late) - fault.drawn.dropped]
                if late and not codebook.off:
                    state.keep_residuals(compress_updates(late, state.group_states[group], codebook, world.bank.kind,
                                                          plan.compression, state.residual)[1])
                updates = send(updates, fault, state.group_states[group], faults, seed, t)
                updates, kept = compress_updates(updates, state.group_states[group], codebook, world.bank.kind,
                                                 plan.compression, state.residual)
                state.keep_residuals(kept)

                # 4a. Screening: a non-finite, misshapen or (with max_update_norm) too large update goes no further.
                updates, refused = screen_updates(updates, state.group_states[group], fed.max_update_norm)
                log_rejections(refused, f"round {t + 1}, edge {group}")
                rejected += refused
                leaving.append((group, updates))

            # 4b. Defense: each update judged against the wave's consensus (median direction and norm per module).
            batches = [(u, state.group_states[g]) for g, u in leaving]
            agreed = consensus(batches, defense, memory, "edge")
            checked = defense.validation_classes == "checked"
            mismatches: dict[int, dict[str, float]] | None = {} if checked else None
            scores = None if validation is None else validation_task_scores(
                fabric, world.bank, wave_candidates(world, state, leaving, shares), validation,
                by_class=defense.validation_classes in ("held", "checked"),
                infer_shares=defense.validation_classes == "inferred",
                check=defense.validation_check if checked else None, mismatches=mismatches)
            if mismatches:
                overruled |= {d for d, m in mismatches.items() if any(v > defense.validation_check for v in m.values())}
            validated, task_out = _validation_evidence(scores, defense, batches, memory, world)
            untrusted = judge_devices(batches, defense, agreed, memory, validated)  # each device by all its updates
            distrusted |= set(untrusted)
            for group, updates in leaving:
                judged = defend(updates, state.group_states[group], defense, agreed, untrusted, task_out)
                updates, defended, clipped = judged.kept, defended + judged.dropped, clipped + judged.clipped
                damped += judged.damped

                # 4c. D2D in the configured mode (none, relay, tree or gossip): what reaches the edge, and how.
                sent = d2d_mode.exchange(updates, links)
                routes += sent.routes
                transfers += sent.transfers

                # 5. Edge aggregation: masked, per module, over the updates that reached the edge.
                thin |= thin_modules(sent.updates, fed.rule)
                new, weight = aggregate_modules(state.group_states[group], sent.updates, rule)
                state.group_states[group].update(new)
                for name, w in weight.items():
                    state.pending_weight[group][name] = state.pending_weight[group].get(name, 0.0) + w

        # 6. Every E_agg rounds the cloud aggregates the edges (per module, masked) and broadcasts.
        edge_to_cloud, cloud_rejected = np.zeros(len(state.group_states)), list[Rejection]()
        cloud_defended: list[Rejection] = []
        if cloud_round:
            edge_to_cloud, cloud_rejected, cloud_judged = _cloud_round(state, world, policy, rule, defense, memory)
            cloud_defended += cloud_judged.dropped
            clipped += cloud_judged.clipped
        outcome = RoundOutcome(t, tuple(results), tuple(routes), tuple(transfers), cloud_round, edge_to_cloud,
                               tuple(rejected), tuple(cloud_rejected), fault, tuple(defended), clipped,
                               tuple(cloud_defended))
        _warn_thin(thin, fed.rule, warned_thin)

        # 7. The ledger charges what was actually sent, over the routes it took.
        cost = charge_outcome(world, net.channel, plan, outcome, now, policy, net.topology)
        del channel, net, links  # the next round draws its own: never hold two rounds' channels at once

        # 8. Metrics, logging, checkpoint.
        state.defense = memory.to_dict()
        metrics = {"round": float(t + 1), "cloud_round": float(cloud_round)}
        metrics |= _train_metrics(results, participants, {r.node for r in outcome.rejected})
        metrics["faults/rejected_updates"] = float(len(outcome.rejected) + len(outcome.cloud_rejected))
        metrics["defense/dropped_updates"] = float(len(outcome.defended) + len(outcome.cloud_defended))
        metrics["defense/cloud_dropped_updates"] = float(len(outcome.cloud_defended))
        metrics["defense/distrusted_devices"] = float(len(distrusted))
        if defense.validation_classes == "checked":
            metrics["defense/overruled_reports"] = float(len(overruled))
        metrics["defense/clipped_updates"] = float(outcome.clipped)
        if defense.distrusted_weight > 0:
            metrics["defense/damped_updates"] = float(damped)
        metrics |= outcome.faults.metrics() | plan.metrics() | cost.as_metrics("cost/")
        previous = state.history[-1] if state.history else {}
        for key in ("cost/latency_s", "cost/energy_j", "faults/rejected_updates", "faults/stragglers", "faults/dropped",
                    "defense/dropped_updates"):
            cum = key.replace("/", "/cum_")
            metrics[cum] = previous.get(cum, 0.0) + metrics[key]
        if (t + 1) % fed.eval_every == 0 or t + 1 == fed.rounds:
            metrics |= evaluate_round(fabric, world, state, fed, policy, group_of)
        _warn_losses(outcome, len(participants))
        metrics["time/round_s"] = time.perf_counter() - tic
        state.history.append(metrics)
        state.round = t + 1
        for log in loggers:
            log(metrics, t + 1, plan, outcome)
        if progress is not None:
            progress(t + 1, fed.rounds, metrics)
        last = state.round == fed.rounds
        due = fed.checkpoint_every and state.round % fed.checkpoint_every == 0
        if ckpt_path is not None and fabric.global_rank == 0 and (due or last):
            save_checkpoint(ckpt_path, make_payload(state.to_dict(), rng, run_config))
    return FederationResult(state=state, history=state.history, last_plan=plan, last_outcome=outcome)


def _validation_evidence(
    scores: Mapping[int, Mapping[str, float]] | None, defense: DefenseConfig, batches: Sequence[tuple],
    memory: DefenseMemory, world: World,
) -> tuple[dict[int, float] | None, dict[tuple[int, str], float]]:
    """(device -> validation evidence for its trust, (device, module) -> task trust of the updates left out for
    their task), as ``defense.validation_scope`` says (``scores``: ``validation_task_scores``; None: off)."""
    if scores is None:
        return None, {}
    if defense.validation_scope == "device":
        return task_evidence(scores, defense.validation_spread, defense.validation_by_task), {}
    pairs = pair_evidence(scores, defense.validation_spread, defense.validation_by_task)
    left_out = judge_tasks(batches, defense, memory, pairs, lambda m: world.bank.tags(m).get("task"))
    if defense.validation_scope == "task":
        return None, left_out
    by_device: dict[int, list[float]] = {}
    for (device, _), e in pairs.items():
        by_device.setdefault(device, []).append(e)
    return {d: float(np.mean(es)) for d, es in by_device.items()}, left_out


def _train_waves(fabric: Fabric, world: World, state: FederationState, placement: Mapping[int, Sequence[str]],
                 fetched: dict, groups: list[tuple[int, list[int]]], local: LocalConfig, trainer: Trainer,
                 seed: int, t: int) -> Iterator[list[tuple[int, list[TrainResult]]]]:
    """2. Local training, devices sharded over ranks; every rank then holds every result.

    Edges are trained in waves of about ``max_batch_devices`` devices (batched or not: the defense's consensus
    is taken over a wave), so batched passes span edges; a wave's results are yielded per edge (in device
    order) before any of its edges aggregates. A device trains from its own edge's and its own personal modules
    only, so training an edge before the previous one aggregated changes nothing.
    """
    limit = local.max_batch_devices
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
        trained = trainer(fabric, world.bank, jobs, local)
        if [r.device for r in trained] != [j.device for j in jobs]:
            name = getattr(trainer, "__name__", trainer)
            raise RuntimeError(f"trainer {name!r} must return one TrainResult per job, in "
                               f"job order: got devices {[r.device for r in trained]} for {[j.device for j in jobs]}")
        by_device = {r.device: r for r in gather(trained, fabric)}
        yield [(g, [by_device[d] for d in sorted(devices)]) for g, devices in wave]
        wave = []


def _cloud_round(
    state: FederationState, world: World, policy: TierPolicy, rule: Rule, defense: DefenseConfig,
    memory: DefenseMemory,
) -> tuple[np.ndarray, list[Rejection], Defended]:
    """Aggregate each cloud-level module over the edges that trained it (edges as the defense's nodes); returns
    the bytes each edge sent, the edge updates the screen rejected and what the defense did."""
    sent = np.zeros(len(state.group_states))
    updates = []
    for group, weights in enumerate(state.pending_weight):
        for name, w in weights.items():
            if policy.to_cloud(world.bank.kind(name)) and w > 0:
                updates.append(ModuleUpdate(group, name, state.group_states[group][name], w))
                sent[group] += world.module_bytes[name]
    updates, rejected = screen_updates(updates, state.cloud_state)
    log_rejections(rejected, f"round {state.round + 1}, cloud")
    judged = defend(updates, state.cloud_state, defense, consensus([(updates, state.cloud_state)], defense, memory,
                                                                  "cloud"))
    new, _ = aggregate_modules(state.cloud_state, judged.kept, rule)
    state.cloud_state.update(new)
    for group_states in state.group_states:
        for name in new:
            group_states[name] = {k: v.clone() for k, v in new[name].items()}
    state.pending_weight = [{} for _ in state.group_states]
    return sent, rejected, judged


def _warn_losses(outcome: RoundOutcome, participants: int) -> None:
    """Loud faults: a round that loses more than half of its participants' updates says why, with the counts."""
    f = outcome.faults
    causes = {"dropped": len(f.drawn.dropped), "late (deadline)": len(f.late),
              "failed relays": len(f.drawn.failed_relays),
              "rejected by the screen": len({r.node for r in outcome.rejected}),
              "dropped by the defense": len({r.node for r in outcome.defended})}
    lost = len(f.silent | {r.node for r in outcome.rejected})
    if participants and lost > participants / 2:
        named = ", ".join(f"{n} {what}" for what, n in causes.items() if n)
        log.warning("round %d lost the updates of %d of its %d participants (%s)", outcome.round + 1, lost,
                    participants, named)


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


def _train_metrics(results: Sequence[DeviceResult], participants: list[int], rejected: set[int]) -> dict[str, float]:
    """Mean losses of the devices whose updates were accepted (``train/...``), and apart those of devices whose
    updates the screen rejected (``train_rejected/...``: a device with NaN inputs does not turn train/loss NaN)."""
    out: dict[str, float] = {
        "participants": float(len(participants)),
        "train/modules_trained": float(sum(len(r.modules) for r in results)),
        "train/samples": float(sum(r.samples for r in results)),
    }
    for prefix, keep in (("train", lambda d: d not in rejected), ("train_rejected", lambda d: d in rejected)):
        sums: dict[str, list[float]] = {}
        for r in results:
            if keep(r.device):
                for key, value in r.losses.items():
                    sums.setdefault(key, []).append(value)
        out |= {f"{prefix}/{k}": float(np.mean(v)) for k, v in sums.items()}
    return out
