"""Batched local training gives what one-device-at-a-time training gives."""

import dataclasses

import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.engine.batch_groups import Member, plan_groups
from hffm.engine.batched import train_batched
from hffm.engine.jobs import DeviceJob, LocalConfig
from hffm.engine.local import train_device
from hffm.engine.stacked_optim import StackedOptimizer
from hffm.federation.loop import run_federation
from hffm.modules.optim import OPTIMIZERS
from hffm.run import make_world


def _fabric():
    return Fabric(accelerator="cpu", devices=1)


def _assert_states_close(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], atol=atol, rtol=0, msg=f"{name}.{key}")


def _mixed(**federation):
    """5 devices an edge with different modalities and tasks (and so different batch sizes)."""
    cfg = tiny_config(rounds=3, e_agg=2, **federation)
    cfg.topology.devices_per_edge = 5
    cfg.data.benchmark.num_samples = 500
    cfg.data.partition.modality_sets = [["image"], ["text", "iq"], ["image", "text", "iq"], ["iq"]]
    cfg.data.partition.task_sets = [["object"], ["color", "snr"], ["object", "color", "modulation", "snr"],
                                    ["modulation"]]
    return cfg


D2D_MODES = {mode: {"d2d": mode} for mode in ("none", "tree", "gossip", "relay")}


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "optimizer", "atol"), [
    *[(mode, "sgd", 1e-5) for mode in sorted(D2D_MODES)],
    # Adam divides by the root of the squared-gradient average: where an element's gradient is near zero,
    # float summation order (one pass over many devices vs one per device) becomes a visible part of a step.
    ("tree", "adamw", 5e-4),
])
def test_batched_and_sequential_rounds_end_in_the_same_module_states(mode, optimizer, atol):
    cfg = _mixed(optimizer=optimizer, **D2D_MODES[mode])
    runs = {}
    for batched in (False, True):
        run = cfg.replace(federation={"batched": batched}, solver={"name": "greedy" if mode == "relay" else "none"})
        runs[batched] = run_federation(_fabric(), make_world(cfg), run)
    one, many = runs[False], runs[True]
    for a, b in zip(one.state.group_states, many.state.group_states):
        _assert_states_close(a, b, atol)
    _assert_states_close(one.state.cloud_state, many.state.cloud_state, atol)
    for h1, h2 in zip(one.history, many.history):
        assert h1.keys() == h2.keys()
        assert h1["train/modules_trained"] == h2["train/modules_trained"]
        assert h1["train/loss"] == pytest.approx(h2["train/loss"], abs=atol)
    # every tier's evaluation (batched over devices and edges, or one model at a time) agrees too
    scores = [k for k in one.history[-1] if k.startswith(("device/", "global/", "edge/"))]
    assert any("@" in k for k in scores) and any(k.startswith("global/") for k in scores)
    for key in scores:
        assert one.history[-1][key] == pytest.approx(many.history[-1][key], abs=max(atol, 1e-5) * 10), key


def test_a_device_trains_only_its_placed_modules_and_short_devices_are_masked():
    cfg = _mixed()
    world = make_world(cfg)
    bank = world.bank
    start = bank.state_of(bank.names())
    # every device is shorter than a batch; SGD with momentum, as Adam would magnify float rounding (see above)
    # the vmapped passes (packed=False; tests/test_packed.py checks the packed ones the same way)
    local = LocalConfig(steps=4, batch_size=64, lr=1e-2, weight_decay=0.1, optimizer="sgd", packed=False)
    jobs = []
    for d in range(world.num_devices):
        data = world.train[d]
        required = bank.required_modules(data.modality_names, data.task_names)
        placed = tuple(m for m in required if d % 2 == 0 or not m.startswith(("encoder/", "head/")))
        jobs.append(DeviceJob(d, data, start, placed, seed=100 + d))
    assert len({len(j.data) for j in jobs}) > 1
    batched = train_batched(_fabric(), bank, jobs, dataclasses.replace(local, max_batch_devices=3))
    for job, result in zip(jobs, batched):
        one = train_device(_fabric(), bank, job, local)
        assert result.device == one.device == job.device
        states, losses, states_one, losses_one = result.states, result.losses, one.states, one.losses
        assert list(states) == list(states_one)  # the placed modules only, in bank order
        _assert_states_close(states, states_one)
        assert losses.keys() == losses_one.keys()
        for key in losses:
            assert losses[key] == pytest.approx(losses_one[key], abs=1e-5)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_stacked_optimizer_steps_each_slice_as_its_own_optimizer(name):
    torch.manual_seed(0)
    starts = [torch.randn(3, 5, 4), torch.randn(3, 7)]  # two tensors of 3 devices in one flat buffer
    active = [torch.tensor(a, dtype=torch.bool) for a in
              ([[1, 1], [0, 1], [1, 0]], [[0, 1], [1, 1], [1, 1]], [[1, 1], [1, 1], [1, 1]], [[0, 0], [1, 1], [0, 1]])]
    grads = [[torch.randn_like(t) for t in starts] for _ in active]
    optimizer = StackedOptimizer(starts, name, lr=1e-2, weight_decay=0.1)
    for act, grad in zip(active, grads):
        optimizer.zero_grad()
        sum((t * g).sum() for t, g in zip(optimizer.tensors, grad)).backward()  # gradient d(t . g)/dt = g
        optimizer.step(act)
    for d in range(3):
        for k, start in enumerate(starts):
            alone = start[d].clone().requires_grad_(True)
            reference = OPTIMIZERS[name].make([alone], 1e-2, 0.1)
            for act, grad in zip(active, grads):
                reference.zero_grad(set_to_none=True)
                if act[d, k]:  # an inactive slice had no gradient: its own optimizer skips it
                    alone.grad = grad[k][d].clone()
                reference.step()
            assert torch.equal(alone, optimizer.tensors[k][d].detach()), (name, d, k)


def test_groups_merge_modality_sets_only_while_the_masked_tokens_cost_less_than_a_pass():
    tokens = {"image": 64, "text": 16, "iq": 16}
    small = [Member(frozenset(m), frozenset({"object"}), batch=8) for m in (["text"], ["iq"], ["text"], ["iq"])]
    assert plan_groups(small, tokens, prompt_len=2, max_devices=64) == [[0, 1, 2, 3]]  # cheap to pad each other
    big = [Member(frozenset(m), frozenset({"object"}), batch=32) for m in (["image"], ["text"])] * 20
    groups = plan_groups(big, tokens, prompt_len=2, max_devices=64)
    assert sorted(map(sorted, groups)) == [list(range(0, 40, 2)), list(range(1, 40, 2))]  # text would pay for images
    assert all(len(g) <= 7 for g in plan_groups(big, tokens, prompt_len=2, max_devices=7))
    with pytest.raises(ValueError, match="max_devices"):
        plan_groups(big, tokens, prompt_len=2, max_devices=0)
