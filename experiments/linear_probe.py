"""How hard is the M3T benchmark? A linear probe on raw inputs versus a small nonlinear network.

For every (task, modality that carries it) pair this trains, on the raw flattened input:
  * a linear probe: multinomial logistic regression (L-BFGS, L2 chosen on a validation split) for
    classification, ridge least squares for regression; text is one-hot per position;
  * a small nonlinear model of the same input: a 2-layer CNN (image), an embedding + 1-D CNN (text),
    a 1-D CNN (iq), trained with Adam.
It prints test accuracy (classification) or MAE in dB (snr), the command line and the machine.

    .venv/bin/python experiments/linear_probe.py --seed 0
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hffm.data import BenchmarkConfig, M3TDataset, make_benchmark  # noqa: E402


def raw_features(ds: M3TDataset, modality: str) -> torch.Tensor:
    """Flattened raw input; text as one-hot word ids per position (a linear model of token positions)."""
    x = ds.inputs[modality]
    if ds.modality(modality).kind == "text":
        return nn.functional.one_hot(x, len(ds.vocab)).flatten(1).float()
    return x.flatten(1).float()


def fit_logistic(xtr: torch.Tensor, ytr: torch.Tensor, k: int, l2: float, iters: int = 150) -> nn.Linear:
    lin = nn.Linear(xtr.shape[1], k)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(lin(xtr), ytr) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin


def fit_ridge(xtr: torch.Tensor, ytr: torch.Tensor, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    xm, ym = xtr.mean(0), ytr.mean()
    xc = (xtr - xm).double()
    w = torch.linalg.solve(xc.T @ xc + l2 * len(xtr) * torch.eye(xc.shape[1], dtype=torch.float64),
                           xc.T @ (ytr - ym).double()).float()
    return w, ym - xm @ w


def linear_probe(xtr, ytr, xte, yte, kind: str, k: int | None, seed: int) -> float:
    """Test accuracy (classification) or MAE (regression, in target units); L2 picked on 20% of train."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    perm = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(seed))
    nv = len(xtr) // 5
    va, tr = perm[:nv], perm[nv:]
    best, best_l2 = None, None
    for l2 in (1e-4, 1e-3, 1e-2, 1e-1):
        if kind == "classification":
            lin = fit_logistic(xtr[tr], ytr[tr], k, l2)
            score = (lin(xtr[va]).argmax(1) == ytr[va]).float().mean().item()
        else:
            w, b = fit_ridge(xtr[tr], ytr[tr], l2)
            score = -(xtr[va] @ w + b - ytr[va]).abs().mean().item()
        if best is None or score > best:
            best, best_l2 = score, l2
    if kind == "classification":
        lin = fit_logistic(xtr, ytr, k, best_l2)
        with torch.no_grad():
            return (lin(xte).argmax(1) == yte).float().mean().item()
    w, b = fit_ridge(xtr, ytr, best_l2)
    return (xte @ w + b - yte).abs().mean().item()


def small_net(kind: str, ds: M3TDataset, modality: str, out: int) -> nn.Module:
    spec = ds.modality(modality)
    if spec.kind == "image":
        return nn.Sequential(
            nn.Conv2d(spec.shape[0], 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
            nn.Linear(64, out))
    if spec.kind == "text":
        class TextNet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = nn.Embedding(spec.vocab_size, 32, padding_idx=0)
                self.conv = nn.Sequential(nn.Conv1d(32, 64, 3, padding=1), nn.ReLU(),
                                          nn.Conv1d(64, 64, 3, padding=1), nn.ReLU())
                self.head = nn.Linear(64, out)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.head(self.conv(self.emb(x).transpose(1, 2)).amax(2))
        return TextNet()
    return nn.Sequential(
        nn.Conv1d(spec.shape[0], 32, 7, padding=3), nn.ReLU(),
        nn.Conv1d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(64, 64, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, out))


def train_small(train: M3TDataset, test: M3TDataset, task: str, modality: str, epochs: int, seed: int) -> float:
    torch.manual_seed(seed)  # this script's own run, not at import
    spec = train.task(task)
    cls = spec.kind == "classification"
    net = small_net(spec.kind, train, modality, spec.num_classes if cls else 1)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((len(train) + 63) // 64))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for b in train.batches(64, shuffle=True, generator=gen):
            pred = net(b["inputs"][modality])
            y = b["targets"][task]
            loss = nn.functional.cross_entropy(pred, y) if cls else nn.functional.smooth_l1_loss(pred[:, 0], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        pred = net(test.inputs[modality])
    y = test.targets[task]
    return (pred.argmax(1) == y).float().mean().item() if cls else (pred[:, 0] - y).abs().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-samples", type=int, default=3000)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the small nonlinear models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-nonlinear", action="store_true", help="only the linear probe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = BenchmarkConfig(num_samples=args.num_samples)
    t0 = time.perf_counter()
    ds = make_benchmark(cfg, seed=args.seed)
    gen_s = time.perf_counter() - t0
    train, test = ds.split(args.test_fraction, seed=args.seed)
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPU cores visible, "
          f"torch {torch.__version__} on {args.threads} threads (CPU, no GPU)")
    print(f"benchmark: {cfg}")
    print(f"generated {len(ds)} samples in {gen_s:.2f} s; train {len(train)}, test {len(test)}")
    chance = {t.name: 1.0 / t.num_classes for t in ds.tasks if t.kind == "classification"}
    snr_scale = (cfg.snr_db_range[1] - cfg.snr_db_range[0]) / 2  # target units -> dB
    ys = train.targets["snr"]
    const_mae = (test.targets["snr"] - ys.median()).abs().mean().item() * snr_scale
    print(f"chance: {', '.join(f'{k} {v:.3f}' for k, v in chance.items())}; snr MAE of a constant: "
          f"{const_mae:.2f} dB")
    print(f"{'task':<11}{'modality':<9}{'metric':<10}{'linear':>9}{'small net':>11}{'lin s':>7}{'net s':>7}")
    for spec in ds.tasks:
        for m in ds.task_modalities[spec.name]:
            t1 = time.perf_counter()
            y_tr, y_te = train.targets[spec.name], test.targets[spec.name]
            lin = linear_probe(raw_features(train, m), y_tr, raw_features(test, m), y_te, spec.kind,
                               spec.num_classes, args.seed)
            t2 = time.perf_counter()
            net = float("nan") if args.no_nonlinear else train_small(train, test, spec.name, m, args.epochs,
                                                                      args.seed)
            t3 = time.perf_counter()
            if spec.kind == "regression":
                metric, lin, net = "MAE dB", lin * snr_scale, net * snr_scale
            else:
                metric = "accuracy"
            print(f"{spec.name:<11}{m:<9}{metric:<10}{lin:>9.3f}{net:>11.3f}{t2 - t1:>7.1f}{t3 - t2:>7.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
