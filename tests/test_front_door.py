"""What a newcomer meets first: `hffm-train --help`, a fast start, the generated docs pages."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from hffm.cli.help import config_groups, help_text
from hffm.config import Config

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("lightning", "cvxpy", "wandb", "matplotlib", "transformers", "scipy")


def test_help_lists_the_real_choices_of_every_group_under_our_own_header():
    text = help_text("hffm-train", "config")
    assert text.startswith("hffm-train: ") and "powered by Hydra" not in text and "base_" not in text
    groups = config_groups("config")
    assert set(groups) == {"model", "data", "topology", "federation", "solver", "logger", "faults", "defense", "experiment"}
    for group, (default, choices) in groups.items():
        shipped = sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))
        assert choices == shipped and default in shipped
        (line,) = [ln for ln in text.splitlines() if ln.split()[:1] == [group]]  # one line a group
        assert f"[{default}]" in line and all(c in line for c in shipped)
    assert "hffm_gossip" in text


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_help_answers_without_importing_torch():
    out = _python("import sys; sys.argv = ['hffm-train', '--help']\n"
                  "from hffm.cli.train import main; main()\n"
                  "print('IMPORTED', sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    assert "Config groups" in out and "IMPORTED []" in out


@pytest.mark.slow
def test_a_config_error_and_import_hffm_skip_what_a_start_does_not_need():
    """Torch alone takes over a second to import: the config, its registries' names and checks must not need it."""
    errors = ["federation.roundz=3", "federation.rounds=-3", "federation.rule=meen", "federation.optimizer=adamx",
              "federation.compression=int9"]
    out = _python("import sys\nfrom hffm.cli.train import main\n"
                  f"for arg in {errors!r}:\n"
                  "    sys.argv = ['hffm-train', arg]\n"
                  "    try:\n        main()\n    except SystemExit as e:\n        print('EXIT', e.code)\n"
                  "import hffm, hffm.config; hffm.compose('experiment=hffm_d2d')\n"
                  f"print('IMPORTED', sorted(m for m in {HEAVY + ('torch',)!r} if m in sys.modules))")
    assert out.count("EXIT 1") == len(errors) and "IMPORTED []" in out, out


def _module_imports(module: str) -> set[str]:
    """The modules ``module`` imports when it loads (top-level imports outside ``if TYPE_CHECKING:``)."""
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = REPO / module.replace(".", "/") / "__init__.py"
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}


def test_no_module_the_config_loads_imports_torch_or_scipy():
    """The in-process twin of the test above, fast enough for every run: walk what ``hffm.config`` loads."""
    seen, todo, torch_at, scipy_at = set(), ["hffm.config"], [], []
    while todo:
        module = todo.pop()
        if module in seen or not module.startswith(("hffm", "solvers")):
            continue
        if not ((REPO / (module.replace(".", "/") + ".py")).exists() or (REPO / module.replace(".", "/")).is_dir()):
            continue  # a name imported from a module, not a module
        seen.add(module)
        imports = _module_imports(module)
        torch_at += [module] if "torch" in imports else []
        scipy_at += [module] if "scipy" in imports else []
        todo += sorted(imports)
    assert "hffm.federation.config" in seen and "solvers.api" in seen
    assert torch_at == [] and scipy_at == [], (f"{torch_at + scipy_at} import torch or scipy when the config loads: "
                                               "bind it with hffm.lazy.LazyModule (see hffm/lazy.py)")


def test_the_registries_built_without_torch_match_torch():
    """Codecs and optimizers are registered by name so the config needs no torch; the names must be real."""
    import torch

    from hffm.federation.compression import CODECS
    from hffm.modules.optim import OPTIMIZERS

    for name, dtype in (("none", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        assert CODECS[name].wire_bytes((3, 5), None) == 15 * torch.empty((), dtype=dtype).element_size()
        sent = CODECS[name].encode(torch.ones(3, 5), None)
        assert sent["v"].dtype == dtype
    for record in OPTIMIZERS.values():
        assert issubclass(getattr(torch.optim, record.torch_class), torch.optim.Optimizer)


def test_the_lazy_package_names_resolve_to_the_real_objects():
    import hffm
    import hffm.federation
    from hffm.federation.loop import run_federation

    assert hffm.run_federation is run_federation and hffm.federation.run_federation is run_federation
    for package in (hffm, hffm.federation):
        assert all(getattr(package, name) is not None for name in package.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = hffm.nope


def _generated():
    sys.path.insert(0, str(REPO))
    try:
        from docgen import config_reference, hooks, results
    finally:
        sys.path.remove(str(REPO))
    return config_reference, hooks, results


def test_the_configuration_reference_lists_every_field_with_its_docstring():
    config_reference, _, _ = _generated()
    page = config_reference.page()

    def keys(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value) and type(value) not in config_reference.OVERRIDES:
                yield from keys(value, key + ".")
            elif type(value) not in config_reference.OVERRIDES:
                yield key

    missing = [k for k in keys(Config()) if f"| `{k}` |" not in page]
    assert not missing, f"not in the configuration reference: {missing}"
    assert "| `federation.rounds` |" in page and "`topology.channel.device_tx_power_w`" in page
    docs = config_reference.field_docs(Config)
    assert docs["threads"].startswith("CPU threads per process") and docs["threads"].split()[0] in page


def test_every_results_folder_has_a_page_with_its_machine_and_commit():
    _, _, results = _generated()
    pages = results.pages()
    for folder in results.studies():
        page = pages[f"results/{folder.name}.md"]
        assert "| machine |" in page and "| recorded at commit |" in page
        assert f"({folder.name}.md)" in pages["results/index.md"]
    assert "2-core" in pages["results/paper_table.md"]  # the machine its script recorded
    assert "12 of 12" in pages["results/paper_table.md"]  # its findings, moved from the README


def test_generated_pages_are_not_also_checked_in():
    _, hooks, _ = _generated()
    for path in hooks.generated_paths():
        assert not (REPO / "docs" / path).exists(), f"docs/{path} is generated by docgen: delete the file"
