"""The devices' global evaluation sample: seeded, nested in the edges' sample, the same every round."""

import numpy as np
import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.config import FederationConfig
from hffm.federation.evaluation import evaluate_round, evaluation_jobs
from hffm.federation.loop import initial_state, tier_policy
from hffm.run import make_world


def _rows(data):
    """Each sample as bytes of all its inputs (to find it in another dataset)."""
    parts = [data.inputs[m].reshape(len(data), -1).float().numpy() for m in sorted(data.inputs)]
    return [row.tobytes() for row in np.concatenate(parts, axis=1)]


def _world(**federation):
    cfg = tiny_config(**federation)
    cfg.data.benchmark.num_samples = 1000  # a 200-sample global test set
    return cfg, make_world(cfg)


def test_device_sample_is_a_seeded_subsample_of_the_evaluation_sample():
    _, world = _world()
    sample = world.global_sample(150)
    small = world.device_sample(40, 150)
    assert len(sample) == 150 and len(small) == 40
    assert set(_rows(small)) <= set(_rows(sample))
    assert world.device_sample(40, 150) is small  # one draw a run: every round sees the same samples
    _, again = _world()
    assert _rows(again.device_sample(40, 150)) == _rows(small)  # same seed, same samples
    assert world.device_sample(0, 150) is sample and world.device_sample(500, 150) is sample
    assert world.device_sample(0, 0) is world.global_test


def test_the_devices_global_jobs_use_the_device_sample_and_the_edges_the_whole_sample():
    cfg, world = _world(eval_samples=150, eval_device_samples=40)
    fed = cfg.federation
    policy = tier_policy(fed)
    group_of = policy.group_of(world.topology.device_edge)
    jobs = evaluation_jobs(world, initial_state(world, policy), fed, policy, group_of,
                           Fabric(accelerator="cpu", devices=1))
    assert len(jobs.global_) == len(world.eval_devices) == 4
    assert all(job.data is world.device_sample(40, 150) for job in jobs.global_)
    assert all(job.data is world.global_sample(150) for job in jobs.edge)
    assert len(jobs.edge) == 2 * jobs.per_edge


def test_the_default_leaves_a_run_with_a_small_test_set_unchanged():
    cfg, world = _world()
    fed = cfg.federation
    assert fed.eval_device_samples >= len(world.global_test)  # 200 global test samples
    policy = tier_policy(fed)
    group_of = policy.group_of(world.topology.device_edge)
    state = initial_state(world, policy)
    fabric = Fabric(accelerator="cpu", devices=1)
    torch.manual_seed(0)
    default = evaluate_round(fabric, world, state, fed, policy, group_of)
    fed.eval_device_samples = 0
    full = evaluate_round(fabric, world, state, fed, policy, group_of)
    assert default == full
    fed.eval_device_samples = 50
    fewer = evaluate_round(fabric, world, state, fed, policy, group_of)
    assert {k: v for k, v in fewer.items() if not k.startswith("global/") and k != "accuracy"} == \
        {k: v for k, v in full.items() if not k.startswith("global/") and k != "accuracy"}
    assert fewer.keys() == full.keys() and fewer != full


def test_a_negative_device_sample_names_the_field():
    with pytest.raises(ValueError, match="federation.eval_device_samples=-1: must be >= 0"):
        FederationConfig(eval_device_samples=-1)


def test_identical_jobs_run_once_and_get_what_they_would_alone(monkeypatch):
    import hffm.engine.batched_eval as batched_eval

    cfg = tiny_config(mode="star")
    cfg.topology.devices_per_edge = 4  # 8 devices, all holding the cloud's modules
    cfg.data.partition.modality_sets = [["image"], ["image", "text", "iq"]]
    cfg.data.partition.task_sets = [["object"], ["object", "color", "modulation", "snr"]]
    world = make_world(cfg)
    fed = cfg.federation
    policy = tier_policy(fed)
    group_of = policy.group_of(world.topology.device_edge)
    fabric = Fabric(accelerator="cpu", devices=1)
    jobs = evaluation_jobs(world, initial_state(world, policy), fed, policy, group_of, fabric).global_
    ran = []
    real = batched_eval._evaluate_unique
    monkeypatch.setattr(batched_eval, "_evaluate_unique", lambda f, b, js, *a: ran.append(len(js)) or real(f, b, js, *a))
    shared = batched_eval.evaluate_jobs(fabric, world.bank, jobs)
    assert ran == [len({(j.modalities, j.tasks) for j in jobs})] and ran[0] < len(jobs)
    copies = [batched_eval.EvalJob({m: {k: t.clone() for k, t in s.items()} for m, s in j.states.items()},
                                   j.modalities, j.tasks, j.data, j.restrict) for j in jobs]
    alone = batched_eval.evaluate_jobs(fabric, world.bank, copies)
    assert ran[-1] == len(jobs)
    assert [a.keys() for a in alone] == [s.keys() for s in shared]
    for a, s in zip(alone, shared):
        assert s == pytest.approx(a, abs=1e-6)
