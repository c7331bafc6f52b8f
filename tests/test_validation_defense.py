"""The validation evidence against label flipping: the aggregator's own fresh samples, a score that ignores a
class-prior shift but not a wrong input-to-label mapping, and its path into the per-device trust."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.data.benchmark import make_benchmark
from hffm.federation.aggregate import ModuleUpdate
from hffm.federation.defense import DefenseConfig, DefenseMemory, judge_devices
from hffm.federation.faults import FaultsConfig
from hffm.federation.loop import initial_state, run_federation, tier_policy
from hffm.federation.validation import (
    SPREAD,
    label_shares,
    mapping_gain,
    reported_shares,
    server_validation_set,
    task_evidence,
    task_gains,
    validation_evidence,
    validation_scores,
    wave_candidates,
)
from hffm.run import make_world

FABRIC = Fabric(accelerator="cpu", devices=1)


def test_a_prior_shift_gains_nothing_a_right_mapping_gains_and_a_flipped_one_loses():
    torch.manual_seed(0)
    y = torch.arange(4).repeat(8)
    before = {"t": torch.randn(32, 4)}
    shifted = {"t": before["t"] + torch.tensor([3.0, 0.0, 0.0, -1.0])}  # a skewed device's prior, no mapping
    right = {"t": before["t"] + 2.0 * torch.nn.functional.one_hot(y, 4)}
    flipped = {"t": before["t"] + 2.0 * torch.nn.functional.one_hot(3 - y, 4)}
    targets = {"t": y}
    assert mapping_gain(before, shifted, targets) == pytest.approx(0.0, abs=1e-6)  # float32 logits
    assert mapping_gain(before, right, targets) > 0.5 > -0.5 > mapping_gain(before, flipped, targets)
    missing = {"t": torch.full((32,), -100)}
    assert mapping_gain(before, right, missing) == 0.0


def test_with_label_shares_each_class_counts_by_the_devices_share_of_it():
    """A one-class honest device (class 0) that teaches class 0 and muddles the others is judged on class 0; a
    flipper that trains class 3's labels on class 0's inputs (reporting class 3) loses on class 3's samples."""
    torch.manual_seed(0)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    before = {"t": torch.randn(10, 4)}
    change = torch.zeros(10, 4)
    change[y == 0, 0] = 2.0  # class 0 samples: more of class 0
    change[y == 1, 2] = 1.0  # noise on the others
    after = {"t": before["t"] + change}
    own = task_gains(before, after, {"t": y})["t"]
    held = task_gains(before, after, {"t": y}, {"t": torch.tensor([1.0, 0, 0, 0]).numpy()})["t"]
    plain = (torch.log_softmax(after["t"].double(), -1) - torch.log_softmax(before["t"].double(), -1))
    plain = plain - plain.mean(0, keepdim=True)
    assert held == pytest.approx(float(plain[y == 0, 0].mean())) and held > own  # class 0's samples alone
    shares = torch.tensor([0.5, 0.0, 0.0, 0.5]).numpy()  # each class's mean gain, weighted by the shares
    assert task_gains(before, after, {"t": y}, {"t": shares})["t"] == pytest.approx(
        0.5 * float(plain[y == 0, 0].mean()) + 0.5 * float(plain[y == 3, 3].mean()))
    assert task_gains(before, after, {"t": y}, {"u": shares}) == {"t": pytest.approx(own)}  # no shares: every sample
    absent = task_gains(before, after, {"t": torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 0, 1])}, {"t": [0, 0, 0, 1.0]})
    assert absent == {}  # the device's class has no validation sample: the task gives no evidence
    flip = torch.zeros(10, 4)
    flip[y == 0, 3] = 2.0  # class 0's inputs taught as class 3
    flipped = {"t": before["t"] + flip}
    assert task_gains(before, flipped, {"t": y}, {"t": torch.tensor([0, 0, 0, 1.0]).numpy()})["t"] < 0


def test_the_shares_are_the_labels_a_device_trains_on_flipped_for_the_flippers():
    world = make_world(tiny_config())
    honest = reported_shares(world)
    assert set(honest) == set(range(world.num_devices))
    for d, data in enumerate(world.train):
        for task, share in honest[d].items():
            y = data.targets[task]
            y = y[y >= 0]
            assert share == pytest.approx(torch.bincount(y.long(), minlength=len(share)).numpy() / len(y))
            assert share.sum() == pytest.approx(1.0)
    flipped = reported_shares(world, frozenset({0}))
    assert all(flipped[0][t] == pytest.approx(honest[0][t][::-1]) for t in honest[0])  # c -> C - 1 - c
    assert all(flipped[1][t] == pytest.approx(honest[1][t]) for t in honest[1])
    assert label_shares(world.train[0]).keys() == honest[0].keys()


