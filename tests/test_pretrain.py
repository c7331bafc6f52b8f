"""Central pretraining and the pretrained-bank checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hffm.modules import ModelConfig, ModuleBank
from hffm.modules.pretrain import load_pretrained, pretrain, save_pretrained
from hffm.modules.synthetic import SyntheticDataset, synthetic_batch, tiny_specs


def tiny_cfg(**kw) -> ModelConfig:
    base = dict(width=16, trunk_layers=1, trunk_heads=2, num_experts=2, top_k=1, adapter_bottleneck=4,
                lora_rank=2, prompt_len=1, signal_patch=16)
    return ModelConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained() -> tuple[ModuleBank, dict[str, float], dict[str, torch.Tensor]]:
    mods, tasks = tiny_specs()
    bank = ModuleBank(tiny_cfg(), mods, tasks)
    trunk0 = bank.module_state("trunk")
    data = SyntheticDataset(mods, tasks, 96, seed=0)
    metrics = pretrain(bank, data, steps=40, batch_size=16, lr=3e-3, seed=0, log_every=10)
    return bank, metrics, trunk0


def test_pretrain_trains_trunk_and_reports_metrics(trained) -> None:
    bank, metrics, trunk0 = trained
    assert {"loss", "steps", "seconds", "object/acc", "object/f1", "snr/mae", "snr/loss",
            "sentiment/acc", "modulation/f1"} <= set(metrics)
    assert metrics["steps"] == 40.0 and metrics["loss"] > 0
    assert metrics["sentiment/acc"] > 0.5  # 3 balanced classes: chance is 1/3
    trunk1 = bank.module_state("trunk")
    assert not all(torch.equal(trunk0[k], trunk1[k]) for k in trunk0)  # trunk was trained
    assert not any(p.requires_grad for p in bank.trunk.parameters())  # frozen again afterwards
    head = bank.module("head/snr")  # regression scale fitted from the data (targets 5 + 3 * score)
    assert 3.0 < float(head.target_mean) < 7.0 and float(head.target_scale) > 0.5


def test_pretrain_is_deterministic_given_seed() -> None:
    mods, tasks = tiny_specs()
    data = SyntheticDataset(mods, tasks, 32, seed=1)
    results = []
    for _ in range(2):
        bank = ModuleBank(tiny_cfg(), mods, tasks)
        m = pretrain(bank, data, steps=4, batch_size=8, lr=1e-3, seed=3)
        results.append((m["loss"], bank.module_state("trunk")["layers.0.qkv.weight"]))
    assert results[0][0] == results[1][0] and torch.equal(results[0][1], results[1][1])


def test_save_load_round_trip_and_mismatches(trained, tmp_path: Path) -> None:
    bank, metrics, _ = trained
    path = tmp_path / "ckpt" / "bank.pt"
    save_pretrained(bank, path, metrics)
    mods, tasks = tiny_specs()
    fresh = ModuleBank(tiny_cfg(dropout=0.1, freeze_trunk=False), mods, tasks, seed=5)  # training-only fields
    assert load_pretrained(fresh, path) == metrics
    batch = synthetic_batch(mods, tasks, 4, seed=9)
    a, _ = bank.full_model().eval()(batch["inputs"], batch["present"])
    b, _ = fresh.full_model().eval()(batch["inputs"], batch["present"])
    assert all(torch.equal(a[t], b[t]) for t in a)

    with pytest.raises(ValueError, match=r"ModelConfig mismatch.*'width': \(16, 32\)"):
        load_pretrained(ModuleBank(tiny_cfg(width=32), mods, tasks), path)
    with pytest.raises(ValueError, match="tasks mismatch"):
        load_pretrained(ModuleBank(tiny_cfg(), mods, tasks[:2]), path)
    other = ModuleBank(tiny_cfg(), mods[:1], tasks[:1])
    load_pretrained(other, path, trunk_only=True)
    assert all(torch.equal(v, bank.module_state("trunk")[k]) for k, v in other.module_state("trunk").items())
    junk = tmp_path / "junk.pt"
    torch.save({"x": 1}, junk)
    with pytest.raises(ValueError, match="not an hffm module-bank checkpoint"):
        load_pretrained(other, junk)
