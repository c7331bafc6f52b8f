"""Every command the README and the docs show is run or composed here.

`hffm-train` / `hffm-pretrain` lines compose into a valid config (a sweep: every job); `python -m solvers solve` and
`generate` run; other `python -m solvers` and `python experiments/...` lines go through their script's own argument
parser (every flag the script defines, every value of the right type); `make` targets exist; the Python API
snippet runs.
"""

from __future__ import annotations

import argparse
import itertools
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from omegaconf import OmegaConf

import hffm

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO / "README.md", REPO / "solvers" / "README.md", *(REPO / "docs").glob("*.md"),
                *(REPO / "experiments" / "results").glob("*/findings.md")])
PLACEHOLDER = re.compile(r"/path/to/|\bPATH\b|INSTANCE\.json|\bDIR\b|\bPLAN\.json|\bN\b|\[|\.\.\.")  # not runnable as shown
PREFIXES = ("hffm-train", "hffm-pretrain", "python -m solvers", "python experiments/", "make ")


def _commands(page: Path) -> list[str]:
    """Command lines of a page: each line of its code blocks, and each inline code span, that starts a command."""
    text = page.read_text()
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        block = block.replace("\\\n", " ")
        lines += [line.split(" #", 1)[0].strip() for line in block.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]  # a span may wrap a line
    return [line for line in lines if line.startswith(PREFIXES) and not PLACEHOLDER.search(line)]


COMMANDS = sorted({(cmd, page.relative_to(REPO).as_posix()) for page in PAGES for cmd in _commands(page)})


def _of(prefix: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for cmd, page in COMMANDS:
        if cmd.startswith(prefix):
            seen.setdefault(cmd, page)
    return sorted(seen.items())


def _jobs(args: list[str]) -> list[list[str]]:
    """The override lists of one command line (a sweep, `-m`, has one per combination)."""
    args = [a for a in args if a not in ("--cfg", "job", "--help")]
    if "-m" not in args:
        return [args]
    args.remove("-m")
    choices = [[f"{a.split('=')[0]}={v}" for v in a.split("=", 1)[1].split(",")] if "," in a else [a] for a in args]
    return [list(job) for job in itertools.product(*choices)]


def test_the_docs_show_commands_of_every_kind():
    for prefix in PREFIXES:
        assert _of(prefix), f"no {prefix!r} command found in the docs: is the extraction broken?"
    assert len(_of("hffm-train")) >= 20


@pytest.mark.parametrize(("line", "page"), _of("hffm-train"), ids=lambda x: x)
def test_every_hffm_train_command_composes(line, page):
    for overrides in _jobs(shlex.split(line)[1:]):
        cfg = hffm.compose(*overrides)
        hffm.network_config(cfg.topology)  # the network preset and its overrides build too


@pytest.mark.parametrize(("line", "page"), _of("hffm-pretrain"), ids=lambda x: x)
def test_every_hffm_pretrain_command_composes(line, page):
    from hffm.cli.pretrain import PretrainConfig, register

    register()
    with initialize_config_module(config_module="hffm.conf", version_base="1.3"):
        cfg = OmegaConf.to_object(hydra_compose(config_name="pretrain", overrides=_jobs(shlex.split(line)[1:])[0]))
    assert isinstance(cfg, PretrainConfig)


def _run_script(path: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch, run_name: str = "__main__") -> None:
    """The script's own argument parser on ``argv``: it parses and checks every flag, then the script stops.

    ``parse_args`` is wrapped to exit 0 once it has parsed, so a flag a sibling module (``solver_grid.add_grid``)
    defines counts, and an unknown flag or a bad value fails here as it would for the user (exit 2).
    """
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        parse(self, args, namespace)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(path), run_name=run_name)
    assert stop.value.code in (0, None), f"{path.name} {' '.join(argv)}: the parser refused it"


def _flags_defined(line: str, source: str) -> None:
    for flag in re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", line):
        assert f'"{flag}"' in source, f"{line}: {flag} is not an option of the script"


@pytest.mark.parametrize(("line", "page"), _of("python -m solvers"), ids=lambda x: x)
def test_every_solver_command_runs_or_parses(line, page, tmp_path, monkeypatch):
    from solvers.__main__ import main

    args = shlex.split(line)[3:]
    _flags_defined(line, (REPO / "solvers" / "__main__.py").read_text())
    monkeypatch.chdir(REPO)
    if args and args[0] in ("solve", "generate") and "-o" in args:  # quick: run them, writing into tmp_path
        out = args.index("-o") + 1
        args[out] = str(tmp_path / Path(args[out]).name)
        assert main(args) == 0
        assert (tmp_path / Path(args[out]).name).is_file()
    else:
        with pytest.raises(SystemExit) as stop:
            main([*args, "--help"])
        assert stop.value.code == 0


@pytest.mark.parametrize(("line", "page"), _of("python experiments/"), ids=lambda x: x)
def test_every_experiment_command_parses(line, page, monkeypatch):
    words = shlex.split(line)
    script = REPO / words[1]
    assert script.is_file(), f"{page}: {words[1]} does not exist"
    source = script.read_text()
    if "parse_args" not in source:  # a script without a parser runs its whole study: never start it here
        assert not words[2:], f"{page}: {words[1]} takes no arguments, but the docs pass {words[2:]}"
        return
    if "flower" in script.name:
        pytest.importorskip("flwr", reason="the bench extra (Flower) is not installed")
    monkeypatch.syspath_prepend(str(script.parent))  # as `python experiments/x.py` does: siblings import
    _run_script(script, words[2:], monkeypatch)


@pytest.mark.parametrize(("line", "page"), _of("make "), ids=lambda x: x)
def test_every_make_target_exists(line, page):
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), flags=re.M))
    for target in shlex.split(line)[1:]:
        assert target in targets, f"{page}: make {target} is not a target of the Makefile ({sorted(targets)})"


@pytest.mark.slow
def test_the_python_api_snippet_runs(tmp_path, monkeypatch):
    """The README's snippet (the getting-started page shows the same one), on a smaller world."""
    snippets = {b for page in (REPO / "README.md", REPO / "docs" / "getting-started.md")
                for b in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S) if "hffm.compose" in b}
    assert len(snippets) == 1, "the README and getting started show different API snippets: keep them the same"
    (snippet,) = snippets
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
