"""LightningModule around a device's M3T sub-model, drivable by a manual Fabric loop.

`loss = lm.training_step(batch, i); fabric.backward(loss); opt.step()` works without a Trainer;
`validation_step` feeds torchmetrics per task and `compute_metrics()` reads and resets them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from hffm.modules.model import M3TModel
from hffm.spec import OPTIMIZER_NAMES

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": lambda params, lr, wd: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
    "adam": lambda params, lr, wd: torch.optim.Adam(params, lr=lr, weight_decay=wd),
    "sgd": lambda params, lr, wd: torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=0.9),
}
"""Optimizer by name; every one is elementwise, so one over device-stacked parameters steps each device alone."""
assert tuple(sorted(OPTIMIZERS)) == tuple(sorted(OPTIMIZER_NAMES)), "hffm.spec.OPTIMIZER_NAMES must list OPTIMIZERS"


class M3TLightningModule(L.LightningModule):
    """Task losses (+ weighted MoE balance loss) for training, per-task metrics for evaluation."""

    def __init__(self, model: M3TModel, lr: float = 1e-3, weight_decay: float = 0.0,
                 optimizer: str = "adamw") -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {optimizer!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.model = model
        self.lr, self.weight_decay, self.optimizer_name = lr, weight_decay, optimizer
        self.last_task_losses: dict[str, float] = {}
        self.last_aux_loss: float = 0.0
        self.metrics = nn.ModuleDict()
        for task in model.tasks:
            if task.kind == "classification":
                n = int(task.num_classes or 0)
                self.metrics[task.name] = nn.ModuleDict({
                    "acc": MulticlassAccuracy(num_classes=n, average="micro", sync_on_compute=False),
                    "f1": MulticlassF1Score(num_classes=n, average="macro", sync_on_compute=False)})
            else:
                self.metrics[task.name] = nn.ModuleDict({"mae": MeanAbsoluteError(sync_on_compute=False)})
        self._updated: set[str] = set()

    def forward(self, inputs: Mapping[str, Tensor],
                present: Mapping[str, Tensor] | None = None) -> tuple[dict[str, Tensor], Tensor]:
        return self.model(inputs, present)

    def _loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        if "inputs" not in batch or "targets" not in batch:
            raise ValueError(f"batch must hold 'inputs' and 'targets' (and optionally 'present'), got {list(batch)}")
        outputs, aux = self.model(batch["inputs"], batch.get("present"))
        targets = batch["targets"]
        unknown = sorted(set(targets) - set(outputs))
        if unknown:
            raise ValueError(f"batch has targets for tasks {unknown} this model has no head for "
                             f"(model tasks: {sorted(outputs)})")
        losses = {t: self.model.task_loss(t, outputs[t], y) for t, y in targets.items()}
        total = sum(losses.values(), torch.zeros((), device=aux.device)) + self.model.cfg.moe_aux_weight * aux
        self.last_aux_loss = float(aux.detach())
        return total, losses, outputs

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Sum of the batch's task losses + moe_aux_weight * aux; per-task values in last_task_losses."""
        total, losses, _ = self._loss(batch)
        self.last_task_losses = {t: float(v.detach()) for t, v in losses.items()}
        return total

    @torch.no_grad()
    def validation_step(self, batch: Mapping[str, Any], batch_idx: int = 0) -> Tensor:
        """Update the per-task metrics with one batch; returns its loss."""
        total, _, outputs = self._loss(batch)
        for task, target in batch["targets"].items():
            out, target = outputs[task], target.to(outputs[task].device)
            keep = self.model.head(task).labelled(target)  # missing labels are not scored
            if not bool(keep.any()):
                continue
            for metric in self._task_metrics(task).values():
                metric.update(out[keep], target[keep])
            self._updated.add(task)
        return total

    def _task_metrics(self, task: str) -> dict[str, Metric]:
        """One task's metrics by name (held in nn.ModuleDicts so they follow the module's device)."""
        return {k: cast(Metric, m) for k, m in cast(nn.ModuleDict, self.metrics[task]).items()}

    def compute_metrics(self) -> dict[str, float]:
        """{'<task>/acc', '<task>/f1'} for classification, {'<task>/mae'} for regression; then reset."""
        result = {}
        for task in self._updated:
            for key, metric in self._task_metrics(task).items():
                result[f"{task}/{key}"] = float(metric.compute())
        self.reset_metrics()
        return dict(sorted(result.items()))

    def reset_metrics(self) -> None:
        """Forget all metric state."""
        for task in self.metrics:
            for metric in self._task_metrics(task).values():
                metric.reset()
        self._updated.clear()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Optimizer over the sub-model's trainable parameters only (re-applies its requires_grad flags)."""
        self.model.apply_trainable()
        params = self.model.trainable_parameters()
        if not params:
            raise ValueError(f"model has no trainable parameters (trainable modules: "
                             f"{self.model.trainable_module_names}, train_trunk={self.model.train_trunk})")
        return OPTIMIZERS[self.optimizer_name](params, self.lr, self.weight_decay)
