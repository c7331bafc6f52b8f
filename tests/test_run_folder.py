"""Run folders: one run a folder, claimed before anything is written there, locked while a run uses it,
released by a failed start, one file mode; through the Python API and the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_config

from hffm.federation.checkpoint import config_dict
from hffm.run import train
from hffm.run_folder import CHECKPOINT, RunFolderError, claim

HFFM_TRAIN = Path(sys.executable).parent / "hffm-train"


def resume_of(cfg, folder: Path, **federation):
    return dataclasses.replace(cfg, federation=dataclasses.replace(
        cfg.federation, resume=str(folder / CHECKPOINT), **federation))


@pytest.fixture
def finished(tmp_path):
    """A finished 1-round run of the tiny config and its folder."""
    cfg = tiny_config(rounds=1)
    train(cfg, tmp_path / "run")
    return cfg, tmp_path / "run"


def test_the_api_refuses_a_folder_holding_a_run(finished):
    cfg, run = finished
    before = (run / "config.json").read_text()
    with pytest.raises(RunFolderError, match=r"already holds a run .*federation\.resume=.*checkpoints/federation\.pt"):
        train(dataclasses.replace(cfg, seed=1), run)
    assert (run / "config.json").read_text() == before


def test_a_second_resume_is_refused_while_one_runs(finished):
    cfg, run = finished
    more = resume_of(cfg, run, rounds=2)
    holder = claim(run, json.dumps(config_dict(more)), more.federation.resume)  # a resume in progress
    try:
        with pytest.raises(RunFolderError, match=rf"in use by a running run \(pid {os.getpid()} on "):
            train(more, run)
    finally:
        holder.close()
    result = train(more, run)  # once that one ended, the resume goes ahead in the folder
    assert result is not None and [r["step"] for r in json.loads((run / "metrics.json").read_text())] == [1, 2]


def test_a_failed_start_releases_its_claim(tmp_path):
    cfg = dataclasses.replace(tiny_config(rounds=1), pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()
    train(dataclasses.replace(cfg, pretrained=None), tmp_path / "run")  # the same folder, at once
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["round"] == 1


def test_a_refused_resume_in_place_leaves_the_run_as_it_was(finished):
    cfg, run = finished
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="another setup"):
        train(resume_of(dataclasses.replace(cfg, seed=7), run, rounds=2), run)  # its state means something else
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == {
        p: b for p, b in before.items() if p.name != ".lock"}


def test_a_failed_run_with_results_keeps_its_claim_and_says_how_to_go_on(tmp_path):
    folder = claim(tmp_path, "{}")
    (tmp_path / CHECKPOINT).parent.mkdir()
    (tmp_path / CHECKPOINT).write_bytes(b"saved")
    msg = folder.fail()
    folder.close()
    assert f"continue it with federation.resume={tmp_path / CHECKPOINT}" in msg
    assert (tmp_path / "config.json").read_text() == "{}"


def test_every_run_file_has_one_mode(tmp_path):
    old = os.umask(0o002)
    try:
        cfg = dataclasses.replace(tiny_config(rounds=1), plots=True)
        cfg.logger.kind = "csv"
        train(cfg, tmp_path / "run")
    finally:
        os.umask(old)
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
             for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert {"run/metrics.csv", "run/config.json", "run/summary.json", f"run/{CHECKPOINT}"} <= set(modes)
    assert set(modes.values()) == {"0o664"}, modes


@pytest.mark.slow
def test_the_command_line_writes_nothing_into_a_folder_it_refuses(tmp_path):
    """Hydra's .hydra/*.yaml and log are written after the claim: a refused run changes no byte of the run."""
    tiny = ["experiment=demo", "model=tiny", "federation.rounds=1", "federation.local_steps=1", "progress=none",
            "data.benchmark.num_samples=300", "topology.num_edges=2", "topology.devices_per_edge=2", "plots=false",
            f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    hffm_train = lambda *args: subprocess.run([str(HFFM_TRAIN), *tiny, *args], cwd=tmp_path, env=env,  # noqa: E731
                                              capture_output=True, text=True, timeout=300)
    done = hffm_train()
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    files = lambda: {str(p): p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}  # noqa: E731
    before = files()
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "train.log"} <= {str(Path(p).relative_to(run)) for p in before}

    refused = hffm_train("seed=3")  # a new run into a used folder
    assert refused.returncode != 0 and "already holds a run" in refused.stderr, refused.stderr[-3000:]
    ckpt = run / CHECKPOINT
    holder = claim(run, (run / "config.json").read_text(), str(ckpt))  # a resume in progress holds the folder
    try:
        refused = hffm_train("federation.rounds=2", f"federation.resume={ckpt}")
    finally:
        holder.close()
    assert refused.returncode != 0 and "in use by a running run" in refused.stderr, refused.stderr[-3000:]
    assert files() == before
