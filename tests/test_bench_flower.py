"""experiments/bench_flower.py's job: the Flower side trains and averages exactly as hffm's star mode does.

The job module needs no Flower (CI does not install it); the Flower ClientApp and strategy are tested
without Ray, by calling them with real Flower messages, only where ``flwr`` is installed (``.[bench]``).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest
import torch
from lightning.fabric import Fabric

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def job():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXPERIMENTS))
        yield importlib.import_module("fedavg_job")


@pytest.fixture(scope="module")
def spec(job):
    return job.JobSpec(clients=4, rounds=1, local_steps=2, batch_size=8)


@pytest.fixture(scope="module")
def world(job, spec):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield job.build_job_world(spec)
    finally:
        torch.set_num_threads(threads)


def test_spec_checks_its_fields(job):
    with pytest.raises(ValueError, match="clients=15"):
        job.JobSpec(clients=15, rounds=2)
    with pytest.raises(ValueError, match="rounds=0"):
        job.JobSpec(clients=10, rounds=0)
    fed = job.JobSpec(clients=100, rounds=3).federation()
    assert fed.mode == "star" and fed.batched and fed.local_steps == 5 and fed.batch_size == 32
    assert fed.participation == 1.0 and fed.rule == "mean"


def test_flat_states_round_trip(job, world):
    states = world.bank.state_of(world.bank.names()[:3])
    back = job.unflatten(job.flatten(states))
    assert back.keys() == states.keys()
    assert all(torch.equal(back[m][k], v) for m, s in states.items() for k, v in s.items())
    with pytest.raises(ValueError, match="no '::'"):
        job.unflatten({"weight": torch.zeros(1)})


def test_one_round_by_hand_is_hffms_star_round(job, spec, world):
    """local_train on every client then fedavg gives hffm's sequential star round (same seeds and batches)."""
    from hffm.federation.loop import run_federation

    initial = world.bank.state_of(world.bank.names())
    results = []
    for client in range(spec.clients):
        trained, loss = job.local_train(world, client, initial, spec.local(), round_index=0, seed=spec.seed)
        assert set(trained) == set(world.bank.required_modules(world.train[client].modality_names,
                                                                world.train[client].task_names))
        assert loss > 0
        results.append((client, trained, float(world.num_samples[client])))
    by_hand = job.fedavg(initial, results)
    assert by_hand.keys() == initial.keys()
    assert any(not torch.equal(by_hand[m][k], initial[m][k]) for m in initial for k in initial[m])

    world.bank.load_states(initial)
    cfg = spec.config().replace(federation={"batched": False})
    hffm = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg).state.cloud_state
    for m in initial:
        for k in initial[m]:
            torch.testing.assert_close(by_hand[m][k], hffm[m][k], rtol=1e-5, atol=1e-6)
    world.bank.load_states(initial)
    assert 0 <= job.global_accuracy(world, by_hand)["accuracy"] <= 1


def test_missing_flower_names_the_install(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    bench = importlib.import_module("bench_flower")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flwr" else real(name, *a))
    with pytest.raises(SystemExit, match=r"pip install -e '\.\[bench\]'"):
        bench.main(["--clients", "10", "--rounds", "3"])


def test_flower_client_and_strategy_without_ray(job, spec, world):
    """The ClientApp's train and MaskedFedAvg's aggregation, called with real Flower messages."""
    pytest.importorskip("flwr")
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXPERIMENTS))
        flower = importlib.import_module("flower_job")
    initial = world.bank.state_of(world.bank.names())
    world.bank.load_states(initial)
    job.cached_world.cache_clear()
    config = ConfigRecord({**spec.as_dict(), "server-round": 1})
    if TaskIdentity._run_id is None:  # what run_simulation sets before a server creates messages
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    replies = []
    for client in range(spec.clients):
        msg = Message(RecordDict({"arrays": ArrayRecord.from_torch_state_dict(job.flatten(initial)),
                                  "config": config}), dst_node_id=client + 1, message_type=MessageType.TRAIN)
        ctx = Context(run_id=1, node_id=client + 1, node_config={"partition-id": client}, state=RecordDict(),
                      run_config={})
        replies.append(flower.train(msg, ctx))
    record = flower.FlowerRecord()
    record.round_start[1] = 0.0
    strategy = flower.MaskedFedAvg(spec, initial, job.trunk_checksum(world), record, lambda r, s: None)
    arrays, metrics = strategy.aggregate_train(1, replies)
    world.bank.load_states(initial)
    expected = job.fedavg(initial, [
        (c, job.local_train(world, c, initial, spec.local(), 0, spec.seed)[0], float(world.num_samples[c]))
        for c in range(spec.clients)])
    got = job.unflatten(arrays.to_torch_state_dict())
    for m in expected:
        for k in expected[m]:
            torch.testing.assert_close(got[m][k], expected[m][k])
    assert metrics["loss"] > 0 and record.final_states is not None
    with pytest.raises(RuntimeError, match="3 of 4 clients replied"):
        strategy.aggregate_train(1, replies[:3])


@pytest.mark.slow
def test_bench_flower_sets_passive_wait_before_torch_loads():
    """libgomp reads OMP_WAIT_POLICY once, when torch loads: the benchmark must set it first (a loaded run with
    spinning idle threads took 436 s instead of 14 s). In a fresh interpreter, with no policy in the environment."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "HFFM_KEEP_OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = os.pathsep.join([str(EXPERIMENTS.parent), str(EXPERIMENTS)])
    code = "import os, bench_flower; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
