"""Central pretraining of the whole bank (trunk unfrozen) and its checkpoint format.

The federated runs start from a pretrained foundation: `pretrain` trains trunk, encoders,
prompts, experts, adapters and heads together on one dataset (a Hugging Face trunk is already
pretrained and stays frozen: then everything but it is trained), `save_pretrained` writes the bank
state with its config and specs as plain dicts, `load_pretrained` checks them before loading.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sized
from dataclasses import asdict
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from hffm.modules.bank import ModuleBank
from hffm.modules.config import ModelConfig
from hffm.modules.lightning import M3TLightningModule
from hffm.modules.model import set_trainable
from hffm.safe_io import atomic_torch_save, safe_torch_load
from hffm.spec import ModalitySpec, TaskSpec

log = logging.getLogger(__name__)

FORMAT = "hffm-module-bank/1"
# fields that change parameter shapes or meaning; the others (dropout, freezing, loss weights, top_k)
# may differ between pretraining and fine-tuning
ARCH_FIELDS = ("width", "trunk_layers", "trunk_heads", "mlp_ratio", "num_experts", "adapter_bottleneck",
               "lora_rank", "lora_alpha", "prompt_len", "image_patch", "signal_patch", "signal_iq_features",
               "text_encoder", "text_freeze_backbone", "trunk", "trunk_weights")


def _fit_regression_scales(bank: ModuleBank, dataset: Dataset, max_samples: int = 1024) -> None:
    """Set each regression head's target mean/std from (up to max_samples of) the dataset."""
    reg = [t for t, spec in bank.tasks.items() if spec.kind == "regression"]
    if not reg:
        return
    values: dict[str, list[torch.Tensor]] = {t: [] for t in reg}
    n = min(len(cast(Sized, dataset)), max_samples)
    for i in range(n):
        targets = dataset[i]["targets"]
        for t in reg:
            if t in targets:
                values[t].append(torch.as_tensor(targets[t], dtype=torch.float32).reshape(-1))
    for t, vals in values.items():
        if vals:
            y = torch.cat(vals)
            std = float(y.std()) if y.numel() > 1 else 1.0
            bank.set_target_scale(t, float(y.mean()), std if std > 1e-8 else 1.0)


