"""``defense.validation_scope=task``: a device that scores badly on one task loses that task's modules only (its
head and prompt), not every update it sends; the per-task trust is remembered across rounds and checkpointed."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.aggregate import ModuleUpdate
from hffm.federation.defense import DefenseConfig, DefenseMemory, defend, judge_devices, judge_tasks
from hffm.federation.faults import FaultsConfig
from hffm.federation.loop import run_federation
from hffm.federation.validation import pair_evidence
from hffm.run import make_world

TASK = {"head/a": "a", "prompt/a": "a", "head/b": "b", "encoder/image": None, "adapter/0": None}


def test_pair_evidence_judges_each_task_of_a_device_alone():
    scores = {0: {"a": 0.10, "b": 0.10}, 1: {"a": 0.11, "b": 0.09}, 2: {"a": 0.09}, 3: {"a": -0.5, "b": 0.11}}
    pooled = pair_evidence(scores, 1.5)  # 7 pairs: median 0.10, MAD 0.01
    assert pooled[3, "a"] == -1.0 and pooled[3, "b"] == 1.0 and pooled[0, "a"] == 1.0
    by_task = pair_evidence(scores, 1.5, by_task=True)  # a: 4 devices; b: 3 devices, all within its spread
    assert by_task[3, "a"] == -1.0 and by_task[3, "b"] == 1.0 and (2, "b") not in by_task
    assert pair_evidence({0: {"a": 0.1}, 1: {"a": 0.2}}, 1.5) == {}  # fewer than 3 scores: no scale


def _wave() -> list:
    ref = {m: {"w": torch.zeros(4)} for m in TASK}
    return [([ModuleUpdate(d, m, {"w": torch.ones(4) * (1 + d / 10)}, 1.0) for d in range(4) for m in TASK], ref)]


def test_a_device_distrusted_on_a_task_loses_that_tasks_modules_and_keeps_the_rest():
    cfg = DefenseConfig(name="robust", clip_factor=None, min_trust=0.25, trust_decay=0.5, validation_samples=8,
                        validation_scope="task")
    memory = DefenseMemory()
    batch = _wave()
    evidence = {(d, t): 1.0 for d in range(4) for t in "ab"} | {(3, "a"): -1.0}
    out: dict = {}
    for _ in range(2):  # 1 -> 0 -> -0.5: left out from the second round on
        out = judge_tasks(batch, cfg, memory, evidence, TASK.get)
    assert out == {(3, "head/a"): -0.5, (3, "prompt/a"): -0.5}
    assert memory.task_trust["3/a"] == -0.5 and memory.task_trust["3/b"] == 1.0
    untrusted = judge_devices(batch, cfg, {}, memory)  # agreement alone: nobody's device trust falls
    assert untrusted == {}
    updates, ref = batch[0]
    judged = defend(updates, ref, cfg, {}, untrusted, out)
    assert {(r.node, r.module) for r in judged.dropped} == {(3, "head/a"), (3, "prompt/a")}
    assert all(r.reason == "defense: distrusted on the module's task" for r in judged.dropped)
    assert len(judged.kept) == len(updates) - 2  # device 3's head/b, encoder and adapter go on
    again = DefenseMemory.from_dict(memory.to_dict())  # checkpointed with the state
    assert again.task_trust == memory.task_trust and again.trust == memory.trust
    assert "task_trust" not in DefenseMemory().to_dict()  # device scope writes what it wrote before


def test_the_scope_is_checked_and_robust_leaves_out_by_task_and_device():
    from hffm.config import compose

    with pytest.raises(ValueError, match="defense.validation_scope='module': must be 'device', 'task' or 'both'"):
        DefenseConfig(validation_scope="module")
    assert compose().defense.validation_scope == "device"  # the default (robust): task and both measured in the docs
    assert compose("defense.validation_samples=0").defense.validation_samples == 0  # agreement alone still composes


def test_a_run_with_the_task_scope_keeps_per_task_trust():
    cfg = tiny_config(rounds=2, local_steps=1)
    cfg = dataclasses.replace(cfg, seed=0, faults=FaultsConfig(attack="labelflip", attack_fraction=0.25),
                              defense=DefenseConfig(name="robust", clip_factor=2.0, min_trust=0.25, norm_band=2.0,
                                                    validation_samples=32, validation_scope="task"))
    result = run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg)
    trust = result.state.defense["task_trust"]
    assert trust and all(-1.0 <= v <= 1.0 for v in trust.values())
    assert all(v == v for v in result.history[-1].values())


def test_scope_both_leaves_out_a_device_bad_on_every_task_and_only_the_task_of_one_bad_on_one():
    from types import SimpleNamespace

    from hffm.federation.loop import _validation_evidence

    world = SimpleNamespace(bank=SimpleNamespace(tags=lambda m: {"task": TASK[m]} if TASK[m] else {}))
    scores = {d: {"a": 0.10 + d / 100, "b": 0.10 + d / 200} for d in range(5)} | {3: {"a": -0.5, "b": 0.10},
                                                                                   4: {"a": -0.5, "b": -0.5}}
    batch = _wave()
    batch[0][0].extend(ModuleUpdate(4, m, {"w": torch.ones(4)}, 1.0) for m in TASK)
    for scope in ("device", "task", "both"):
        cfg = DefenseConfig(name="robust", min_trust=0.25, trust_decay=0.0, validation_samples=8,
                            validation_scope=scope)
        validated, left_out = _validation_evidence(scores, cfg, batch, DefenseMemory(), world)
        if scope == "device":  # the mean score over tasks: device 3's is as low as 4's relative to the wave
            assert left_out == {} and validated is not None and validated[3] == validated[4] == -1.0
        elif scope == "task":  # agreement alone for the device trust; each bad task's modules left out
            assert validated is None and set(left_out) == {(3, "head/a"), (3, "prompt/a"), (4, "head/a"),
                                                           (4, "prompt/a"), (4, "head/b")}
        else:  # the mean of the tasks' evidence: device 3 (bad on one of two) 0, device 4 (bad on both) -1
            assert validated is not None and validated[3] == 0.0 and validated[4] == -1.0 and validated[0] == 1.0
            assert (3, "head/a") in left_out and (3, "head/b") not in left_out
