"""hffm-train end to end as a user runs it: a 2-job Hydra sweep with offline wandb, and bad command lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_wandb_logger import offline_run, run_contents

HFFM_TRAIN = Path(sys.executable).parent / "hffm-train"
TINY = ["experiment=demo", "model=tiny", "federation.rounds=1", "federation.local_steps=1",
        "data.benchmark.num_samples=300", "topology.num_edges=2", "topology.devices_per_edge=2", "progress=none"]


def hffm_train(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(HFFM_TRAIN), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    if not HFFM_TRAIN.exists():
        pytest.fail(f"{HFFM_TRAIN} not found: install the package (pip install -e .) so the entry point exists")
    root = tmp_path_factory.mktemp("sweep")
    done = hffm_train(["-m", *TINY, "federation.e_agg=1,2", "logger=wandb", f"hydra.sweep.dir={root / 'multirun'}"],
                      cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "multirun"


@pytest.mark.slow
def test_each_job_has_its_own_complete_folder(sweep):
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name.split("_", 1)[0] for p in jobs] == ["0", "1"]
    for e_agg, job in zip((1, 2), jobs, strict=True):
        hydra_cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        ours = json.loads((job / "config.json").read_text())
        assert hydra_cfg["federation"]["e_agg"] == ours["federation"]["e_agg"] == e_agg
        assert ours["model"]["width"] == 32 and ours["logger"]["kind"] == "wandb"
        rows = json.loads((job / "metrics.json").read_text())
        assert len(rows) == 1 and "accuracy" in rows[0]
        assert (job / "metrics.csv").read_text().count("\n") == 2  # header + one round
        plots = {p.name for p in (job / "plots").glob("*.png")}
        assert {"learning_curves.png", "cost_per_round.png", "accuracy_vs_cost.png", "topology.png"} <= plots
        assert (job / "checkpoints" / "federation.pt").stat().st_size > 0

        got = run_contents(offline_run(job))  # one wandb run per job, holding that job's config
        assert got["config"]["federation"]["e_agg"] == e_agg
        assert got["summary"]["final/accuracy"] == pytest.approx(rows[0]["accuracy"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("federation.rnds=1", "Key 'rnds' not in 'FederationConfig'"),
        ("federation.rounds=abc", "full_key: federation.rounds"),
        ("experiment=nope", "Could not find 'experiment/nope'"),
    ],
)
def test_bad_command_line_fails_naming_the_key(tmp_path, override, expected, cli_error):
    from hffm.cli.train import main

    printed = cli_error(main, ["hffm-train", *TINY, override, f"hydra.run.dir={tmp_path / 'run'}"])
    assert expected in printed, printed[-2000:]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_processes_log_each_line_once(tmp_path):
    """A 2-rank run (ddp re-runs the command in a second process) prints its closing line once, from rank 0."""
    done = hffm_train([*TINY, "fabric.devices=2", "fabric.strategy=ddp", "logger=csv",
                       f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout + done.stderr
    assert out.count("finished demo:") == 1, out[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["round"] == 1.0
