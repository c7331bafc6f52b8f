"""hffm-pretrain as a user runs it: a tiny pretraining, a federated run that starts from its checkpoint,
and a misspelt key that fails naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from hffm.run import make_world, train

HFFM_PRETRAIN = Path(sys.executable).parent / "hffm-pretrain"
TINY = ["model=tiny", "steps=3", "batch_size=16", "data.benchmark.num_samples=400", "log_every=1"]


def hffm_pretrain(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(HFFM_PRETRAIN), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    if not HFFM_PRETRAIN.exists():
        pytest.fail(f"{HFFM_PRETRAIN} not found: install the package (pip install -e .) so the entry point exists")
    root = tmp_path_factory.mktemp("pretrain")
    done = hffm_pretrain([*TINY, "out=ckpt/trunk.pt", f"hydra.run.dir={root / 'run'}"], cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "ckpt" / "trunk.pt", root / "run", done


@pytest.mark.slow
def test_pretrain_writes_a_checkpoint_and_reports_held_out_metrics(checkpoint):
    path, run_dir, done = checkpoint
    assert path.is_file()  # `out` is relative to the working directory
    log = done.stdout + done.stderr
    assert "pretrain step 3/3" in log and "modulation/acc" in log and "snr/mae" in log
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["config"]["width"] == 32 and ckpt["metrics"]["steps"] == 3.0
    assert ckpt["data"]["seed"] == 0 and ckpt["data"]["global_test_fraction"] == 0.2  # what it trained on
    assert ckpt["data"]["benchmark"]["num_samples"] == 400
    assert [p.name for p in path.parent.iterdir()] == ["trunk.pt"]  # written via a temp file, none left
    assert {"test/object/acc", "test/color/f1", "test/modulation/acc", "test/snr/mae"} <= set(ckpt["metrics"])
    saved = json.loads((run_dir / "pretrain.json").read_text())
    assert saved["config"]["steps"] == 3 and saved["metrics"] == pytest.approx(ckpt["metrics"])


@pytest.mark.slow
def test_federated_run_starts_from_the_checkpoint(checkpoint, tmp_path):
    path, _, _ = checkpoint
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = tiny_config(rounds=1, local_steps=1)
    cfg.pretrained = str(path)
    bank = make_world(cfg).bank  # what train() builds
    fresh = make_world(tiny_config()).bank
    state = bank.state_dict()
    trunk = [k for k in ckpt["state"] if k.startswith("trunk.")]
    assert trunk and all(torch.equal(state[k], ckpt["state"][k]) for k in ckpt["state"])
    assert not all(torch.equal(fresh.state_dict()[k], ckpt["state"][k]) for k in trunk)  # pretraining moved it
    result = train(cfg, tmp_path / "fed")
    assert result is not None and len(result.history) == 1
    assert json.loads((tmp_path / "fed" / "config.json").read_text())["pretrained"] == str(path)

    wrong = tiny_config(rounds=1)
    wrong.pretrained = str(path)
    wrong.model.width = 64  # a bank the checkpoint does not fit
    with pytest.raises(ValueError, match="ModelConfig mismatch.*width"):
        make_world(wrong)


@pytest.mark.parametrize(("override", "expected"), [
    ("stepz=3", "Key 'stepz' not in 'PretrainConfig'"),
    ("model.widht=8", "Key 'widht' not in 'ModelConfig'"),
    ("steps=0", "steps must be >= 1"),
])
def test_bad_keys_fail_naming_them(override, expected, tmp_path, cli_error, monkeypatch):
    from hffm.cli.pretrain import main

    monkeypatch.chdir(tmp_path)
    printed = cli_error(main, ["hffm-pretrain", *TINY, override, f"hydra.run.dir={tmp_path / 'run'}"])
    assert expected in printed, printed[-2000:]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_the_printed_hint_starts_a_run_from_the_checkpoint(checkpoint):
    from hffm.config import compose

    path, _, done = checkpoint
    line = next(ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip().startswith("hffm-train "))
    overrides = line.split()[1:]
    assert f"pretrained={path.resolve()}" in overrides and "model=tiny" in overrides
    cfg = compose(*overrides)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = make_world(cfg).bank.state_dict()  # loads the checkpoint: same model and data, so it fits
    assert all(torch.equal(state[k], ckpt["state"][k]) for k in ckpt["state"])
