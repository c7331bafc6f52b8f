"""MoE routing and balance loss; zero-initialised LoRA / bottleneck adapters."""

from __future__ import annotations

import torch

from hffm.modules import AdapterModule, Expert, Trunk, moe_forward


def test_moe_top_k_and_aux_loss() -> None:
    torch.manual_seed(0)
    experts = [Expert(8, 16) for _ in range(4)]
    h = torch.randn(3, 10, 8)
    valid = torch.ones(3, 10, dtype=torch.bool)
    valid[0, 5:] = False
    out, aux, chosen = moe_forward(h, experts, top_k=2, valid=valid)
    assert out.shape == h.shape
    assert chosen.shape == (3, 10, 2)
    assert (chosen[..., 0] != chosen[..., 1]).all()  # k distinct experts per token
    assert torch.isfinite(aux) and aux > 0
    # sub-model holding fewer experts than top_k: routes to all it has
    out1, aux1, chosen1 = moe_forward(h, experts[:1], top_k=2)
    assert chosen1.shape == (3, 10, 1) and (chosen1 == 0).all()
    assert torch.isclose(aux1, torch.tensor(1.0))  # one expert: f = P = 1
    # invalid tokens do not count: changing them leaves the aux loss unchanged
    h2 = h.clone()
    h2[0, 5:] = torch.randn(5, 8) * 10
    assert torch.isclose(moe_forward(h2, experts, 2, valid)[1], aux)


def test_moe_balance_loss_prefers_balanced_routing() -> None:
    torch.manual_seed(1)
    experts = [Expert(4, 8) for _ in range(4)]
    h = torch.randn(2, 32, 4)
    with torch.no_grad():
        for e in experts:
            e.router.zero_()
        experts[0].router_bias.fill_(8.0)  # everything to expert 0 (and one other)
    _, skewed, chosen = moe_forward(h, experts, 2)
    assert (chosen == 0).any(-1).all()
    with torch.no_grad():
        experts[0].router_bias.zero_()
    _, balanced, _ = moe_forward(h, experts, 2)
    assert skewed > 1.5 and torch.isclose(balanced, torch.tensor(1.0), atol=1e-5)


def test_expert_gradients_reach_router_rows() -> None:
    torch.manual_seed(2)
    experts = [Expert(8, 16) for _ in range(3)]
    out, aux, _ = moe_forward(torch.randn(2, 20, 8), experts, 1)
    (out.pow(2).mean() + aux).backward()
    for e in experts:
        assert e.router.grad is not None and e.router.grad.abs().sum() > 0
        assert e.fc1.weight.grad is not None


def test_fresh_adapters_leave_trunk_unchanged_and_perturbed_ones_do_not() -> None:
    torch.manual_seed(3)
    trunk = Trunk(16, 2, 2, 32)
    adapters = {i: AdapterModule(16, trunk.adapter_linears(), 4, 2, 4.0) for i in range(2)}
    x = torch.randn(2, 7, 16)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 4:] = True
    base = trunk(x, pad)
    assert torch.equal(trunk(x, pad, adapters), base)
    with torch.no_grad():
        adapters[0].lora["fc1"].B.normal_()
    lora_out = trunk(x, pad, adapters)
    assert not torch.allclose(lora_out, base)
    with torch.no_grad():
        adapters[0].lora["fc1"].B.zero_()
        adapters[1].up.weight.normal_()
    assert not torch.allclose(trunk(x, pad, adapters), base)
    assert trunk(x, pad, {1: adapters[1]}).shape == base.shape
    # the trunk owns no adapter parameters
    assert not any("lora" in n or "down" in n or "up." in n for n, _ in trunk.named_parameters())


def test_key_padding_mask_hides_padded_tokens() -> None:
    torch.manual_seed(4)
    trunk = Trunk(16, 1, 2, 32)
    x = torch.randn(1, 6, 16)
    pad = torch.tensor([[False, False, False, True, True, True]])
    y = x.clone()
    y[0, 3:] = torch.randn(3, 16)
    assert torch.allclose(trunk(x, pad)[0, :3], trunk(y, pad)[0, :3], atol=1e-6)
    assert not torch.allclose(trunk(x)[0, :3], trunk(y)[0, :3], atol=1e-4)
