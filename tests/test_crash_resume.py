"""A real hffm-train process killed with SIGKILL mid-round and mid-checkpoint-write resumes to the same result.

The child is hffm-train's own entry point; a few lines before it arm a SIGKILL at a chosen moment (the Nth
device trained, or halfway through writing the Nth checkpoint), so the kill lands in the same place on any
machine. The reference run is the same config, run in this process without interruption.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hffm.config import compose
from hffm.federation.checkpoint import load_checkpoint
from hffm.run import train

ARGS = ["experiment=demo", "model=tiny", "federation.rounds=4", "federation.local_steps=1",
        "federation.checkpoint_every=1", "federation.participation=1.0", "data.benchmark.num_samples=300",
        "topology.num_edges=2", "topology.devices_per_edge=2", "progress=none", "plots=false", "threads=1",
        "logger=csv"]

CHILD = r"""
import io, os, signal, sys
import torch
kind, n = os.environ["HFFM_TEST_KILL"].split(":")
n, calls = int(n), [0]

def die_at(k):
    calls[0] += k
    return calls[0] >= n

if kind == "train":  # SIGKILL while the nth device of the run trains (devices train in batched passes)
    import hffm.run
    from hffm.engine import train_devices
    def killing(fabric, bank, jobs, local):  # the loop's training seam: a Trainer that dies on cue
        if die_at(len(jobs)):
            os.kill(os.getpid(), signal.SIGKILL)
        return train_devices(fabric, bank, jobs, local)
    real_run = hffm.run.train
    hffm.run.train = lambda cfg, out_dir, **k: real_run(cfg, out_dir, trainer=killing)
elif kind == "save":  # SIGKILL halfway through writing the nth checkpoint
    real_save = torch.save
    def save(obj, f, *a, **k):
        if not die_at(1):
            return real_save(obj, f, *a, **k)
        buf = io.BytesIO()
        real_save(obj, buf, *a, **k)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    torch.save = save
sys.argv = ["hffm-train", *sys.argv[1:]]
from hffm.cli.train import main
main()
"""


def _run(args: list[str], cwd: Path, kill: str = "none:0") -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1",
           "HFFM_TEST_KILL": kill}
    return subprocess.run([sys.executable, "-c", CHILD, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _final(folder: Path) -> dict:
    payload = load_checkpoint(folder / "checkpoints" / "federation.pt")
    timing = ("time/round_s", "plan/solve_s")
    payload["state"]["history"] = [{k: v for k, v in h.items() if k not in timing} for h in payload["state"]["history"]]
    return payload


def _same_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for module in a:
        assert a[module].keys() == b[module].keys()
        for key in a[module]:
            assert torch.equal(a[module][key], b[module][key]), (module, key)


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path):
    ref, run = tmp_path / "reference", tmp_path / "run"
    train(compose(*ARGS), ref)

    # 1. killed while the 3rd round trains (device 10 of 4 a round): the round-2 checkpoint is the last
    killed = _run([*ARGS, f"hydra.run.dir={run}"], tmp_path, kill="train:10")
    assert killed.returncode == -signal.SIGKILL
    ckpt = run / "checkpoints" / "federation.pt"
    assert load_checkpoint(ckpt)["round"] == 2

    # 2. resumed in its folder, killed halfway through writing the round-3 checkpoint: round 2 survives intact
    resume = [*ARGS, f"hydra.run.dir={run}", f"federation.resume={ckpt}"]
    killed = _run(resume, tmp_path, kill="save:1")
    assert killed.returncode == -signal.SIGKILL
    assert [p.name.endswith(".tmp") for p in ckpt.parent.iterdir()].count(True) == 1  # the half-written temp
    assert load_checkpoint(ckpt)["round"] == 2

    # 3. resumed again: finishes, equal to the reference run, and the folder holds the whole history
    done = _run(resume, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = _final(ref), _final(run)
    assert a["round"] == b["round"] == 4
    for g in range(len(a["state"]["group_states"])):
        _same_states(a["state"]["group_states"][g], b["state"]["group_states"][g])
    _same_states(a["state"]["cloud_state"], b["state"]["cloud_state"])
    assert a["state"]["history"] == b["state"]["history"]
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["federation.pt"]  # the stale temp is gone
    assert (run / "metrics.csv").read_text().count("\n") == (ref / "metrics.csv").read_text().count("\n") == 5
