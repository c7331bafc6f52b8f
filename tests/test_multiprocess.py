"""Two Fabric processes (gloo, CPU) give the numbers of one process."""

import numpy as np
import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.loop import run_federation
from hffm.run import make_world


def _run(fabric, cfg, path):
    torch.set_num_threads(1)
    result = run_federation(fabric, make_world(cfg), cfg)
    if fabric.global_rank == 0:
        # Through a file: a large return value from a spawned process deadlocks the launcher's queue.
        torch.save((result.state.group_states, result.state.cloud_state, result.history), path)
    # Leave together: a rank that exits while its peer still holds the gloo connection can abort it.
    fabric.barrier()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    cfg = tiny_config(e_agg=2, rounds=2)
    _run(Fabric(accelerator="cpu", devices=1), cfg, tmp_path / "one.pt")
    # ddp_spawn: ddp would re-run pytest's argv in the children (see environment notes).
    Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn").launch(_run, cfg, tmp_path / "two.pt")
    single = torch.load(tmp_path / "one.pt", weights_only=False)
    double = torch.load(tmp_path / "two.pt", weights_only=False)
    for one, two in zip(single[0] + [single[1]], double[0] + [double[1]], strict=True):
        for name in one:
            for key in one[name]:
                # batched passes group other devices in two processes: float summation order, magnified by
                # AdamW's division by the root of the squared-gradient average (see tests/test_batched.py)
                np.testing.assert_allclose(one[name][key].numpy(), two[name][key].numpy(), rtol=1e-5, atol=1e-5)
    for h1, h2 in zip(single[2], double[2], strict=True):
        assert h1["participants"] == h2["participants"]
        assert abs(h1["accuracy"] - h2["accuracy"]) < 1e-6
        assert abs(h1["cost/latency_s"] - h2["cost/latency_s"]) < 1e-9
