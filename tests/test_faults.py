"""Faults and attacks: config checks, seeded draws, re-attachment and the attack transforms (pure pieces)."""

import math

import numpy as np
import pytest
import torch

from hffm.federation.aggregate import ModuleUpdate
from hffm.federation.faults import ATTACKS, FaultsConfig, attack_state, attackers, draw_round_faults, reattach
from hffm.federation.screening import screen_updates


def test_everything_is_off_by_default_and_bad_values_are_named():
    cfg = FaultsConfig()
    assert not cfg.active
    assert draw_round_faults(cfg, 0, 3, range(10), [1, 2], 4).metrics() == {
        "faults/dropped": 0.0, "faults/slowed": 0.0, "faults/failed_relays": 0.0, "faults/down_edges": 0.0}
    assert attackers(cfg, 40, 0) == frozenset()
    with pytest.raises(ValueError, match=r"(?s)faults.dropout=1.5.*faults.attack='evil'.*faults.attack_scale=0"):
        FaultsConfig(dropout=1.5, attack="evil", attack_scale=0.0)


def test_draws_are_seeded_and_independent_of_each_other():
    cfg = FaultsConfig(dropout=0.3, straggler=0.2, relay_failure=0.5, edge_outage=0.2)
    a = draw_round_faults(cfg, 0, 5, range(40), [3, 7, 9], 10)
    assert a == draw_round_faults(cfg, 0, 5, range(40), [3, 7, 9], 10)
    assert a != draw_round_faults(cfg, 0, 6, range(40), [3, 7, 9], 10)
    assert a.slowdown and all(v == 4.0 for v in a.slowdown.values())
    only_drop = draw_round_faults(FaultsConfig(dropout=0.3), 0, 5, range(40), [3, 7, 9], 10)
    assert only_drop.dropped == a.dropped  # switching other faults on does not move the dropout draws
    rate = np.mean([len(draw_round_faults(cfg, 1, t, range(40), [], 10).dropped) / 40 for t in range(200)])
    assert rate == pytest.approx(0.3, abs=0.02)


def test_attackers_are_a_fixed_fraction_of_devices():
    cfg = FaultsConfig(attack="signflip", attack_fraction=0.2)
    chosen = attackers(cfg, 40, 7)
    assert len(chosen) == 8 and chosen == attackers(cfg, 40, 7) and chosen != attackers(cfg, 40, 8)
    assert len(attackers(FaultsConfig(attack="nan", attack_fraction=0.01), 40, 0)) == 1
    assert attackers(FaultsConfig(attack="none", attack_fraction=0.5), 40, 0) == frozenset()


def test_devices_of_a_down_edge_reattach_to_the_nearest_up_edge_or_skip():
    device_edge = np.array([0, 0, 1, 2])
    distance = np.array([[1.0, 5.0, 2.0], [1.0, 1.5, 9.0], [3.0, 1.0, 2.0], [9.0, 9.0, 1.0]])
    assert reattach(device_edge, distance, frozenset(), True).tolist() == [0, 0, 1, 2]
    assert reattach(device_edge, distance, frozenset({0}), True).tolist() == [2, 1, 1, 2]
    assert reattach(device_edge, distance, frozenset({0}), False).tolist() == [-1, -1, 1, 2]
    assert reattach(device_edge, distance, frozenset({0, 1, 2}), True).tolist() == [-1, -1, -1, -1]


def test_attack_transforms():
    received = {"w": torch.zeros(3), "n": torch.tensor(2)}
    trained = {"w": torch.tensor([1.0, 2.0, 2.0]), "n": torch.tensor(3)}
    assert torch.equal(attack_state("none", trained, received, 10.0)["w"], trained["w"])
    assert torch.isnan(attack_state("nan", trained, received, 10.0)["w"]).all()
    assert torch.isinf(attack_state("inf", trained, received, 10.0)["w"]).all()
    assert torch.allclose(attack_state("scale", trained, received, 10.0)["w"], 10 * trained["w"])
    assert torch.allclose(attack_state("signflip", trained, received, 1.0)["w"], -trained["w"])
    noisy = attack_state("random", trained, received, 2.0, torch.Generator().manual_seed(0))
    assert float(noisy["w"].norm()) == pytest.approx(2 * 3.0, rel=1e-5)  # |delta| = 3
    assert all(torch.equal(attack_state(k, trained, received, 2.0)["n"], trained["n"]) for k in ATTACKS)
    with pytest.raises(ValueError, match="faults.attack"):
        attack_state("evil", trained, received, 1.0)


@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_non_finite_attacks_are_screened_out(kind):
    received = {"m": {"w": torch.zeros(2)}}
    honest = ModuleUpdate(0, "m", {"w": torch.ones(2)}, 1.0)
    bad = ModuleUpdate(1, "m", attack_state(kind, {"w": torch.ones(2)}, received["m"], 1.0), 1.0)
    kept, rejected = screen_updates([honest, bad], received)
    assert kept == [honest] and [r.reason for r in rejected] == ["non-finite"]
    assert not math.isnan(float(kept[0].state["w"].sum()))