def test_validation_evidence_is_relative_to_the_wave_and_clamped():
    assert validation_evidence({1: 0.01, 2: 0.02}) == {}  # too few to give a scale
    assert validation_evidence({1: 0.0, 2: 0.0, 3: 0.0}) == {}
    ev = validation_evidence({1: 0.01, 2: 0.02, 3: 0.0, 4: -0.02, 5: -0.05})  # median 0, MAD 0.02
    assert ev == pytest.approx({1: 1.0, 2: 1.0, 3: 1.0, 4: 1 - 0.02 / (SPREAD * 0.02), 5: 1 - 0.05 / (SPREAD * 0.02)})
    assert SPREAD == 1.5 and ev[5] < 0 < ev[4]


def test_task_evidence_compares_a_device_with_the_devices_of_the_same_task():
    # Task b gains ten times less than task a for everyone: pooled, the b-only devices (4, 5, 6) look bad.
    scores = {0: {"a": 0.10}, 1: {"a": 0.12}, 2: {"a": 0.08}, 3: {"a": 0.11},
              4: {"b": 0.010}, 5: {"b": 0.012}, 6: {"b": 0.008}}
    pooled = task_evidence(scores, 1.5)
    assert pooled == validation_evidence({d: next(iter(g.values())) for d, g in scores.items()}, 1.5)
    assert max(pooled[d] for d in (4, 5, 6)) < 0 < min(pooled[d] for d in (0, 1, 2, 3))
    by_task = task_evidence(scores, 1.5, by_task=True)  # a: median 0.105, MAD 0.01; b: median 0.010, MAD 0.002
    assert by_task == pytest.approx({0: 1 - 0.5 / 1.5, 1: 1.0, 2: 1 - 2.5 / 1.5, 3: 1.0, 4: 1.0, 5: 1.0, 6: 1 - 1 / 1.5})
    few = {**scores, 0: {"a": 0.10, "c": 0.0}, 1: {"a": 0.12, "c": 0.5}}  # c: too few devices to judge
    assert task_evidence(few, 1.5, by_task=True) == by_task


def test_task_gains_are_the_mapping_gain_task_by_task():
    torch.manual_seed(1)
    y = torch.arange(4).repeat(8)
    before = {"t": torch.randn(32, 4), "u": torch.randn(32, 4)}
    after = {"t": before["t"] + 2.0 * torch.nn.functional.one_hot(y, 4), "u": before["u"] + torch.randn(32, 4)}
    gains = task_gains(before, after, {"t": y, "u": y})
    assert set(gains) == {"t", "u"} and gains["t"] > 0.5
    assert mapping_gain(before, after, {"t": y, "u": y}) == pytest.approx((gains["t"] + gains["u"]) / 2)
    assert task_gains(before, after, {"t": y, "u": torch.full((32,), -1)}) == {"t": gains["t"]}  # unlabelled: none


def test_the_validation_set_is_fresh_benchmark_samples_and_only_for_the_benchmark(caplog):
    cfg = tiny_config()
    on = DefenseConfig(min_trust=0.25, validation_samples=32, validation_fallback=False)
    a = server_validation_set(cfg.data.benchmark, "benchmark", 0, on)
    assert len(a) == 32 and torch.equal(a.inputs["iq"], server_validation_set(cfg.data.benchmark, "benchmark", 0,
                                                                               on).inputs["iq"])
    pool = make_benchmark(cfg.data.benchmark, 0)  # everything the devices and the test set are drawn from
    assert not any(torch.equal(a.inputs["iq"][0], row) for row in pool.inputs["iq"])
    assert server_validation_set(cfg.data.benchmark, "benchmark", 0, DefenseConfig.screen()) is None  # off
    with pytest.raises(ValueError, match="defense.validation_samples=32 needs a server validation set.*'hapt' has none"
                                         ".*set defense.validation_samples=0"):
        server_validation_set(cfg.data.benchmark, "hapt", 0, on)
    with pytest.raises(ValueError, match="defense.validation_samples=-1"):
        DefenseConfig(min_trust=0.25, validation_samples=-1)
    with pytest.raises(ValueError, match="needs defense.min_trust"):
        DefenseConfig(min_trust=None, norm_band=None, validation_samples=8)
    with pytest.raises(ValueError, match="defense.validation_by_task=true needs defense.validation_samples > 0"):
        dataclasses.replace(DefenseConfig.screen(), validation_by_task=True)
    with pytest.raises(ValueError, match="defense.validation_spread=0"):
        DefenseConfig(min_trust=0.25, validation_samples=8, validation_spread=0)
    with pytest.raises(ValueError, match="defense.validation_classes='some': must be 'all', 'held', 'inferred' or 'checked'"):
        DefenseConfig(min_trust=0.25, validation_samples=8, validation_classes="some")


