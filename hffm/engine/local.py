"""What one device does in a round: load its modules, run local steps, hand back updates.

One module bank lives in each process; a device's sub-model is a view of it with the device's
module states loaded in, so the frozen trunk exists once however many devices are simulated.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from lightning.fabric import Fabric

from hffm.data.dataset import M3TDataset
from hffm.engine.jobs import DeviceJob, LocalConfig, TrainResult
from hffm.modules.bank import ModuleBank
from hffm.modules.lightning import M3TLightningModule


def _to_device(fabric: Fabric, batch: dict) -> dict:
    return {k: {n: fabric.to_device(t) for n, t in v.items()} for k, v in batch.items()}


def _batches(data: M3TDataset, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
    while True:  # as many passes as the step budget needs
        yield from data.batches(batch_size, shuffle=True, generator=generator)


def _rows(batch: dict) -> int:
    """Rows in a mini-batch (every tensor of it has one per sample)."""
    return int(next(iter(batch["targets"].values())).shape[0])


def lightning_module(bank: ModuleBank, modalities: list[str], tasks: list[str], trainable: list[str],
                     cfg: LocalConfig | None) -> M3TLightningModule:
    """The LightningModule of one device signature, built once per bank (its metrics start reset).

    A model over the bank's own modules holds no state of its own, so every device with the same
    modalities, tasks and placed modules can share it; ``cfg`` None: for evaluation only.
    """
    hyper = (cfg.lr, cfg.weight_decay, cfg.optimizer) if cfg is not None else None
    key = ("lightning", tuple(modalities), tuple(tasks), tuple(trainable), hyper)
    if key not in bank.derived:
        model = bank.submodel(modalities, tasks, trainable=trainable)
        bank.derived[key] = (M3TLightningModule(model) if cfg is None else
                             M3TLightningModule(model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                                optimizer=cfg.optimizer))
    lm = bank.derived[key]
    assert isinstance(lm, M3TLightningModule)
    return lm


def train_device(fabric: Fabric, bank: ModuleBank, job: DeviceJob, cfg: LocalConfig) -> TrainResult:
    """Train the device's sub-model from ``job.states``; returns the trained modules' states and losses.

    ``job.seed`` fixes the batch order (and any dropout), so a device trains identically on whatever
    rank runs it; the global RNG is forked for the dropout draws, so nothing outside changes.
    """
    data = job.data
    modalities = [m.name for m in data.modalities]
    tasks = [t.name for t in data.tasks]
    required = bank.required_modules(modalities, tasks)
    bank.load_states({name: job.states[name] for name in required})
    trainable = [m for m in required if m in set(job.trainable)]
    lm = lightning_module(bank, modalities, tasks, trainable, cfg)
    losses: dict[str, float] = {}
    rows = 0
    if trainable:
        devices = [fabric.device] if fabric.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(job.seed)
            optimizer = lm.configure_optimizers()
            generator = torch.Generator().manual_seed(job.seed)
            batches = _batches(data, cfg.batch_size, generator)
            lm.train()
            for step in range(cfg.steps):
                batch = next(batches)
                rows += _rows(batch)
                batch = _to_device(fabric, batch)
                loss = lm.training_step(batch, step)
                optimizer.zero_grad(set_to_none=True)
                fabric.backward(loss)
                optimizer.step()
        losses = {f"{task}/loss": value for task, value in lm.last_task_losses.items()}
        losses["loss"] = float(loss.detach())
    return TrainResult(job.device, bank.state_of(trainable), losses, float(rows))


@torch.no_grad()
def evaluate(
    fabric: Fabric,
    bank: ModuleBank,
    data: M3TDataset,
    states: Mapping[str, Mapping[str, torch.Tensor]],
    batch_size: int = 256,
) -> dict[str, float]:
    """Per-task metrics of the sub-model for ``data``'s modalities and tasks, with ``states`` loaded."""
    modalities = [m.name for m in data.modalities]
    tasks = [t.name for t in data.tasks]
    required = bank.required_modules(modalities, tasks)
    bank.load_states({name: states[name] for name in required})
    lm = lightning_module(bank, modalities, tasks, [], None)
    lm.reset_metrics()
    lm.eval()
    for i, batch in enumerate(data.batches(batch_size, shuffle=False)):
        lm.validation_step(_to_device(fabric, batch), i)
    return lm.compute_metrics()
