"""Data faults (missing modality, missing labels, label noise) on any dataset, and missing labels in losses and metrics."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import tiny_config

from hffm.data.benchmark import BenchmarkConfig, make_benchmark
from hffm.data.faults import DataFaults, apply_data_faults
from hffm.modules.heads import ClassificationHead
from hffm.spec import MISSING_LABEL, TaskSpec


@pytest.fixture(scope="module")
def devices():
    data = make_benchmark(BenchmarkConfig(num_samples=2000), seed=0)
    return [data.subset(np.arange(i, 2000, 4)) for i in range(4)]


def test_missing_labels_drop_about_that_share_of_classification_labels(devices):
    out = apply_data_faults(devices, DataFaults(missing_labels=0.4), seed=1)
    for before, after in zip(devices, out):
        for task in ("object", "color", "modulation"):
            gone = (after.targets[task] == MISSING_LABEL).float().mean().item()
            assert 0.33 < gone < 0.47
            kept = after.targets[task] != MISSING_LABEL
            assert torch.equal(after.targets[task][kept], before.targets[task][kept])
        assert torch.equal(after.targets["snr"], before.targets["snr"])  # regression targets are not labels to drop
        assert (before.targets["object"] != MISSING_LABEL).all()  # the input is not modified


def test_label_noise_always_moves_a_label_to_another_class(devices):
    out = apply_data_faults(devices, DataFaults(label_noise=0.3), seed=1)
    changed = torch.cat([a.targets["color"] != b.targets["color"] for a, b in zip(out, devices)]).float().mean()
    assert 0.25 < changed.item() < 0.35  # every flip lands on a different class
    assert all(int(d.targets["color"].max()) < 4 and int(d.targets["color"].min()) >= 0 for d in out)


def test_missing_modality_keeps_one_modality_per_sample(devices):
    out = apply_data_faults(devices, DataFaults(missing_modality=0.6), seed=1)
    for d in out:
        present = torch.stack([d.present[m] for m in d.modality_names], 1)
        assert present.any(1).all()
        assert 0.35 < present.float().mean().item() < 0.6
        for m in d.modality_names:
            assert (d.inputs[m][~d.present[m]] == 0).all()


def test_faults_are_seeded_and_off_by_default(devices):
    a = apply_data_faults(devices, DataFaults(0.2, 0.2, 0.2), seed=3)
    b = apply_data_faults(devices, DataFaults(0.2, 0.2, 0.2), seed=3)
    c = apply_data_faults(devices, DataFaults(0.2, 0.2, 0.2), seed=4)
    assert all(torch.equal(x.targets["object"], y.targets["object"]) for x, y in zip(a, b))
    assert not all(torch.equal(x.targets["object"], y.targets["object"]) for x, y in zip(a, c))
    assert apply_data_faults(devices, DataFaults(), seed=3)[0] is devices[0]
    with pytest.raises(ValueError, match=r"data.label_noise must lie in \[0, 1\)"):
        DataFaults(label_noise=1.0)


def test_a_run_draws_the_faults_on_training_data_only():
    from hffm.run import make_world

    cfg = tiny_config()
    cfg.data = dataclasses.replace(cfg.data, missing_labels=0.5)
    world = make_world(cfg)
    train = torch.cat([d.targets[t] for d in world.train for t in d.task_names if t != "snr"])
    assert 0.4 < (train == MISSING_LABEL).float().mean().item() < 0.6
    assert all((d.targets[t] != MISSING_LABEL).all() for d in world.test for t in d.task_names)
    assert all((world.global_test.targets[t] != MISSING_LABEL).all() for t in ("object", "color"))


def test_a_missing_label_counts_for_nothing_in_the_loss():
    head = ClassificationHead(TaskSpec("t", "classification", 3), 8)
    pooled = torch.randn(6, 8, requires_grad=True)
    target = torch.tensor([0, MISSING_LABEL, 2, MISSING_LABEL, 1, 1])
    keep = target != MISSING_LABEL
    assert torch.allclose(head.loss(head(pooled), target), head.loss(head(pooled[keep]), target[keep]))
    none = head.loss(head(pooled), torch.full((6,), MISSING_LABEL))
    none.backward()
    assert none.item() == 0.0 and torch.isfinite(pooled.grad).all()


@pytest.mark.parametrize("batched", [False, True])
def test_training_and_metrics_skip_missing_labels(tmp_path, batched):
    from hffm.run import train

    cfg = tiny_config(batched=batched)
    cfg.data = dataclasses.replace(cfg.data, missing_labels=0.6, label_noise=0.1, missing_modality=0.3)
    result = train(cfg, tmp_path)
    assert result is not None
    last = result.history[-1]
    assert all(np.isfinite(v) for k, v in last.items() if isinstance(v, float))
    assert "global/object/f1" in last and "device/color/acc" in last
