"""M3TLightningModule: losses, metrics, optimizer over trainable params, manual Fabric loop."""

from __future__ import annotations

import pytest
import torch
from lightning.fabric import Fabric

from hffm.modules import ModelConfig, ModuleBank
from hffm.modules.lightning import M3TLightningModule
from hffm.modules.synthetic import synthetic_batch, tiny_specs


def _setup(**cfg_kw):
    mods, tasks = tiny_specs()
    cfg = ModelConfig(width=16, trunk_layers=1, trunk_heads=2, num_experts=2, top_k=1, adapter_bottleneck=4,
                      lora_rank=2, prompt_len=1, signal_patch=16, **cfg_kw)
    bank = ModuleBank(cfg, mods, tasks)
    model = bank.submodel(["image", "iq"], ["object", "snr"])
    batch = synthetic_batch([mods[0], mods[2]], [tasks[0], tasks[3]], 8, seed=1, missing=0.3)
    return bank, model, batch


def test_training_step_and_metrics_keys() -> None:
    _, model, batch = _setup()
    lm = M3TLightningModule(model, lr=1e-2)
    loss = lm.training_step(batch, 0)
    assert loss.dim() == 0 and loss.requires_grad
    assert set(lm.last_task_losses) == {"object", "snr"}
    expected = sum(lm.last_task_losses.values()) + model.cfg.moe_aux_weight * lm.last_aux_loss
    assert abs(float(loss.detach()) - expected) < 1e-4
    # a batch with targets for only some tasks, and no "present"
    part = {"inputs": batch["inputs"], "targets": {"snr": batch["targets"]["snr"]}}
    lm.training_step(part, 1)
    assert set(lm.last_task_losses) == {"snr"}
    lm.validation_step(batch, 0)
    lm.validation_step(batch, 1)
    metrics = lm.compute_metrics()
    assert set(metrics) == {"object/acc", "object/f1", "snr/mae"}
    assert 0.0 <= metrics["object/acc"] <= 1.0 and metrics["snr/mae"] > 0
    mae = (model(batch["inputs"], batch["present"])[0]["snr"] - batch["targets"]["snr"]).abs().mean()
    assert abs(metrics["snr/mae"] - float(mae.detach())) < 1e-4
    assert lm.compute_metrics() == {}  # reset after compute
    with pytest.raises(ValueError, match=r"targets for tasks \['sentiment'\]"):
        lm.training_step({"inputs": batch["inputs"], "targets": {"sentiment": torch.zeros(8, dtype=torch.long)}}, 0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        M3TLightningModule(model, optimizer="lbfgs")


def test_optimizer_covers_only_trainable_parameters() -> None:
    bank, model, _ = _setup()
    opt = M3TLightningModule(model, weight_decay=0.1).configure_optimizers()
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert params == {id(p) for n in model.module_names for p in bank.module(n).parameters()}
    assert not params & {id(p) for p in bank.trunk.parameters()}
    head_only = bank.submodel(["iq"], ["snr"], trainable=["head/snr"])
    opt = M3TLightningModule(head_only, optimizer="sgd").configure_optimizers()
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {
        id(p) for p in bank.module("head/snr").parameters()}


def test_manual_fabric_loop_trains() -> None:
    bank, model, batch = _setup()
    trunk_before = bank.module_state("trunk")
    head_before = bank.module_state("head/object")
    fabric = Fabric(accelerator="cpu", devices=1)
    lm = M3TLightningModule(model, lr=1e-2)
    opt = lm.configure_optimizers()
    lm, opt = fabric.setup(lm, opt)
    losses = []
    for i in range(15):
        opt.zero_grad()
        loss = lm.training_step(batch, i)
        fabric.backward(loss)
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    assert all(torch.equal(v, bank.module_state("trunk")[k]) for k, v in trunk_before.items())
    assert not torch.equal(head_before["fc.weight"], bank.module_state("head/object")["fc.weight"])


def test_federation_config_refuses_an_unknown_optimizer() -> None:
    from hffm.federation.config import FederationConfig

    with pytest.raises(ValueError, match=r"federation.optimizer='lbfgs': choose one of \['adam', 'adamw', 'sgd'\]"):
        FederationConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="federation.weight_decay=-0.1: must be >= 0"):
        FederationConfig(weight_decay=-0.1)
