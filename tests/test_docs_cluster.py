"""Every command of docs/cluster.md composes (Hydra's own settings and launcher plugins included), and each
launcher form it shows is one tests/test_cluster.py runs: same launcher options, same environment."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import open_dict

from hffm.config import register_configs, resolve

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cluster.md"
SHELL_VARS = {"$SLURM_JOB_ID": "4242"}
TESTED_TORCHRUN = {"--standalone", "--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port"}
TESTED_ENV = {"MASTER_ADDR", "MASTER_PORT", "NODE_RANK"}  # Fabric's launcher on several nodes


def blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)


def commands() -> list[str]:
    lines = [ln.strip() for b in blocks() for ln in b.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#") and "hffm-train" in ln]


def split(line: str) -> tuple[list[str], list[str]]:
    """(what comes before hffm-train: launcher and its options, the overrides after it)."""
    for var, value in SHELL_VARS.items():
        line = line.replace(var, value)
    words = shlex.split(line.replace("$(which hffm-train)", "hffm-train"))
    at = words.index("hffm-train")
    return words[:at], words[at + 1:]


def jobs(overrides: list[str]) -> list[list[str]]:
    """A sweep's jobs (-m with comma lists), or the one run."""
    if "-m" not in overrides:
        return [overrides]
    overrides = [o for o in overrides if o != "-m"]
    choices = [[f"{o.split('=', 1)[0]}={v}" for v in o.split("=", 1)[1].split(",")] if "," in o else [o]
               for o in overrides]
    return [list(job) for job in itertools.product(*choices)]


def test_the_page_shows_each_launcher():
    kind = lambda before: "hffm-train" if not before else "env" if "=" in before[0] else before[0]  # noqa: E731
    assert {kind(split(c)[0]) for c in commands()} == {"hffm-train", "torchrun", "env", "srun"}
    assert len(commands()) >= 7


@pytest.mark.parametrize("line", commands())
def test_every_command_composes(line):
    before, overrides = split(line)
    if any("submitit" in o for o in overrides):
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the `cluster` extra is not installed")
    register_configs()
    for job in jobs(overrides):
        with initialize_config_module(config_module="hffm.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=job, return_hydra_config=True)
        assert cfg.hydra.output_subdir is None  # hffm writes .hydra/ after the claim
        with open_dict(cfg):
            del cfg["hydra"]
        run = resolve(cfg)
        if before and before[0] == "torchrun":
            opts = {w.split("=")[0] for w in before[1:]}
            assert opts <= TESTED_TORCHRUN, opts - TESTED_TORCHRUN
            per_node = next((int(w.split("=")[1]) for w in before if w.startswith("--nproc-per-node=")), None)
            nodes = next((int(w.split("=")[1]) for w in before if w.startswith("--nnodes=")), 1)
            assert (run.fabric.devices, run.fabric.num_nodes, run.fabric.strategy) == (per_node, nodes, "ddp")
        elif before and before[0] != "srun":
            assert {w.split("=")[0] for w in before} <= TESTED_ENV


def compose_task(job: list[str]):
    with initialize_config_module(config_module="hffm.conf", version_base="1.3"):
        return compose(config_name="config", overrides=job)


def test_the_sbatch_script_asks_slurm_for_what_fabric_is_told():
    (script,) = [b for b in blocks() if "#SBATCH" in b]
    sbatch = dict(re.findall(r"#SBATCH --([\w-]+)=(\S+)", script))
    (srun,) = [ln for ln in script.splitlines() if ln.startswith("srun ")]
    run = resolve(compose_task(split(srun)[1]))
    assert (run.fabric.num_nodes, run.fabric.devices) == (int(sbatch["nodes"]), int(sbatch["ntasks-per-node"]))
    assert run.fabric.strategy == "ddp"
