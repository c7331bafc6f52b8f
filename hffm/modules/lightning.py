"""LightningModule around a device's M3T sub-model, drivable by a manual Fabric loop.

`loss = lm.training_step(batch, i); fabric.backward(loss); opt.step()` works without a Trainer;
`validation_step` collects each task's outputs and `compute_metrics()` scores and forgets them. The loss
and the metrics are `hffm.modules.objective`'s, the optimizer `hffm.modules.optim`'s: batched training
uses the same three.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from hffm.modules.model import M3TModel
from hffm.modules.objective import task_losses, task_metrics, total_loss
from hffm.modules.optim import optimizer_record


class M3TLightningModule(L.LightningModule):
    """Task losses (+ weighted MoE balance loss) for training, per-task metrics for evaluation."""

    def __init__(self, model: M3TModel, lr: float = 1e-3, weight_decay: float = 0.0,
                 optimizer: str = "adamw") -> None:
        super().__init__()
        optimizer_record(optimizer)  # refuse an unknown name now, not at the first step
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.model = model
        self.lr, self.weight_decay, self.optimizer_name = lr, weight_decay, optimizer
        self.last_task_losses: dict[str, float] = {}
        self.last_aux_loss: float = 0.0
        self._collected: dict[str, list[tuple[Tensor, Tensor]]] = {}

    def forward(self, inputs: Mapping[str, Tensor],
                present: Mapping[str, Tensor] | None = None) -> tuple[dict[str, Tensor], Tensor]:
        return self.model(inputs, present)

    def _loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        if "inputs" not in batch or "targets" not in batch:
            raise ValueError(f"batch must hold 'inputs' and 'targets' (and optionally 'present'), got {list(batch)}")
        outputs, aux = self.model(batch["inputs"], batch.get("present"))
        losses = task_losses(self.model, outputs, batch["targets"])
        self.last_aux_loss = float(aux.detach())
        return total_loss(self.model, losses, aux), losses, outputs

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Sum of the batch's task losses + moe_aux_weight * aux; per-task values in last_task_losses."""
        total, losses, _ = self._loss(batch)
        self.last_task_losses = {t: float(v.detach()) for t, v in losses.items()}
        return total

    @torch.no_grad()
    def validation_step(self, batch: Mapping[str, Any], batch_idx: int = 0) -> Tensor:
        """Collect one batch's outputs and targets per task for `compute_metrics`; returns its loss."""
        total, _, outputs = self._loss(batch)
        for task, target in batch["targets"].items():
            out, target = outputs[task], target.to(outputs[task].device)
            keep = self.model.head(task).labelled(target)  # missing labels are not scored
            if bool(keep.any()):
                self._collected.setdefault(task, []).append((out[keep].detach(), target[keep]))
        return total

    def compute_metrics(self) -> dict[str, float]:
        """{'<task>/acc', '<task>/f1'} for classification, {'<task>/mae'} for regression; then reset."""
        specs = {t.name: t for t in self.model.tasks}
        result: dict[str, float] = {}
        for task, pairs in self._collected.items():
            scores = task_metrics(specs[task], torch.cat([o for o, _ in pairs]), torch.cat([y for _, y in pairs]))
            result |= {f"{task}/{key}": value for key, value in scores.items()}
        self.reset_metrics()
        return dict(sorted(result.items()))

    def reset_metrics(self) -> None:
        """Forget all collected outputs."""
        self._collected.clear()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Optimizer over the sub-model's trainable parameters only (re-applies its requires_grad flags)."""
        self.model.apply_trainable()
        params = self.model.trainable_parameters()
        if not params:
            raise ValueError(f"model has no trainable parameters (trainable modules: "
                             f"{self.model.trainable_module_names}, train_trunk={self.model.train_trunk})")
        return optimizer_record(self.optimizer_name).make(params, self.lr, self.weight_decay)
