"""hffm-train under the launchers of clusters, each matching a 1-process run: torchrun on one node, two nodes
of one process each (torchrun, and Fabric's own launcher as on a cluster without torchrun), on loopback only,
and a 2-job sweep through Hydra's submitit launcher (submitit_local runs here; submitit_slurm is the same
launcher on SLURM). Global rank 0 writes the run folder; every other rank writes nothing and exits 0."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hffm.config import compose
from hffm.run import train

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TINY = ["experiment=demo", "model=tiny", "federation.rounds=2", "federation.local_steps=1",
        "data.benchmark.num_samples=300", "topology.num_edges=2", "topology.devices_per_edge=2", "progress=none",
        "plots=false", "logger=csv"]
ENV = {"WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **ENV, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    """The same run on one process, through the Python API."""
    out = tmp_path_factory.mktemp("one") / "run"
    train(compose(*TINY), out)
    return json.loads((out / "metrics.json").read_text())


def assert_same_metrics(folder: Path, reference: list[dict]) -> None:
    rows = json.loads((folder / "metrics.json").read_text())
    assert len(rows) == len(reference) == 2
    for one, many in zip(reference, rows, strict=True):
        assert one["participants"] == many["participants"]
        assert abs(one["accuracy"] - many["accuracy"]) < 1e-6
        assert abs(one["cost/latency_s"] - many["cost/latency_s"]) < 1e-9
        assert abs(one["cost/energy_j"] - many["cost/energy_j"]) < 1e-9


def test_torchrun_one_node_two_processes(tmp_path, reference):
    run = tmp_path / "run"
    out = finish(start([str(BIN / "torchrun"), "--standalone", "--nproc-per-node=2", str(BIN / "hffm-train"), *TINY,
                        "fabric.devices=2", "fabric.strategy=ddp", f"hydra.run.dir={run}"], tmp_path))
    assert out.count("finished demo:") == 1, out[-3000:]
    assert_same_metrics(run, reference)
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("launcher", ["torchrun", "fabric", "srun"])
def test_two_nodes_on_loopback(tmp_path, reference, launcher):
    """One process a node, each with its own folder, as on nodes without a shared file system. ``srun``: the
    environment srun gives each task of ``sbatch --nodes=2 --ntasks-per-node=1`` (there is no SLURM here), which
    Fabric's SLURMEnvironment reads; MASTER_ADDR stands in for the job's node list."""
    port = free_port()
    procs = []
    for node in (0, 1):
        args = [*TINY, "fabric.num_nodes=2", "fabric.devices=1", "fabric.strategy=ddp", f"hydra.run.dir={tmp_path / f'node{node}'}"]
        if launcher == "torchrun":
            cmd = [str(BIN / "torchrun"), "--nnodes=2", f"--node-rank={node}", "--nproc-per-node=1",
                   "--master-addr=127.0.0.1", f"--master-port={port}", str(BIN / "hffm-train"), *args]
            procs.append(start(cmd, tmp_path))
        elif launcher == "fabric":  # Fabric's own launcher: the same command on each node, told its rank and the master
            procs.append(start([str(BIN / "hffm-train"), *args], tmp_path, MASTER_ADDR="127.0.0.1",
                               MASTER_PORT=str(port), NODE_RANK=str(node)))
        else:
            slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "hffm", "SLURM_NNODES": "2", "SLURM_NTASKS": "2",
                     "SLURM_NTASKS_PER_NODE": "1", "SLURM_NODEID": str(node), "SLURM_PROCID": str(node),
                     "SLURM_LOCALID": "0", "SLURM_NODELIST": "localhost", "MASTER_ADDR": "127.0.0.1",
                     "MASTER_PORT": str(port)}
            procs.append(start([str(BIN / "hffm-train"), *args], tmp_path, **slurm))
    outs = [finish(p) for p in procs]
    assert "finished demo:" in outs[0] and "finished demo:" not in outs[1]
    assert_same_metrics(tmp_path / "node0", reference)
    assert not (tmp_path / "node1").exists()  # node 1 wrote nothing, and removed the empty folder Hydra made


def test_submitit_local_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the `cluster` extra is not installed")
    sweep = tmp_path / "multirun"
    finish(start([str(BIN / "hffm-train"), "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                  *TINY, "federation.rounds=1", "federation.e_agg=1,2", f"hydra.sweep.dir={sweep}"], tmp_path))
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name.split("_", 1)[0] for p in jobs] == ["0", "1"]
    for e_agg, job in zip((1, 2), jobs, strict=True):
        assert yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["federation"]["e_agg"] == e_agg
        assert json.loads((job / "config.json").read_text())["federation"]["e_agg"] == e_agg
        assert json.loads((job / "summary.json").read_text())["round"] == 1
        assert "finished demo:" in (job / "train.log").read_text()