def pretrain(bank: ModuleBank, dataset: Dataset, *, steps: int, batch_size: int, lr: float, seed: int,
             log_every: int = 50, eval_samples: int = 512) -> dict[str, float]:
    """Train every module and the trunk (unless frozen Hugging Face) centrally; return metrics after the last step.

    Returns 'loss' and '<task>/loss' (mean over the last `log_every` steps), the per-task metrics
    of M3TLightningModule on up to `eval_samples` training samples, 'steps' and 'seconds'.
    The global RNG is forked, so the caller's random state is untouched; `seed` fixes the run.
    """
    if steps < 1 or batch_size < 1 or not lr > 0 or log_every < 1:
        raise ValueError(f"pretrain: steps, batch_size, log_every must be >= 1 and lr > 0 "
                         f"(got steps={steps}, batch_size={batch_size}, lr={lr}, log_every={log_every})")
    size = len(cast(Sized, dataset))  # map-style datasets have a length; torch's Dataset type does not declare it
    if size == 0:
        raise ValueError("pretrain: the dataset is empty")
    was_training = bank.training
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _fit_regression_scales(bank, dataset)
        model = bank.submodel(list(bank.modalities), list(bank.tasks), trainable=bank.names(), train_trunk=True)
        lm = M3TLightningModule(model, lr=lr)
        opt = lm.configure_optimizers()
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=size >= batch_size,
                            generator=torch.Generator().manual_seed(seed))
        window: list[tuple[float, dict[str, float]]] = []
        start = time.perf_counter()
        model.train()
        step = 0
        while step < steps:
            for batch in loader:
                loss = lm.training_step(batch, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                window = (window + [(float(loss.detach()), lm.last_task_losses)])[-log_every:]
                step += 1
                if step % log_every == 0 or step == steps:
                    log.info("pretrain step %d/%d loss %.4f", step, steps, sum(w[0] for w in window) / len(window))
                if step >= steps:
                    break
        seconds = time.perf_counter() - start
        model.eval()
        n_eval = min(eval_samples, size)
        with torch.no_grad():
            for batch in DataLoader(Subset(dataset, range(n_eval)), batch_size=batch_size):
                lm.validation_step(batch)
        metrics = lm.compute_metrics()
    set_trainable(bank.trunk, not bank.cfg.freeze_trunk)
    bank.train(was_training)
    metrics["loss"] = sum(w[0] for w in window) / len(window)
    tasks = sorted({t for _, per in window for t in per})
    for t in tasks:
        vals = [per[t] for _, per in window if t in per]
        metrics[f"{t}/loss"] = sum(vals) / len(vals)
    metrics["steps"] = float(steps)
    metrics["seconds"] = seconds
    return dict(sorted(metrics.items()))


def _frozen_keys(bank: ModuleBank) -> set[str]:
    """Bank state keys of fixed pretrained parts rebuilt from disk or seed (a frozen HF trunk or text backbone)."""
    keys: set[str] = set()
    for prefix, module in bank.named_modules():
        frozen = tuple(getattr(module, "frozen_prefixes", ()))
        if frozen:
            for k in module.state_dict():
                if k.startswith(frozen):
                    keys.add(f"{prefix}.{k}" if prefix else k)
    return keys


def save_pretrained(bank: ModuleBank, path: str | os.PathLike[str],
                    metrics: Mapping[str, float] | None = None, data: Mapping[str, Any] | None = None) -> None:
    """Write the bank state (not a frozen HF trunk or backbone) with its config and specs as plain dicts.

    ``data``: what it was trained on (``hffm.data.leakage.training_record``), so a federated run can
    refuse a checkpoint that saw its test set. Atomic: a kill mid-write leaves the previous file.
    """
    frozen = _frozen_keys(bank)
    state = {k: v.detach().cpu().clone() for k, v in bank.state_dict().items() if k not in frozen}
    ckpt = {"format": FORMAT, "config": bank.cfg.to_dict(), "seed": bank.seed,
            "modalities": [asdict(m) for m in bank.modalities.values()],
            "tasks": [asdict(t) for t in bank.tasks.values()],
            "metrics": dict(metrics or {}), "data": dict(data) if data is not None else None, "state": state}
    atomic_torch_save(ckpt, path)


def pretrained_data(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The data record of a save_pretrained checkpoint (None if it has none: saved without one, or older)."""
    ckpt = safe_torch_load(path, "pretrained checkpoint")
    return ckpt.get("data") if isinstance(ckpt, dict) else None


def _specs_differ(saved: list[dict[str, Any]], own: list[Any], cls: type) -> str | None:
    try:
        theirs = [cls(**{**d, "shape": tuple(d["shape"])} if "shape" in d else d) for d in saved]
    except (TypeError, ValueError) as err:
        return f"unreadable specs ({err})"
    return None if theirs == list(own) else f"checkpoint has {theirs}, bank has {list(own)}"


def load_pretrained(bank: ModuleBank, path: str | os.PathLike[str], trunk_only: bool = False) -> dict[str, Any]:
    """Load a save_pretrained checkpoint into `bank` after checking config and specs.

    trunk_only: load only the trunk (the foundation) into a bank whose modalities/tasks differ;
    then only the architecture fields of the config must match. Returns the checkpoint's metrics.
    """
    ckpt = safe_torch_load(path, "pretrained checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not an hffm module-bank checkpoint (format {FORMAT!r})")
    saved_cfg = ModelConfig.from_dict(ckpt["config"])
    diff = {f: (getattr(saved_cfg, f), getattr(bank.cfg, f)) for f in ARCH_FIELDS
            if getattr(saved_cfg, f) != getattr(bank.cfg, f)}
    if diff:
        raise ValueError(f"{path}: ModelConfig mismatch (field: (checkpoint, bank)) {diff}; "
                         "build the bank with the checkpoint's config")
    if bank.cfg.trunk_weights == "random" and bank.cfg.hf_trunk and ckpt.get("seed") != bank.seed:
        raise ValueError(f"{path}: its random {bank.cfg.trunk} trunk came from seed {ckpt.get('seed')}, the bank's "
                         f"from seed {bank.seed}; build the bank with seed={ckpt.get('seed')}")
    if trunk_only:
        prefix = "trunk."
        trunk_state = {k[len(prefix):]: v for k, v in ckpt["state"].items() if k.startswith(prefix)}
        if not bank.cfg.hf_trunk:  # a Hugging Face trunk is rebuilt from its folder, never saved
            bank.trunk.load_state_dict(trunk_state)
        return dict(ckpt.get("metrics", {}))
    for key, cls, own in (("modalities", ModalitySpec, bank.modalities.values()),
                          ("tasks", TaskSpec, bank.tasks.values())):
        problem = _specs_differ(ckpt[key], list(own), cls)
        if problem:
            raise ValueError(f"{path}: {key} mismatch: {problem}; build the bank with the same specs "
                             "or pass trunk_only=True")
    frozen = _frozen_keys(bank)
    own_keys = set(bank.state_dict()) - frozen
    missing, extra = sorted(own_keys - set(ckpt["state"])), sorted(set(ckpt["state"]) - own_keys)
    if missing or extra:
        raise ValueError(f"{path}: state keys differ from the bank (missing {missing[:5]}, unexpected {extra[:5]})")
    bank.load_state_dict(ckpt["state"], strict=False)
    return dict(ckpt.get("metrics", {}))
