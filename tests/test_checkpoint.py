"""Checkpoints: safe loading, checked resumes, atomic writes, outputs that hold the whole history."""

import dataclasses
import json
import os
import pickle
import zipfile

import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.data.benchmark import BenchmarkConfig
from hffm.data.leakage import check_no_test_leak, seen_test_samples, training_record
from hffm.federation.checkpoint import check_resume, config_mismatch, load_checkpoint
from hffm.federation.loop import initial_state, run_federation, tier_policy
from hffm.logging.files import FileLogger
from hffm.modules.pretrain import save_pretrained
from hffm.run import config_dict, make_world, train
from hffm.safe_io import CheckpointError, atomic_torch_save


def _fabric():
    return Fabric(accelerator="cpu", devices=1)


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def one_round(tmp_path_factory):
    """A 1-round run of the tiny config, its folder and checkpoint (shared: the checks fail before training)."""
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(rounds=1)
    train(cfg, out)
    return cfg, out, out / "checkpoints" / "federation.pt"


def _resume(cfg, ckpt, **federation):
    cfg = cfg.replace(federation={"resume": str(ckpt), **federation})
    return run_federation(_fabric(), make_world(cfg), cfg)


def test_a_crafted_pickle_is_refused_without_running_anything(tmp_path, one_round):
    cfg, _, _ = one_round
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "hffm-federation/3", "state": _RunsAShellCommand(marker)}, evil)
    with pytest.raises(CheckpointError, match=f"{evil}.*refused.*nothing in it was run.*posix.system"):
        _resume(cfg, evil)
    with open(tmp_path / "evil.pkl", "wb") as f:  # a bare pickle, not a torch zip file
        pickle.dump(_RunsAShellCommand(marker), f, protocol=2)
    with pytest.raises(CheckpointError, match="evil.pkl"):
        load_checkpoint(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_truncated_corrupt_and_foreign_files_name_the_file(tmp_path, one_round):
    _, _, ckpt = one_round
    data = ckpt.read_bytes()
    for name, content in (("half.pt", data[: len(data) // 2]), ("junk.pt", b"not a checkpoint" * 50), ("empty.pt", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(tmp_path / name)
    torch.save({"state": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign.pt.*not an hffm federation checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    assert load_checkpoint(ckpt)["round"] == 1


def test_garbage_bytes_inside_a_tensor_fail_the_checksum_naming_the_file(tmp_path, one_round):
    _, _, ckpt = one_round
    data = bytearray(ckpt.read_bytes())
    with zipfile.ZipFile(ckpt) as z:  # the largest tensor record: torch stores them uncompressed
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    h = info.header_offset  # local header: 30 bytes, then the name and extra field lengths it gives
    start = h + 30 + int.from_bytes(data[h + 26:h + 28], "little") + int.from_bytes(data[h + 28:h + 30], "little")
    for i in range(start + 8, start + 24):
        data[i] ^= 0x5A
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    assert torch.load(bad, weights_only=True)["round"] == 1  # torch itself loads it silently
    with pytest.raises(CheckpointError, match="flipped.pt.*fails its checksum"):
        load_checkpoint(bad)
    edited = torch.load(ckpt, weights_only=True)
    edited["round"] = 0
    torch.save(edited, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="edited.pt.*fails its checksum"):
        load_checkpoint(tmp_path / "edited.pt")


def test_resume_refuses_another_setup_naming_the_keys(one_round):
    cfg, _, ckpt = one_round
    other = dataclasses.replace(cfg, seed=1)
    other.topology = dataclasses.replace(cfg.topology, devices_per_edge=3)
    with pytest.raises(CheckpointError, match=r"(?s)seed: checkpoint 0, this run 1.*topology.devices_per_edge"):
        _resume(other, ckpt, rounds=3)
    with pytest.raises(CheckpointError, match="federation.mode: checkpoint 'hierarchical', this run 'star'"):
        _resume(cfg, ckpt, rounds=3, mode="star")
    # what only changes the future may differ: more rounds, another rule or learning rate
    assert len(_resume(cfg, ckpt, rounds=2, rule="median", lr=1e-3).history) == 2


def test_a_state_of_other_shapes_is_refused_even_under_a_matching_config(tmp_path):
    cfg = tiny_config(rounds=1)
    run_federation(_fabric(), make_world(cfg), cfg, out_dir=tmp_path)
    payload = load_checkpoint(tmp_path / "checkpoints/federation.pt")
    bigger = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_experts=3))
    fresh = initial_state(make_world(bigger), tier_policy(bigger.federation)).to_dict()
    with pytest.raises(CheckpointError, match="does not fit this run.*modules differ.*expert"):
        check_resume(payload, "ckpt", config_dict(cfg), 2, fresh)


def test_resuming_at_the_last_round_says_so(one_round):
    cfg, _, ckpt = one_round
    with pytest.raises(CheckpointError, match="at round 1 and federation.rounds=1: nothing left to run"):
        _resume(cfg, ckpt, rounds=1)


def test_config_mismatch_looks_only_at_keys_that_change_the_state():
    a = {"seed": 0, "name": "x", "model": {"width": 32}, "federation": {"lr": 1.0, "policy": {"head": "edge"}}}
    b = {"seed": 0, "name": "y", "model": {"width": 64}, "federation": {"lr": 2.0, "policy": {"head": "personal"}}}
    assert config_mismatch(a, b) == {"model.width": (32, 64), "federation.policy.head": ("edge", "personal")}
    assert config_mismatch(a, {**a, "topology": {"num_edges": 2}}) == {"topology.num_edges": ("<absent>", 2)}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"x": torch.ones(2)}, path)
    (tmp_path / ".ckpt.pt.stale.tmp").write_bytes(b"left by a killed writer")
    with pytest.raises(Exception):  # noqa: B017 - torch.save cannot pickle a lambda
        atomic_torch_save({"x": lambda: 0}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt.pt.stale.tmp", "ckpt.pt"]
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))
    atomic_torch_save({"x": torch.zeros(2)}, path)  # a good write clears the stale temp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_pretraining_that_saw_the_test_set_is_refused(tmp_path):
    bench = BenchmarkConfig(num_samples=400)
    same = training_record(bench, 0, 0.2)
    assert seen_test_samples(same, bench, 0, 0.2) == 0
    assert seen_test_samples(training_record(bench, 1, 0.2), bench, 0, 0.2) == 0  # other samples altogether
    assert seen_test_samples(training_record(bench, 0, 0.1), bench, 0, 0.2) == 40  # 80 test, 40 of them trained on
    check_no_test_leak(None, bench, 0, 0.2, "old.pt")  # no record: nothing to check

    cfg = tiny_config(rounds=1)
    path = tmp_path / "trunk.pt"
    save_pretrained(make_world(cfg).bank, path, data=training_record(cfg.data.benchmark, cfg.seed, 0.1))
    cfg.pretrained = str(path)
    with pytest.raises(ValueError, match=r"trunk.pt' was trained on \d+ samples of this run's global test set"):
        make_world(cfg)
    save_pretrained(make_world(tiny_config()).bank, path, data=training_record(cfg.data.benchmark, cfg.seed, 0.2))
    make_world(cfg)


def test_a_resumed_run_holds_the_whole_history_in_its_files(tmp_path):
    cfg = tiny_config(rounds=2, checkpoint_every=1)
    train(cfg, tmp_path / "a")
    more = dataclasses.replace(cfg, federation=dataclasses.replace(
        cfg.federation, rounds=3, resume=str(tmp_path / "a" / "checkpoints" / "federation.pt")))
    result = train(more, tmp_path / "b")
    rows = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (tmp_path / "b" / "metrics.csv").read_text().count("\n") == 4
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["round"] == 3 and rows[-1]["accuracy"] == summary["accuracy"] == result.history[-1]["accuracy"]


def test_file_logger_replaces_a_round_run_again():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        log = FileLogger(d, history=[{"round": 1.0, "a": 1.0}, {"round": 2.0, "a": 2.0}, {"round": 3.0, "a": 3.0}])
        log({"round": 3.0, "a": 30.0}, 3)
        rows = json.loads(open(os.path.join(d, "metrics.json")).read())
        assert [(r["step"], r["a"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 30.0)]

