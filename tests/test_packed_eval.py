"""Packed evaluation (many models' samples in one pass, no padding) gives what each model evaluated alone gives."""

import numpy as np
import pytest
import torch
from conftest import mixed_config
from lightning.fabric import Fabric

from hffm.engine.batched_eval import EvalJob, _one, evaluate_jobs
from hffm.engine.packed_eval import evaluate_packed, plan_passes
from hffm.run import make_world


def _fabric():
    return Fabric(accelerator="cpu", devices=1)


def _jobs(world):
    """Each device's model (its own noisy copy of the bank) on its test data and, restricted, on the global set."""
    bank = world.bank
    gen = torch.Generator().manual_seed(3)
    jobs = []
    sample = world.global_test
    for d in range(world.num_devices):
        states = {name: {k: t + 0.05 * torch.randn(t.shape, generator=gen) if t.is_floating_point() else t
                         for k, t in bank.state_of([name])[name].items()} for name in bank.names()}
        test = world.test[d]
        jobs.append(EvalJob(states, tuple(test.modality_names), tuple(test.task_names), test))
        mods = tuple(m for m in sample.modality_names if m in world.parts[d].modalities)
        tasks = tuple(t for t in sample.task_names if t in world.parts[d].tasks)
        jobs.append(EvalJob(states, mods, tasks, sample, restrict=True))
    full = jobs[0].states
    jobs.append(EvalJob(full, tuple(sample.modality_names), tuple(sample.task_names), sample))
    jobs.append(EvalJob(full, ("text",), ("object",), sample, restrict=True))
    return jobs


@pytest.mark.parametrize(("layers", "pass_samples", "max_jobs"), [(1, 1024, 64), (2, 100, 3)])
def test_packed_evaluation_equals_each_model_evaluated_alone(layers, pass_samples, max_jobs):
    world = make_world(mixed_config(layers))
    jobs = _jobs(world)
    assert len({(j.modalities, j.tasks) for j in jobs}) >= 5
    assert any(not p.all() for p in world.global_test.present.values())  # restrict drops some samples
    packed = evaluate_packed(_fabric(), world.bank, jobs, max_jobs, pass_samples)
    regression = 0
    for i, (job, got) in enumerate(zip(jobs, packed)):
        alone = _one(_fabric(), world.bank, job, 256)
        assert got.keys() == alone.keys(), i
        for key in alone:
            assert got[key] == pytest.approx(alone[key], abs=1e-5), (i, key)
        regression += any(k.endswith("/mae") for k in alone)
    assert regression > 0  # a continuous metric checks the outputs, not only their argmax
    if layers > 1:
        return
    mapped = evaluate_jobs(_fabric(), world.bank, jobs, packed=False)  # the vmapped passes, as before
    for got, old in zip(packed, mapped):
        assert got.keys() == old.keys()
        for key in old:
            assert got[key] == pytest.approx(old[key], abs=1e-5), key


def test_passes_hold_at_most_the_budget_and_every_sample_once():
    sizes = [5, 0, 12, 3]
    assert [len(p) for p in plan_passes(sizes, [0, 2, 3], 100, max_jobs=2)] == [2, 1]
    passes = plan_passes(sizes, [2, 0, 1, 3], pass_samples=7)
    assert all(sum(end - first for _, first, end in p) <= 7 for p in passes)
    assert [sum(end - first for _, first, end in p) for p in passes] == [7, 7, 6]
    covered = {job: [] for job in range(4)}
    for p in passes:
        assert len({job for job, _, _ in p}) == len(p)  # a job once a pass
        for job, first, end in p:
            covered[job] += list(range(first, end))
    assert all(covered[j] == list(range(sizes[j])) for j in range(4))
    assert np.array_equal([job for p in passes for job, _, _ in p], [2, 2, 0, 0, 3])


def test_threads_run_whole_passes_and_give_one_threads_numbers_exactly():
    """With 2 torch threads the passes run on 2 workers, one intra-op thread each (hffm/engine/workers.py): the
    metrics are bit-equal to one thread's, and torch's thread count is restored."""
    world = make_world(mixed_config())
    jobs = _jobs(world)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = evaluate_packed(_fabric(), world.bank, jobs, 4, 60)
        torch.set_num_threads(2)
        assert evaluate_packed(_fabric(), world.bank, jobs, 4, 60) == one
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_workers_keep_the_callers_autograd_mode():
    from hffm.engine.workers import run_units

    x = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        assert run_units(lambda _: (x * 2).requires_grad, [0, 1], 2) == [False, False]
    assert run_units(lambda _: (x * 2).requires_grad, [0, 1], 2) == [True, True]
