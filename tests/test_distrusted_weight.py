"""``defense.distrusted_weight`` (hffm.federation.defense): a device left out for its trust alone keeps its update at
that share of its sample weight; a scale outlier of the round is still left out, and 0 keeps the old rule."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hffm.federation.aggregate import ModuleUpdate, aggregate_modules, make_rule
from hffm.federation.defense import DefenseConfig, DefenseMemory, Untrusted, consensus, defend, judge_devices

TRUST = DefenseConfig(name="robust", clip_factor=2.0, min_cosine=None, reject_factor=100.0, min_trust=0.25,
                      trust_decay=0.5, norm_band=2.0, validation_samples=0, validation_fallback=False,
                      distrusted_weight=0.3)
MODULES = {"a": 40, "b": 60, "c": 30}


def _wave(n: int, seed: int = 0) -> tuple[dict, dict[int, dict[str, torch.Tensor]]]:
    """n honest devices updating modules a, b, c: a shared direction plus as much noise (they agree weakly)."""
    g = torch.Generator().manual_seed(seed)
    ref = {m: {"w": torch.full((size,), 0.5)} for m, size in MODULES.items()}
    signal = {m: torch.randn(size, generator=g) for m, size in MODULES.items()}
    deltas = {i: {m: 0.01 * (signal[m] + 1.5 * torch.randn(size, generator=g)) for m, size in MODULES.items()}
              for i in range(n)}
    return ref, deltas


def _run(deltas, ref, cfg):
    updates = [ModuleUpdate(i, m, {"w": ref[m]["w"] + d}, 10.0) for i, ds in deltas.items() for m, d in ds.items()]
    memory = DefenseMemory()
    agreed = consensus([(updates, ref)], cfg, memory, "edge")
    untrusted = judge_devices([(updates, ref)], cfg, agreed, memory)
    return updates, untrusted, defend(updates, ref, cfg, agreed, untrusted)


def test_a_distrusted_device_keeps_its_update_at_the_reduced_weight_the_others_untouched():
    ref, deltas = _wave(12)
    deltas[0] = {m: -d for m, d in deltas[0].items()}  # a sign flipper: honest norm, against the others
    updates, untrusted, out = _run(deltas, ref, TRUST)
    assert set(untrusted) == {0} and untrusted.dampable == frozenset({0})
    assert out.dropped == [] and out.damped == len(MODULES)
    kept = {(u.node, u.module): u for u in out.kept}
    for u in updates:
        got = kept[u.node, u.module]
        assert torch.equal(got.state["w"], u.state["w"])  # as sent (no clipping at honest norms)
        assert got.num_samples == (10.0 * TRUST.distrusted_weight if u.node == 0 else 10.0)
        if u.node != 0:
            assert got is u  # an honest update goes on as sent
    mean = aggregate_modules({m: r for m, r in ref.items()}, out.kept, make_rule("mean"))[0]["a"]["w"]
    sent = {u.node: u.state["w"] for u in updates if u.module == "a"}
    weights = {n: 10.0 * (TRUST.distrusted_weight if n == 0 else 1.0) for n in sent}
    want = sum(weights[n] * s for n, s in sent.items()) / sum(weights.values())
    assert torch.allclose(mean, want, atol=1e-6)  # the rule's weighted mean counts it at its share
    _, _, off = _run(deltas, ref, dataclasses.replace(TRUST, distrusted_weight=0.0))
    assert {r.node for r in off.dropped} == {0} and off.damped == 0  # 0: the old rule, left out


def test_a_scale_outlier_is_left_out_whatever_the_weight():
    ref, deltas = _wave(12)
    deltas[0] = {m: 10 * d for m, d in deltas[0].items()}  # x10: outside norm_band this round
    _, untrusted, out = _run(deltas, ref, TRUST)
    assert 0 in untrusted and untrusted.dampable == frozenset()
    assert {r.node for r in out.dropped} == {0} and out.damped == 0


def test_a_plain_dict_of_untrusted_devices_dampens_nobody():
    ref, deltas = _wave(6)
    updates = [ModuleUpdate(i, m, {"w": ref[m]["w"] + d}, 10.0) for i, ds in deltas.items() for m, d in ds.items()]
    out = defend(updates, ref, TRUST, {}, {2: -0.5})
    assert {r.node for r in out.dropped} == {2} and out.damped == 0
    out = defend(updates, ref, TRUST, {}, Untrusted({2: -0.5}, frozenset({2})))
    assert out.dropped == [] and out.damped == len(MODULES)


@pytest.mark.parametrize("change", [{"distrusted_weight": -0.1}, {"distrusted_weight": 1.0},
                                    {"distrusted_weight": float("nan")}])
def test_a_bad_setting_is_refused(change):
    with pytest.raises(ValueError, match=f"defense.{next(iter(change))}="):
        dataclasses.replace(TRUST, **change)
