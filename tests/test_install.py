"""hffm installed from its wheel, outside the source tree: the configs ship as package data.

Builds the wheel from a copy of the sources (so no stale ``build/`` folder can add files that the
package data rules miss), installs it into a new venv and runs ``hffm-train`` for one round from an
empty folder. The new venv borrows only the third-party dependencies of the running environment
(a ``.pth`` line to its site-packages, which does not run the editable install's finder), so hffm
itself must come from the wheel: the test checks where it was imported from.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "hffm", "conf", "solvers")
ONE_ROUND = ["experiment=demo", "model=tiny", "federation.rounds=1", "federation.local_steps=1",
             "data.benchmark.num_samples=300", "topology.num_edges=2", "topology.devices_per_edge=2",
             "logger=csv", "progress=none", "plots=false", "hydra.run.dir=run"]


def _run(cmd: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from the checkout
    env.update(WANDB_MODE="disabled", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A new venv with hffm installed from a freshly built wheel."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(root / "dist"), str(src)], cwd=root)
    (wheel,) = (root / "dist").glob("hffm-*.whl")

    env_dir = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=root)
    python = env_dir / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        cwd=root).stdout.strip())
    (purelib / "_deps_of_running_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
          str(wheel)], cwd=root)
    return env_dir


@pytest.mark.slow
def test_wheel_installs_and_trains_one_round_from_an_empty_folder(venv, tmp_path):
    where = _run([str(venv / "bin" / "python"), "-c",
                  "import hffm, hffm.conf, solvers; print(hffm.__file__); print(solvers.__file__)"], cwd=tmp_path)
    for line in where.stdout.split():
        assert Path(line).resolve().is_relative_to(venv.resolve()), f"imported from outside the venv: {line}"

    _run([str(venv / "bin" / "hffm-train"), *ONE_ROUND], cwd=tmp_path)
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(rows) == 1 and 0.0 <= rows[0]["accuracy"] <= 1.0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["width"] == 32  # model=tiny

    shown = _run([str(venv / "bin" / "hffm-pretrain"), "--cfg", "job", "model=tiny"], cwd=tmp_path)
    assert "width: 32" in shown.stdout  # the pretrain CLI finds its configs in the wheel too
