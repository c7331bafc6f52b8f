"""The training objective and the evaluation metrics, written once for both training paths.

A device trains on the sum of its task losses plus the weighted MoE balance loss, whether it trains
alone (`M3TLightningModule`, one device's batch) or in a batched pass with others
(`hffm.engine.batched`, one padded batch per device under vmap): the batched pass only adds masks,
``rows`` for a short batch's padding and ``held`` for the tasks a device lacks. Evaluation of one
model (`hffm.engine.local.evaluate`) and of many in batched passes (`hffm.engine.batched_eval`) score
what they collected with the same `task_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torchmetrics.functional import mean_absolute_error
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from hffm.modules.model import M3TModel
from hffm.spec import TaskSpec


def task_losses(model: M3TModel, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor],
                rows: Tensor | None = None) -> dict[str, Tensor]:
    """Each target's task loss, the head's mean over the batch; ``rows`` (bool [B]): the samples that count.

    Without ``rows`` the head's own mean (`Head.loss`, which also checks the targets), so a device training
    alone computes exactly what it always did; with it, the mean of `Head.per_sample_loss` over the rows
    whose label is not missing (`Head.labelled`), as `Head.loss` averages over the labelled samples.
    """
    unknown = sorted(set(targets) - set(outputs))
    if unknown:
        raise ValueError(f"batch has targets for tasks {unknown} this model has no head for "
                         f"(model tasks: {sorted(outputs)})")
    if rows is None:
        return {t: model.task_loss(t, outputs[t], y) for t, y in targets.items()}
    losses = {}
    for t, y in targets.items():
        head = model.head(t)
        weight = (rows & head.labelled(y)).to(outputs[t].dtype)  # padding rows and missing labels count for nothing
        losses[t] = (head.per_sample_loss(outputs[t], y) * weight).sum() / weight.sum().clamp(min=1)
    return losses


def total_loss(model: M3TModel, losses: Mapping[str, Tensor], aux: Tensor,
               held: Mapping[str, Tensor] | None = None) -> Tensor:
    """Sum of the task losses (in ``losses``' order) + ``moe_aux_weight`` * aux; ``held[t]`` (bool scalar)
    False drops task t (a batched pass's task the device lacks)."""
    total = torch.zeros((), dtype=aux.dtype, device=aux.device)
    for task, loss in losses.items():
        total = total + (loss if held is None else torch.where(held[task], loss, torch.zeros_like(loss)))
    return total + model.cfg.moe_aux_weight * aux


def task_metrics(spec: TaskSpec, outputs: Tensor, targets: Tensor) -> dict[str, float]:
    """One task's scores over all its evaluated samples: ``acc`` (micro) and ``f1`` (macro) for classification,
    ``mae`` for regression; empty when there are no samples."""
    if len(targets) == 0:
        return {}
    if spec.kind == "classification":
        n = int(spec.num_classes or 0)
        return {"acc": float(multiclass_accuracy(outputs, targets, num_classes=n, average="micro")),
                "f1": float(multiclass_f1_score(outputs, targets, num_classes=n, average="macro"))}
    return {"mae": float(mean_absolute_error(outputs, targets.to(outputs.dtype)))}
