"""Every `hffm-train` line the README shows composes into a valid config, and its Python API snippet runs."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest

import hffm

README = Path(__file__).resolve().parents[1] / "README.md"


def _code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _train_lines() -> list[list[str]]:
    """The overrides of each `hffm-train` command in the README's bash blocks (a sweep: every job)."""
    out = []
    for block in _code_blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line.startswith("hffm-train") or "/path/to/" in line:  # a placeholder for the user's own folder
                continue
            args = shlex.split(line)[1:]
            if "-m" in args:
                args.remove("-m")
                choices = [[f"{a.split('=')[0]}={v}" for v in a.split("=", 1)[1].split(",")] if "," in a else [a]
                           for a in args]
                out += [list(job) for job in itertools.product(*choices)]
            else:
                out.append(args)
    return out


def test_the_readme_shows_hffm_train_commands():
    assert len(_train_lines()) >= 10


@pytest.mark.parametrize("overrides", _train_lines(), ids=lambda a: " ".join(a) or "defaults")
def test_every_readme_command_composes(overrides):
    cfg = hffm.compose(*overrides)
    hffm.network_config(cfg.topology)  # the network preset and its overrides build too


def test_the_python_api_snippet_runs(tmp_path, monkeypatch):
    (snippet,) = [b for b in _code_blocks("python") if "hffm.compose" in b]
    snippet = snippet.replace('"federation.rounds=2"', '"federation.rounds=1", "federation.local_steps=1", '
                                                         '"data.benchmark.num_samples=400", "plots=false"')
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - our own README's code
    result = namespace["result"]
    assert result.last_plan.parent and result.last_outcome.relay_links()  # tree mode ran its tree
    assert namespace["cfg"].solver.name == "joint"
    assert all(h["plan/solver_used"] == 1.0 for h in result.history)  # the composed solver planned every round
    assert (tmp_path / "outputs" / "api_demo" / "summary.json").is_file()


def test_run_federation_refuses_a_federation_group_alone():
    """The old call passed cfg.federation and dropped the solver and the faults without a word."""
    cfg = hffm.compose("experiment=demo", "solver=joint")
    with pytest.raises(TypeError, match="pass cfg itself"):
        hffm.run_federation(hffm.make_fabric(cfg), None, cfg.federation)