def test_without_a_validation_set_the_fallback_record_warns_how_to_provide_one(caplog):
    fallback = DefenseConfig(name="robust", min_trust=0.25, validation_samples=32, validation_fallback=True)
    with caplog.at_level("WARNING", logger="hffm.federation.validation"):
        assert server_validation_set(None, "easyvqa", 0, fallback) is None  # agreement alone
    [warning] = [r.getMessage() for r in caplog.records]
    assert "defense=robust" in warning and "'easyvqa' has none" in warning and "label flipping" in warning
    assert "run on data.source=benchmark" in warning and "defense.validation_samples=0" in warning


def test_every_sender_with_a_classification_task_is_scored_and_an_unchanged_model_scores_zero():
    cfg = tiny_config()
    world = make_world(cfg)
    state = initial_state(world, tier_policy(cfg.federation))
    data = server_validation_set(cfg.data.benchmark, "benchmark", 0, DefenseConfig(min_trust=0.25,
                                                                                    validation_samples=64))
    leaving = []
    for d in range(world.num_devices):
        group = int(world.topology.device_edge[d])
        heads = [m for m in world.bank.required_modules(world.parts[d].modalities, world.parts[d].tasks)
                 if m.startswith("head/")]
        leaving.append((group, [ModuleUpdate(d, m, state.group_states[group][m], 1.0) for m in heads]))
    scores = validation_scores(FABRIC, world.bank, wave_candidates(world, state, leaving), data)
    classifies = {d for d in range(world.num_devices)
                  if any(world.bank.tasks[t].kind == "classification" for t in world.parts[d].tasks)}
    assert classifies and set(scores) == classifies and all(s == 0.0 for s in scores.values())  # nothing changed


def test_packed_scores_equal_each_model_in_its_own_pass():
    """The packed passes score every device as one forward pass per model does (float noise apart), on a world of
    mixed modality and task sets where devices share their edge's received states and send different updates."""
    from conftest import mixed_config

    cfg = mixed_config(trunk_layers=2)
    world = make_world(cfg)
    state = initial_state(world, tier_policy(cfg.federation))
    data = server_validation_set(cfg.data.benchmark, "benchmark", 0, DefenseConfig(min_trust=0.25,
                                                                                    validation_samples=48))
    gen = torch.Generator().manual_seed(0)
    leaving = []
    for d in range(world.num_devices):
        group = int(world.topology.device_edge[d])
        sent = world.bank.required_modules(world.parts[d].modalities, world.parts[d].tasks)[d % 3::3]  # a share
        leaving.append((group, [ModuleUpdate(d, m, {k: v + 0.05 * torch.randn(v.shape, generator=gen)
                                                    if v.is_floating_point() else v
                                                    for k, v in state.group_states[group][m].items()}, 1.0)
                                for m in sent]))
    candidates = wave_candidates(world, state, leaving)
    packed = validation_scores(FABRIC, world.bank, candidates, data)
    alone = validation_scores(FABRIC, world.bank, candidates, data, packed=False)
    assert len(alone) >= 8 and set(packed) == set(alone)
    assert len({round(s, 4) for s in alone.values()}) > len(alone) // 2  # the updates do change the scores
    assert packed == pytest.approx(alone, abs=1e-6)


def test_validation_evidence_lowers_trust_until_the_device_is_left_out():
    cfg = DefenseConfig(name="robust", min_trust=0.25, trust_decay=0.5, validation_samples=8)
    memory = DefenseMemory()
    ref = {"m": {"w": torch.zeros(4)}}
    batch = [([ModuleUpdate(d, "m", {"w": torch.ones(4) * (1 + d / 10)}, 1.0) for d in range(4)], ref)]
    out = {}
    for _ in range(3):
        out = judge_devices(batch, cfg, {}, memory, {0: 1.0, 1: 1.0, 2: 1.0, 3: -1.0})
    assert set(out) == {3} and memory.trust[0] > 0.9


def test_a_run_with_the_validation_evidence_trains_and_keeps_trust(tmp_path):
    cfg = tiny_config(rounds=2, local_steps=1)
    cfg = dataclasses.replace(cfg, seed=0, faults=FaultsConfig(attack="labelflip", attack_fraction=0.25),
                              defense=DefenseConfig(name="robust", clip_factor=2.0, min_trust=0.25, norm_band=2.0,
                                                    validation_samples=32))
    world = make_world(cfg)
    full = run_federation(FABRIC, world, cfg, out_dir=tmp_path / "a")
    assert full.state.defense["trust"] and all(v == v for v in full.history[-1].values())


def test_defense_robust_carries_the_validation_evidence_with_a_loud_fallback():
    from hydra.errors import MissingConfigException

    from hffm.config import compose

    robust = compose("defense=robust").defense
    assert robust.min_trust is not None and robust.validation_samples > 0 and robust.validation_fallback
    assert robust.validation_classes == "held"  # judged on the classes each device learns
    assert compose().defense == robust  # the default
    assert compose("defense=screen").defense.validation_samples == 0
    with pytest.raises(MissingConfigException, match="robust"):  # one record: the old name is gone, the error lists it
        compose("defense=validated")
