"""The FedAvg job of ``fedavg_job`` as a Flower app: a ClientApp and a ServerApp factory (needs ``.[bench]``).

Importable by Ray's workers (Flower passes the driver's ``sys.path`` to them, so ``experiments/`` is on
theirs): Ray pickles a ClientApp defined in ``__main__`` with that module's globals instead.

- The ClientApp trains client ``partition-id`` (= hffm's device index) from the global modules it is
  sent, with ``fedavg_job.local_train``, and replies with the modules it trained, its sample count, its
  last loss and a fingerprint of its frozen trunk. Each Ray actor builds the job's world once (data,
  partition and bank from the job's seed) and serves all the clients it is given from it.
- ``MaskedFedAvg`` is Flower's FedAvg (all clients, no federated evaluation) whose aggregation is per
  module over the clients that trained it, weighted by samples: hffm's star mode. Flower's own
  ``aggregate_arrayrecords`` needs every reply to hold every array, and averaging untouched copies of
  other clients' encoders and heads would be another algorithm. It also records each round's start
  and end, for the benchmark's timings.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from fedavg_job import JobSpec, cached_world, fedavg, flatten, local_train, tree_cpu_s, trunk_checksum, unflatten
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from hffm.federation.aggregate import ModuleStates

app = ClientApp()


def spec_of(config: ConfigRecord) -> JobSpec:
    """The JobSpec the server put in the round's config (FedAvg adds ``server-round`` beside it)."""
    names = {f.name for f in dataclasses.fields(JobSpec)}
    return JobSpec(**{k: v for k, v in config.items() if k in names})  # type: ignore[arg-type]


@app.train()
def train(msg: Message, context: Context) -> Message:
    started = time.time()  # wall clock: comparable with the server's across processes
    config = msg.content["config"]
    spec = spec_of(config)
    world = cached_world(spec)
    client = int(context.node_config["partition-id"])
    states = unflatten(msg.content["arrays"].to_torch_state_dict())
    trained, loss = local_train(world, client, states, spec.local(), int(config["server-round"]) - 1, spec.seed)
    metrics = MetricRecord({"num-examples": len(world.train[client]), "client": client, "loss": loss,
                            "trunk-checksum": trunk_checksum(world), "torch-threads": torch.get_num_threads(),
                            "started": started})
    return Message(RecordDict({"arrays": ArrayRecord.from_torch_state_dict(flatten(trained)), "metrics": metrics}),
                   reply_to=msg)


@dataclass
class FlowerRecord:
    """What the ServerApp saw: round start / end times and when the round's first client started training
    (time.time(), a clock every process shares), the final global modules."""

    round_start: dict[int, float] = field(default_factory=dict)
    round_end: dict[int, float] = field(default_factory=dict)
    first_client: dict[int, float] = field(default_factory=dict)
    cpu_start: dict[int, float] = field(default_factory=dict)
    """CPU seconds of this process and its descendants (Ray's processes among them) at a round's start / end."""
    cpu_end: dict[int, float] = field(default_factory=dict)
    final_states: ModuleStates | None = None
    client_threads: set[int] = field(default_factory=set)


class MaskedFedAvg(FedAvg):
    """FedAvg over every client each round, aggregated per module over the clients that trained it."""

    def __init__(self, spec: JobSpec, initial: ModuleStates, trunk: float, record: FlowerRecord,
                 on_round: Callable[[int, float], None]) -> None:
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=spec.clients,
                         min_available_nodes=spec.clients)
        self.spec, self.states, self.trunk, self.record, self.on_round = spec, initial, trunk, record, on_round

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.record.round_start[server_round] = time.time()
        self.record.cpu_start[server_round] = tree_cpu_s(os.getpid())
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, failed = self._check_and_log_replies(replies, is_train=True, validate=False)
        if failed or len(valid) != self.spec.clients:
            reasons = "; ".join(msg.error.reason for msg in failed[:3])
            raise RuntimeError(f"round {server_round}: {len(valid)} of {self.spec.clients} clients replied "
                               f"({len(failed)} failed: {reasons})")
        self.record.first_client[server_round] = min(float(m.content["metrics"]["started"]) for m in valid)
        results, losses = [], []
        for msg in valid:
            metrics = msg.content["metrics"]
            if abs(float(metrics["trunk-checksum"]) - self.trunk) > 1e-6 * abs(self.trunk):
                raise RuntimeError(f"client {metrics['client']} built another frozen trunk than the server "
                                   "(the job's world is not deterministic across processes)")
            weight = float(metrics["num-examples"])
            results.append((int(metrics["client"]), unflatten(msg.content["arrays"].to_torch_state_dict()), weight))
            losses.append((float(metrics["loss"]), weight))
            self.record.client_threads.add(int(metrics["torch-threads"]))
        self.states = fedavg(self.states, sorted(results, key=lambda r: r[0]))  # client order, as hffm's loop
        self.record.final_states = self.states
        self.record.round_end[server_round] = time.time()
        self.record.cpu_end[server_round] = tree_cpu_s(os.getpid())
        # Round 1 from its first client's start: before that, the round waited for Ray's actors (start-up).
        start = self.record.first_client[1] if server_round == 1 else self.record.round_start[server_round]
        self.on_round(server_round, self.record.round_end[server_round] - start)
        loss = sum(v * w for v, w in losses) / sum(w for _, w in losses)
        return ArrayRecord.from_torch_state_dict(flatten(self.states)), MetricRecord({"loss": loss})


def make_server_app(spec: JobSpec, initial: ModuleStates, trunk: float, record: FlowerRecord,
                    on_round: Callable[[int, float], None]) -> ServerApp:
    """A ServerApp running the job's rounds with ``MaskedFedAvg``; it fills ``record`` as it goes (it runs
    in a thread of the calling process under ``run_simulation``)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = MaskedFedAvg(spec, initial, trunk, record, on_round)
        strategy.start(grid=grid, initial_arrays=ArrayRecord.from_torch_state_dict(flatten(initial)),
                       num_rounds=spec.rounds, train_config=ConfigRecord(spec.as_dict()))

    return server
