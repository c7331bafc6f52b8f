"""Module bank and M3T sub-models: structure, sharing, gradients, state round-trips, masking."""

from __future__ import annotations

import pytest
import torch

from hffm.modules import ModelConfig, ModuleBank
from hffm.modules.synthetic import synthetic_batch, tiny_specs


def tiny_cfg(**kw) -> ModelConfig:
    base = dict(width=16, trunk_layers=2, trunk_heads=2, mlp_ratio=2, num_experts=3, top_k=2,
                adapter_bottleneck=4, lora_rank=2, prompt_len=1, signal_patch=16)
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture()
def bank() -> ModuleBank:
    mods, tasks = tiny_specs()
    return ModuleBank(tiny_cfg(), mods, tasks, seed=1)


def test_names_kinds_tags_sizes(bank: ModuleBank) -> None:
    names = bank.names()
    assert names[:3] == ["encoder/image", "encoder/text", "encoder/iq"]
    assert names[3:7] == ["prompt/object", "prompt/sentiment", "prompt/modulation", "prompt/snr"]
    assert names[7:10] == ["expert/0", "expert/1", "expert/2"]
    assert names[10:12] == ["adapter/0", "adapter/1"]
    assert names[12:] == ["head/object", "head/sentiment", "head/modulation", "head/snr"]
    assert "trunk" not in names and bank.kind("trunk") == "trunk"
    assert [bank.kind(n) for n in ("encoder/iq", "prompt/snr", "expert/2", "adapter/1", "head/object")] == [
        "encoder", "prompt", "expert", "adapter", "head"]
    assert bank.tags("encoder/text") == {"modality": "text"}
    assert bank.tags("head/snr") == {"task": "snr"}
    assert bank.tags("adapter/0") == {"layer": "0"}
    assert bank.tags("expert/1") == {"expert": "1"}
    for n in names:
        params = sum(p.numel() for p in bank.module(n).parameters())
        assert bank.num_params(n) == params > 0
        extra = 8 if n == "head/snr" else 0  # target mean/scale buffers
        assert bank.num_bytes(n) == 4 * params + extra
    # expert = FFN + its router row (+ bias)
    w, hid = 16, 32
    assert bank.num_params("expert/0") == (w * hid + hid) + (hid * w + w) + w + 1
    with pytest.raises(KeyError, match="unknown module 'expert/9'"):
        bank.module("expert/9")


def test_required_modules_and_bad_requests(bank: ModuleBank) -> None:
    req = bank.required_modules(["iq"], ["snr", "modulation"])
    assert req == ["encoder/iq", "prompt/modulation", "prompt/snr", "expert/0", "expert/1", "expert/2",
                   "adapter/0", "adapter/1", "head/modulation", "head/snr"]
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        bank.required_modules(["audio"], ["snr"])
    with pytest.raises(ValueError, match="task 'weather' has no head"):
        bank.submodel(["iq"], ["weather"])
    with pytest.raises(ValueError, match="empty modality set"):
        bank.required_modules([], ["snr"])
    with pytest.raises(ValueError, match="empty task set"):
        bank.submodel(["iq"], [])
    with pytest.raises(ValueError, match="not part of this sub-model"):
        bank.submodel(["iq"], ["snr"], trainable=["encoder/image"])


