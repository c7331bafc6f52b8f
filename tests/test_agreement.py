"""Per-device agreement and trust (hffm.federation.agreement, defense.judge_devices): each rule as a pure function on
tensors (a planted attacker is left out, honest devices kept), the trust kept in checkpoints, bad settings named."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from conftest import tiny_config

from hffm.federation.aggregate import ModuleUpdate
from hffm.federation.agreement import (
    direction_evidence,
    distrusted,
    leave_one_out_median,
    leave_one_out_terms,
    pooled_cosines,
    scale_outliers,
    update_trust,
)
from hffm.federation.defense import DefenseConfig, DefenseMemory, consensus, defend, judge_devices
from hffm.federation.faults import FaultsConfig

TRUST = DefenseConfig(name="robust", clip_factor=2.0, min_cosine=None, reject_factor=100.0, min_trust=0.25,
                      trust_decay=0.5, norm_band=2.0, validation_samples=0, validation_fallback=False,
                      distrusted_weight=0.0)  # agreement alone; a distrusted device left out (tests/test_distrusted_weight.py)
MODULES = {"a": 40, "b": 60, "c": 30}


def _wave(n: int, seed: int = 0) -> tuple[dict, dict[int, dict[str, torch.Tensor]]]:
    """n honest devices, each updating modules a, b, c: a shared direction per module plus as much noise (they agree
    only weakly, as ours do), every coordinate moving about alike (Adam-like)."""
    g = torch.Generator().manual_seed(seed)
    ref = {m: {"w": torch.zeros(size)} for m, size in MODULES.items()}
    signal = {m: torch.randn(size, generator=g) for m, size in MODULES.items()}
    deltas = {i: {m: 0.01 * (signal[m] + 1.5 * torch.randn(size, generator=g)) for m, size in MODULES.items()}
              for i in range(n)}
    return ref, deltas


def _updates(deltas: dict[int, dict[str, torch.Tensor]]) -> list[ModuleUpdate]:
    return [ModuleUpdate(i, m, {"w": d}, 10.0) for i, ds in deltas.items() for m, d in ds.items()]


def _judge(deltas, ref, cfg=TRUST, memory=None):
    memory = memory if memory is not None else DefenseMemory()
    updates = _updates(deltas)
    agreed = consensus([(updates, ref)], cfg, memory, "edge")
    untrusted = judge_devices([(updates, ref)], cfg, agreed, memory)
    return defend(updates, ref, cfg, agreed, untrusted), memory


@pytest.mark.parametrize("n", [2, 3, 4, 7, 10])
def test_the_leave_one_out_median_is_the_median_of_the_others(n):
    x = torch.randn(n, 9, dtype=torch.float64)
    x[1] = x[0]  # ties
    want = torch.stack([torch.cat([x[:i], x[i + 1:]]).quantile(0.5, dim=0) for i in range(n)])
    assert torch.allclose(leave_one_out_median(x), want)
    with pytest.raises(ValueError, match="at least 2 rows"):
        leave_one_out_median(x[:1])


@pytest.mark.parametrize("attack", ["signflip", "signflip_x10", "ipm", "scale_x10"])
def test_a_planted_attacker_is_left_out_and_every_honest_device_kept(attack):
    ref, deltas = _wave(12)
    mean = {m: torch.stack([d[m] for d in deltas.values()]).mean(0) for m in MODULES}
    own = deltas[0]
    sent = {"signflip": {m: -own[m] for m in MODULES}, "signflip_x10": {m: -10 * own[m] for m in MODULES},
            "ipm": {m: -0.5 * mean[m] for m in MODULES}, "scale_x10": {m: 10 * own[m] for m in MODULES}}[attack]
    deltas[0], deltas[1] = sent, dict(sent)  # two attackers of twelve
    out, memory = _judge(deltas, ref)
    assert {r.node for r in out.dropped} == {0, 1}
    assert all(r.reason == "defense: distrusted device" for r in out.dropped) and len(out.dropped) == 2 * len(MODULES)
    assert {u.node for u in out.kept} == set(range(2, 12))  # every honest update accepted
    assert memory.trust[0] < TRUST.min_trust <= min(memory.trust[i] for i in range(2, 12))


def test_the_evidence_is_relative_to_the_typical_device_and_pooled_over_its_modules():
    ref, deltas = _wave(8)
    deltas[0] = {m: -d for m, d in deltas[0].items()}
    terms = {m: dict(zip(deltas, leave_one_out_terms(torch.stack([d[m] for d in deltas.values()]))))
             for m in MODULES}
    cosines = pooled_cosines(terms)
    assert cosines[0] < 0 < min(cosines[i] for i in range(1, 8))
    evidence = direction_evidence(cosines)
    assert evidence[0] < -0.5 and all(-1 <= e <= 1 for e in evidence.values()) and max(evidence.values()) == 1.0
    assert direction_evidence({0: 0.01, 1: -0.02, 2: 0.015}) == {}  # no shared direction: no evidence
    assert direction_evidence({0: 0.5, 1: 0.4}) == {}  # too few devices
    # weakly aligned is no objection; against the others counts relative to the median (0.175), down to -1
    assert direction_evidence({0: 0.4, 1: 0.5, 2: 0.05, 3: -0.1, 4: -0.9, 5: 0.3}) == pytest.approx(
        {0: 1.0, 1: 1.0, 2: 1.0, 3: -0.1 / 0.175, 4: -1.0, 5: 1.0})


def test_scale_outliers_are_devices_far_from_the_typical_norm_on_most_of_their_modules():
    ratios = {"a": {0: 1.0, 1: 0.4, 2: 10.0, 3: 1.1}, "b": {0: 0.9, 1: 0.45, 2: 9.0, 3: 3.0},
              "c": {0: 1.2, 1: 0.4, 2: 11.0, 3: 0.9}}
    assert scale_outliers(ratios, 2.0) == {1, 2}  # device 3 is off on one module only: its median is 1.1


def test_trust_carries_over_rounds_and_a_new_device_starts_trusted():
    trust = update_trust({}, {0: -1.0, 1: 0.8}, 0.5)
    assert trust == {0: 0.0, 1: 0.9}
    trust = update_trust(trust, {0: 1.0}, 0.5)  # one good round does not clear a bad record; 1 keeps its trust
    assert trust == {0: 0.5, 1: 0.9} and update_trust(trust, {1: 0.0}, 0.0)[1] == 0.0
    assert distrusted({0: 0.1, 1: 0.9, 2: -0.5}, {0, 1}, 0.25) == {0: 0.1}  # device 2 did not send
    with pytest.raises(ValueError, match=re.escape("defense.trust_decay=1.0: must be in [0, 1)")):
        update_trust({}, {}, 1.0)


def test_a_persistent_attacker_stays_out_and_a_reformed_one_earns_its_way_back():
    ref, _ = _wave(10)
    memory = DefenseMemory()
    for seed in (1, 2, 4):  # three rounds of attack: out every time, its trust falls further
        _, deltas = _wave(10, seed=seed)
        deltas[0] = {m: -10 * d for m, d in deltas[0].items()}
        out, _ = _judge(deltas, ref, memory=memory)
        assert {r.node for r in out.dropped} == {0} and len(out.kept) == 9 * len(MODULES)
    assert memory.trust[0] == pytest.approx(-0.75)
    _, honest = _wave(10, seed=3)
    out, _ = _judge(honest, ref, memory=memory)  # honest now, but its record keeps it out this round
    assert {r.node for r in out.dropped} == {0} and 0 < memory.trust[0] < TRUST.min_trust
    out, _ = _judge(_wave(10, seed=5)[1], ref, memory=memory)  # and the next honest round lets it back in
    assert not out.dropped and memory.trust[0] > TRUST.min_trust


def test_a_scale_outlier_is_left_out_at_once_however_slow_the_trust():
    slow = dataclasses.replace(TRUST, trust_decay=0.9, min_trust=0.0)  # one round of -1 leaves its trust at 0.8
    ref, deltas = _wave(10)
    deltas[0] = {m: 10 * d for m, d in deltas[0].items()}
    out, memory = _judge(deltas, ref, cfg=slow)
    assert {r.node for r in out.dropped} == {0} and memory.trust[0] == pytest.approx(0.8)
    assert {u.node for u in out.kept} == set(range(1, 10))
    _, honest = _wave(10, seed=5)  # honest the next round: its trust (0.8 decayed toward its evidence) lets it in
    out, memory = _judge(honest, ref, cfg=slow, memory=memory)
    assert not out.dropped and memory.trust[0] > slow.min_trust


@pytest.mark.parametrize(("fields", "message"), [
    ({"min_trust": 2.0}, "defense.min_trust=2.0: must be in [-1, 1]"),
    ({"min_trust": 0.2, "trust_decay": 1.0}, "defense.trust_decay=1.0: must be in [0, 1)"),
    ({"min_trust": 0.2, "norm_band": 0.5}, "defense.norm_band=0.5: must be >= 1"),
    ({"min_trust": None, "norm_band": 2.0}, "defense.norm_band=2.0 needs defense.min_trust"),
])
def test_bad_trust_settings_name_the_key(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DefenseConfig(**fields)


def test_a_bad_trust_setting_is_refused_at_compose_time():
    from hffm.config import compose
    from hffm.config_checks import ConfigError

    with pytest.raises(ConfigError, match=re.escape("defense.trust_decay=1.5")):
        compose("defense=robust", "defense.trust_decay=1.5")


def test_defense_robust_is_the_trust_record_with_the_validation_evidence():
    from hffm.config import compose

    robust = compose("defense=robust").defense
    assert robust.validation_samples > 0 and robust.validation_fallback  # tests/test_validation_defense.py
    assert dataclasses.replace(robust, validation_samples=0, validation_fallback=False, validation_spread=1.5,
                               trust_decay=TRUST.trust_decay, min_trust=TRUST.min_trust, distrusted_weight=0.0) == TRUST
    assert (robust.trust_decay, robust.min_trust, robust.distrusted_weight) == (0.6, -0.25, 0.25)  # docs/faults-and-security.md


def test_the_trust_is_kept_in_checkpoints_and_a_resumed_run_is_exact(tmp_path):
    from hffm.run import train

    cfg = tiny_config(rounds=3, checkpoint_every=1, batch_size=4)
    cfg = dataclasses.replace(cfg, defense=TRUST,
                              faults=FaultsConfig(attack="signflip", attack_fraction=0.25, attack_scale=10.0))
    straight = train(cfg, tmp_path / "a")
    assert straight.state.defense["trust"], "no trust recorded"
    two = dataclasses.replace(cfg, federation=dataclasses.replace(cfg.federation, rounds=2))
    train(two, tmp_path / "b")
    resumed = train(dataclasses.replace(cfg, federation=dataclasses.replace(
        cfg.federation, resume=str(tmp_path / "b" / "checkpoints" / "federation.pt"))), tmp_path / "c")
    assert resumed.state.defense == straight.state.defense
    for mine, theirs in zip(resumed.state.group_states, straight.state.group_states):
        for m in theirs:
            assert all(torch.equal(mine[m][k], theirs[m][k]) for k in theirs[m])
    assert DefenseMemory.from_dict(straight.state.defense).to_dict() == straight.state.defense
