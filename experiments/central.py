"""Central reference for the federated runs: pretrain the M3T bank, then fine-tune it as devices do.

1. pretrain: trunk, encoders, prompts, experts, adapters and heads trained together on the training
   split (what ``hffm-pretrain`` does);
2. fine-tune: from that checkpoint, trunk frozen, everything else trainable (what a federated run
   trains), on the same pooled training data: the upper bound a federated run approaches;
3. control: the same fine-tuning on a bank whose frozen trunk was never pretrained;
4. reference: a linear probe on the raw input per (task, modality) (experiments/linear_probe.py).
Every model row is scored on the held-out test split (the federated runs' global test set:
same seed, same fraction): accuracy and macro-F1 per classification task, MAE of snr in dB and in
the normalised target. Writes experiments/results/central/results.{md,json}.

    .venv/bin/python experiments/central.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib.resources import files
from pathlib import Path

import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from linear_probe import linear_probe, raw_features  # noqa: E402

from hffm.data import BenchmarkConfig, M3TDataset, make_benchmark  # noqa: E402
from hffm.modules import ModelConfig, ModuleBank  # noqa: E402
from hffm.modules.lightning import M3TLightningModule  # noqa: E402
from hffm.modules.pretrain import pretrain  # noqa: E402

MACHINE = "2-core CPU container, shared"


def model_config(name: str) -> ModelConfig:
    """The ModelConfig of conf/model/NAME.yaml (the preset hffm-train and hffm-pretrain use)."""
    raw = OmegaConf.to_container(OmegaConf.create(files("hffm.conf").joinpath("model", f"{name}.yaml").read_text()))
    raw.pop("defaults", None)
    return ModelConfig(**raw)


def evaluate(bank: ModuleBank, test: M3TDataset, cfg: BenchmarkConfig) -> dict[str, float]:
    """Per-task test metrics of the full model; snr MAE also in dB."""
    lm = M3TLightningModule(bank.full_model().eval())
    with torch.no_grad():
        for batch in test.batches(256, shuffle=False):
            lm.validation_step(batch)
    out = lm.compute_metrics()
    out["snr/mae_db"] = out["snr/mae"] * (cfg.snr_db_range[1] - cfg.snr_db_range[0]) / 2
    return out


def finetune(bank: ModuleBank, train: M3TDataset, steps: int, batch_size: int, lr: float, seed: int) -> float:
    """Train every module with the trunk frozen (a federated device's trainable set); returns seconds."""
    model = bank.full_model(train_trunk=False)
    lm = M3TLightningModule(model, lr=lr)
    opt = lm.configure_optimizers()
    assert not any(p.requires_grad for p in bank.trunk.parameters())
    gen = torch.Generator().manual_seed(seed)
    model.train()
    start, step = time.perf_counter(), 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        while step < steps:
            for batch in train.batches(batch_size, shuffle=True, generator=gen, drop_last=True):
                loss = lm.training_step(batch, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step >= steps:
                    break
    model.eval()
    return time.perf_counter() - start


def probe_rows(train: M3TDataset, test: M3TDataset, cfg: BenchmarkConfig, seed: int) -> dict[str, float]:
    """Linear-probe accuracy (classification) or MAE in dB (snr) per (task, modality)."""
    rows = {}
    half = (cfg.snr_db_range[1] - cfg.snr_db_range[0]) / 2
    for spec in train.tasks:
        for m in train.task_modalities[spec.name]:
            value = linear_probe(raw_features(train, m), train.targets[spec.name], raw_features(test, m),
                                 test.targets[spec.name], spec.kind, spec.num_classes, seed)
            rows[f"{spec.name}/{m}"] = value * half if spec.kind == "regression" else value
    return rows


def table(rows: dict[str, dict[str, float]], tasks: list[str]) -> list[str]:
    head = ["model"] + [f"{t} acc / F1" for t in tasks if t != "snr"] + ["snr MAE dB (norm.)", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, r in rows.items():
        cells = [name] + [f"{r[f'{t}/acc']:.3f} / {r[f'{t}/f1']:.3f}" for t in tasks if t != "snr"]
        cells += [f"{r['snr/mae_db']:.2f} ({r['snr/mae']:.3f})", f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-samples", type=int, default=3000)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--model", default="small", help="a conf/model preset")
    ap.add_argument("--pretrain-steps", type=int, default=600)
    ap.add_argument("--finetune-steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3, help="pretraining learning rate")
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-probe", action="store_true", help="skip the linear-probe reference")
    ap.add_argument("--no-control", action="store_true", help="skip the never-pretrained-trunk control")
    ap.add_argument("--out", default="experiments/results/central", help="output folder (relative: to the cwd)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    bcfg = BenchmarkConfig(num_samples=args.num_samples)
    data = make_benchmark(bcfg, args.seed)
    train, test = data.split(args.test_fraction, args.seed)
    mcfg = model_config(args.model)
    command = "python experiments/central.py " + " ".join(sys.argv[1:])
    print(f"command: {command}\nmachine: {MACHINE} ({platform.machine()}, {os.cpu_count()} cores visible, "
          f"torch {torch.__version__}, {args.threads} threads)\ntrain {len(train)}, test {len(test)}", flush=True)

    def bank() -> ModuleBank:
        return ModuleBank(mcfg, data.modalities, data.tasks, vocab=data.vocab, seed=args.seed)

    rows: dict[str, dict[str, float]] = {}
    pre = bank()
    m = pretrain(pre, train, steps=args.pretrain_steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                 log_every=100)
    rows[f"pretrained (all modules + trunk, {args.pretrain_steps} steps)"] = {**evaluate(pre, test, bcfg),
                                                                               "seconds": m["seconds"]}
    print(rows[next(reversed(rows))], flush=True)
    secs = finetune(pre, train, args.finetune_steps, args.batch_size, args.finetune_lr, args.seed)
    rows[f"+ fine-tuned, trunk frozen ({args.finetune_steps} steps)"] = {**evaluate(pre, test, bcfg),
                                                                         "seconds": secs}
    print(rows[next(reversed(rows))], flush=True)
    if not args.no_control:
        ctrl = bank()
        ctrl.set_target_scale("snr", float(pre.module("head/snr").target_mean),
                              float(pre.module("head/snr").target_scale))
        secs = finetune(ctrl, train, args.finetune_steps, args.batch_size, args.finetune_lr, args.seed)
        rows[f"control: random frozen trunk, fine-tuned ({args.finetune_steps} steps)"] = {
            **evaluate(ctrl, test, bcfg), "seconds": secs}
        print(rows[next(reversed(rows))], flush=True)
    probe = {} if args.no_probe else probe_rows(train, test, bcfg, args.seed)
    total = time.perf_counter() - t_all

    tasks = [t.name for t in data.tasks]
    chance = {t.name: 1 / t.num_classes for t in data.tasks if t.kind == "classification"}
    lines = [
        "# Central pretraining and fine-tuning on the built-in benchmark", "",
        f"Command: `{command}`  ",
        f"Machine: {MACHINE}; torch {torch.__version__} on {args.threads} threads; total {total:.0f} s.  ",
        f"Model preset `{args.model}`: {mcfg.to_dict()}.  ",
        f"Benchmark: {args.num_samples} samples, seed {args.seed}; train {len(train)}, held-out test {len(test)} "
        "(the federated runs' global test set). Batch {0}, AdamW, lr {1} (pretrain) / {2} (fine-tune).".format(
            args.batch_size, args.lr, args.finetune_lr), "",
        *table(rows, tasks), "",
        "Chance: " + ", ".join(f"{k} {v:.3f}" for k, v in chance.items())
        + f"; snr MAE of always predicting the mean: {(bcfg.snr_db_range[1] - bcfg.snr_db_range[0]) / 4:.2f} dB "
        "(uniform SNR).",
    ]
    if probe:
        lines += ["", "Linear probe on the raw input (experiments/linear_probe.py; accuracy, snr MAE in dB):", "",
                  "| task / modality | linear probe |", "| --- | --- |"]
        lines += [f"| {k} | {v:.3f} |" for k, v in probe.items()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({
        "command": command, "machine": MACHINE, "seconds": total, "args": vars(args), "model": mcfg.to_dict(),
        "rows": rows, "linear_probe": probe, "chance": chance}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