def test_submodel_holds_only_its_modules_and_shares_trunk(bank: ModuleBank) -> None:
    model = bank.submodel(["image", "iq"], ["object", "snr"])
    assert model.module_names == bank.required_modules(["image", "iq"], ["object", "snr"])
    assert [m.name for m in model.modalities] == ["image", "iq"]
    assert [t.name for t in model.tasks] == ["object", "snr"]
    own = {id(p) for n in model.module_names for p in bank.module(n).parameters()}
    trunk = {id(p) for p in bank.trunk.parameters()}
    assert {id(p) for p in model.parameters()} == own | trunk
    assert not {id(p) for p in bank.module("encoder/text").parameters()} & {id(p) for p in model.parameters()}
    assert model.trunk is bank.trunk
    for (_, a), (_, b) in zip(model.trunk.named_parameters(), bank.trunk.named_parameters(), strict=True):
        assert a.data_ptr() == b.data_ptr() and not a.requires_grad
    assert model.encoders["image"] is bank.module("encoder/image")
    assert {id(p) for p in model.trainable_parameters()} == own
    assert all(p.requires_grad for n in model.module_names for p in bank.module(n).parameters())

    only_head = bank.submodel(["iq"], ["snr"], trainable=["head/snr"])
    assert only_head.trainable_module_names == ["head/snr"]
    assert {id(p) for p in only_head.trainable_parameters()} == {id(p) for p in bank.module("head/snr").parameters()}
    assert not any(p.requires_grad for p in bank.module("encoder/iq").parameters())
    unfrozen = bank.submodel(["iq"], ["snr"], train_trunk=True)
    assert all(p.requires_grad for p in bank.trunk.parameters())
    assert trunk <= {id(p) for p in unfrozen.trainable_parameters()}
    no_enc = ModuleBank(tiny_cfg(encoders_trainable=False), *tiny_specs()).submodel(["iq"], ["snr"])
    assert "encoder/iq" not in no_enc.trainable_module_names


