"""Parameter counts and bytes per module of the default M3T bank, and forward/backward timing.

Setup: 3 modalities (image [1,16,16], text vocab 64 length 12, I/Q signal [2,128]) x 4 tasks
(hffm.modules.synthetic.tiny_specs), default ModelConfig. Run: .venv/bin/python experiments/module_sizes.py
"""

from __future__ import annotations

import json
import platform
import time
from collections import defaultdict

import torch

from hffm.modules import ModelConfig, ModuleBank
from hffm.modules.synthetic import synthetic_batch, tiny_specs


def main() -> None:
    torch.set_num_threads(2)
    mods, tasks = tiny_specs()
    cfg = ModelConfig()
    bank = ModuleBank(cfg, mods, tasks)
    rows = [(n, bank.kind(n), bank.num_params(n), bank.num_bytes(n)) for n in bank.names() + ["trunk"]]
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for name, kind, params, nbytes in rows:
        print(f"{name:22s} {kind:8s} {params:8d} params {nbytes:9d} bytes")
        per_kind[kind][0] += 1
        per_kind[kind][1] += params
        per_kind[kind][2] += nbytes
    print("\nper kind (count, params, bytes):")
    for kind, (count, params, nbytes) in per_kind.items():
        print(f"  {kind:8s} x{count}: {params:8d} params {nbytes:9d} bytes")
    model = bank.full_model()
    batch = synthetic_batch(mods, tasks, 32, seed=0, missing=0.2)
    for _ in range(2):  # warm-up
        out, aux = model(batch["inputs"], batch["present"])
    reps = 10
    start = time.perf_counter()
    for _ in range(reps):
        out, aux = model(batch["inputs"], batch["present"])
        loss = sum(model.task_loss(t, out[t], batch["targets"][t]) for t in out) + cfg.moe_aux_weight * aux
        loss.backward()
    step = (time.perf_counter() - start) / reps
    summary = {"machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
               "federated_params": sum(r[2] for r in rows if r[1] != "trunk"),
               "trunk_params": bank.num_params("trunk"),
               "fwd_bwd_batch32_s": round(step, 4)}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
