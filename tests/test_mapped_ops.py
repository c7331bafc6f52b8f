"""Ops the batched paths map over devices: hffm::conv, MoE on kept positions, LoRA folded into a weight."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import vmap

from hffm.modules import AdapterModule, Expert, Trunk, moe_forward
from hffm.modules.adapters import LoRA
from hffm.modules.conv import conv


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding"), [
    ((5, 3, 8, 8), (4, 3, 3, 3), 1, 1), ((5, 4, 8, 8), (6, 4, 4, 4), 4, 0), ((5, 5, 16), (3, 5, 5), 1, 2)])
def test_mapped_conv_is_each_devices_own_convolution(x_shape, w_shape, stride, padding):
    torch.manual_seed(0)
    x = torch.randn(3, *x_shape)
    weight = torch.randn(3, *w_shape, requires_grad=True)
    bias = torch.randn(3, w_shape[0], requires_grad=True)
    own = (F.conv1d if len(w_shape) == 3 else F.conv2d)
    want = torch.stack([own(x[d], weight[d], bias[d], stride=stride, padding=padding) for d in range(3)])
    with torch.no_grad():  # evaluation: one convolution per device
        assert torch.allclose(vmap(conv, in_dims=(0, 0, 0, None, None))(x, weight, bias, stride, padding), want,
                              atol=1e-5)
    got = vmap(conv, in_dims=(0, 0, 0, None, None))(x, weight, bias, stride, padding)  # training: grouped
    assert torch.allclose(got, want, atol=1e-5)
    for a, b in zip(torch.autograd.grad(got.square().sum(), (weight, bias)),
                    torch.autograd.grad(want.square().sum(), (weight, bias))):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-3)
    shared = vmap(conv, in_dims=(0, None, None, None, None))(x, weight[0], bias[0], stride, padding)
    assert torch.allclose(shared[1], own(x[1], weight[0], bias[0], stride=stride, padding=padding), atol=1e-5)


@pytest.mark.parametrize("dense", [False, True])
def test_moe_keep_computes_the_kept_positions_of_the_full_output(dense):
    torch.manual_seed(1)
    experts = [Expert(8, 16) for _ in range(3)]
    h = torch.randn(2, 10, 8)
    full, aux, chosen = moe_forward(h, experts, 1, dense=dense)
    kept, aux_kept, chosen_kept = moe_forward(h, experts, 1, dense=dense, keep=4)
    assert kept.shape == (2, 4, 8)
    assert torch.allclose(kept, full[:, :4], atol=1e-6)
    assert torch.equal(aux, aux_kept) and torch.equal(chosen, chosen_kept)  # routing sees every token


def test_lora_weight_delta_is_the_delta_as_a_weight():
    torch.manual_seed(2)
    lora = LoRA(6, 5, rank=2, alpha=3.0)
    torch.nn.init.normal_(lora.B)
    x = torch.randn(4, 6)
    assert torch.allclose(x @ lora.weight_delta().t(), lora(x), atol=1e-6)


def test_trunk_without_autograd_folds_lora_into_the_weights_with_the_same_output():
    torch.manual_seed(3)
    trunk = Trunk(16, 1, 2, 32)
    adapter = AdapterModule(16, trunk.adapter_linears(), 4, 2, 4.0)
    for lora in adapter.lora.values():
        torch.nn.init.normal_(lora.B)
    tokens = torch.randn(2, 6, 16)
    with torch.no_grad():
        folded = trunk(tokens, adapters={0: adapter})
    assert torch.allclose(folded, trunk(tokens, adapters={0: adapter}), atol=1e-5)