def test_gradients_reach_every_module_kind(bank: ModuleBank) -> None:
    mods, tasks = tiny_specs()
    model = bank.submodel([m.name for m in mods], [t.name for t in tasks])
    batch = synthetic_batch(mods, tasks, 16, seed=3)
    out, aux = model(batch["inputs"], batch["present"])
    assert out["object"].shape == (16, 10) and out["sentiment"].shape == (16, 3) and out["snr"].shape == (16,)
    loss = sum(model.task_loss(t, out[t], batch["targets"][t]) for t in out) + aux
    loss.backward()
    for name in model.module_names:
        grads = [p.grad for p in bank.module(name).parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    assert all(p.grad is None for p in bank.trunk.parameters())


def test_module_state_round_trip_and_fresh_bank(bank: ModuleBank) -> None:
    name = "adapter/1"
    state = bank.module_state(name)
    with torch.no_grad():
        for p in bank.module(name).parameters():
            p.add_(1.0)
    assert not all(torch.equal(state[k], v) for k, v in bank.module_state(name).items())
    bank.load_module_state(name, state)
    assert all(torch.equal(state[k], v) for k, v in bank.module_state(name).items())
    state["lora.qkv.B"].add_(5.0)  # a clone: the bank must not change
    assert not torch.equal(bank.module_state(name)["lora.qkv.B"], state["lora.qkv.B"])

    mods, tasks = tiny_specs()
    fresh = ModuleBank(tiny_cfg(), mods, tasks, seed=99)
    batch = synthetic_batch(mods, tasks, 6, seed=5)
    a = bank.full_model().eval()
    b = fresh.full_model().eval()
    assert not torch.allclose(a(batch["inputs"], batch["present"])[0]["object"],
                              b(batch["inputs"], batch["present"])[0]["object"])
    fresh.load_states(bank.state_of(bank.names()))
    fresh.load_module_state("trunk", bank.module_state("trunk"))
    out_a, aux_a = a(batch["inputs"], batch["present"])
    out_b, aux_b = b(batch["inputs"], batch["present"])
    assert torch.equal(aux_a, aux_b)
    assert all(torch.equal(out_a[t], out_b[t]) for t in out_a)


def test_load_module_state_errors_name_the_problem(bank: ModuleBank) -> None:
    state = bank.module_state("head/object")
    with pytest.raises(ValueError, match=r"module 'head/object'.*missing \['fc.bias'\]"):
        bank.load_module_state("head/object", {k: v for k, v in state.items() if k != "fc.bias"})
    bad = dict(state, **{"fc.weight": torch.zeros(3, 16)})
    with pytest.raises(ValueError, match=r"module 'head/object': key 'fc.weight' has shape \(3, 16\)"):
        bank.load_module_state("head/object", bad)


def test_same_seed_same_modules_whatever_the_bank_holds() -> None:
    mods, tasks = tiny_specs()
    full = ModuleBank(tiny_cfg(), mods, tasks, seed=4)
    part = ModuleBank(tiny_cfg(), mods[2:], tasks[3:], seed=4)
    for name in part.names() + ["trunk"]:
        a, b = full.module_state(name), part.module_state(name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_device_missing_a_modality_still_trains(bank: ModuleBank) -> None:
    mods, tasks = tiny_specs()
    model = bank.submodel(["image", "iq"], ["object", "snr"])
    batch = synthetic_batch([mods[0], mods[2]], [tasks[0], tasks[3]], 12, seed=7, missing=0.4)
    assert not batch["present"]["image"].all() and not batch["present"]["iq"].all()
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        out, aux = model(batch["inputs"], batch["present"])
        loss = sum(model.task_loss(t, out[t], batch["targets"][t]) for t in out) + 0.01 * aux
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0]


def test_absent_modality_is_masked_out(bank: ModuleBank) -> None:
    mods, tasks = tiny_specs()
    model = bank.submodel(["image", "iq"], ["object"]).eval()
    batch = synthetic_batch([mods[0], mods[2]], [tasks[0]], 4, seed=2)
    present = {"image": torch.tensor([True, False, True, True]), "iq": torch.ones(4, dtype=torch.bool)}
    out1, _ = model(batch["inputs"], present)
    changed = {k: v.clone() for k, v in batch["inputs"].items()}
    changed["image"][1] = torch.randn(1, 16, 16)
    changed["image"][0] = torch.randn(1, 16, 16)
    out2, _ = model(changed, present)
    assert torch.allclose(out1["object"][1], out2["object"][1], atol=1e-6)  # absent: ignored
    assert not torch.allclose(out1["object"][0], out2["object"][0], atol=1e-4)  # present: used
    # a sample missing every modality of the device (possible after a modality split) stays finite
    none = {"image": torch.tensor([True, False, True, True]), "iq": torch.tensor([True, False, True, True])}
    assert torch.isfinite(model(batch["inputs"], none)[0]["object"]).all()
    # a device whose batch holds only one of its modalities
    only_iq, _ = model({"iq": batch["inputs"]["iq"]})
    assert only_iq["object"].shape == (4, 10)


def test_bad_inputs_raise_value_errors(bank: ModuleBank) -> None:
    model = bank.submodel(["image", "text"], ["object"])
    good = synthetic_batch(*[[s] for s in (tiny_specs()[0][0], tiny_specs()[1][0])], 2)["inputs"]
    with pytest.raises(ValueError, match=r"modality 'image' \(image\): expected shape \[B, 1, 16, 16\]"):
        model({"image": torch.zeros(2, 3, 16, 16)})
    with pytest.raises(ValueError, match=r"modalities \['iq'\] this model has no encoder"):
        model({**good, "iq": torch.zeros(2, 2, 128)})
    with pytest.raises(ValueError, match="modality 'text'.*token ids must lie in"):
        model({"text": torch.full((2, 12), 64)})
    with pytest.raises(ValueError, match="modality 'text'.*integer token ids"):
        model({"text": torch.zeros(2, 12)})
    with pytest.raises(ValueError, match="disagree on batch size"):
        model({"image": torch.zeros(2, 1, 16, 16), "text": torch.ones(3, 12, dtype=torch.long)})
    with pytest.raises(ValueError, match=r"present\['image'\] must have shape \[2\]"):
        model(good, {"image": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="inputs are empty"):
        model({})


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="width .* divisible by trunk_heads"):
        ModelConfig(width=30, trunk_heads=4)
    with pytest.raises(ValueError, match="top_k"):
        ModelConfig(num_experts=2, top_k=3)
    with pytest.raises(ValueError, match="ModelConfig.lora_rank"):
        ModelConfig(lora_rank=0)
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({"widht": 3})
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()
