"""The defense (hffm.federation.defense) and the adaptive attacks (hffm.federation.attacks): pure functions first,
then through the real loop: the default config survives one huge update, label flipping goes through the seam."""

from __future__ import annotations

import dataclasses
import math
import statistics

import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.aggregate import ModuleUpdate, update_norm
from hffm.federation.attacks import ATTACKS, attack_state, flip_labels, poisoned_trainer
from hffm.federation.defense import DefenseConfig, DefenseMemory, consensus, defend
from hffm.federation.faults import FaultsConfig
from hffm.federation.loop import run_federation
from hffm.run import make_world

FABRIC = Fabric(accelerator="cpu", devices=1)
ROBUST = DefenseConfig(name="robust", clip_factor=2.0, min_cosine=0.0, reject_factor=100.0)
"""The per-update rules (direction against the wave's median, clipping, refusal) without per-device trust."""


def _honest(n: int, seed: int = 0) -> tuple[dict, list[ModuleUpdate]]:
    """n honest updates of module 'm' around a common direction (a shared signal plus noise)."""
    g = torch.Generator().manual_seed(seed)
    ref = {"m": {"w": torch.zeros(50)}}
    signal = torch.randn(50, generator=g)
    return ref, [ModuleUpdate(i, "m", {"w": 0.1 * (signal + 0.5 * torch.randn(50, generator=g))}, 10.0)
                 for i in range(n)]


def _judge(updates, ref, cfg=ROBUST, memory=None):
    memory = memory or DefenseMemory()
    return defend(updates, ref, cfg, consensus([(updates, ref)], cfg, memory, "edge"))


def test_inner_product_manipulation_and_sign_flips_are_dropped_honest_updates_kept():
    ref, honest = _honest(6)
    mean = torch.stack([u.state["w"] for u in honest]).mean(0)
    ipm = ModuleUpdate(90, "m", {"w": -0.5 * mean}, 10.0)
    flip = ModuleUpdate(91, "m", {"w": -10 * honest[0].state["w"]}, 10.0)
    out = _judge([*honest, ipm, flip], ref)
    assert {r.node for r in out.dropped} == {90, 91}
    assert all("against the consensus" in r.reason for r in out.dropped)
    assert [u.node for u in out.kept] == list(range(6))


def test_scaled_updates_are_clipped_around_the_state_and_huge_ones_refused():
    ref, honest = _honest(5)
    scaled = ModuleUpdate(90, "m", {"w": 10 * honest[0].state["w"]}, 10.0)
    huge = ModuleUpdate(91, "m", {"w": 1e6 * honest[1].state["w"]}, 10.0)
    median = statistics.median(update_norm(u.state, ref["m"]) for u in [*honest, scaled, huge])  # the wave's
    out = _judge([*honest, scaled, huge], ref)
    assert [r.node for r in out.dropped] == [91] and "far above the median" in out.dropped[0].reason
    kept = {u.node: u for u in out.kept}
    assert math.isclose(update_norm(kept[90].state, ref["m"]), 2.0 * median, rel_tol=1e-6)  # clip_factor 2
    assert torch.allclose(kept[90].state["w"] / kept[90].state["w"].norm(), scaled.state["w"] / scaled.state["w"].norm())
    assert out.clipped >= 1


def test_with_few_holders_the_tiers_last_trusted_scale_bounds_the_update():
    ref, honest = _honest(4)
    memory = DefenseMemory()
    _judge(honest, ref, memory=memory)  # a wave with 4 holders: its median norm is remembered
    scale = memory.scale["edge/m"]
    lone = ModuleUpdate(7, "m", {"w": 1e6 * honest[0].state["w"]}, 10.0)
    assert not _judge([lone], ref, memory=memory).kept  # one holder: refused by the remembered scale
    fresh = _judge([lone], ref, memory=DefenseMemory())  # nothing remembered, one update: nothing to compare with
    assert [u.node for u in fresh.kept] == [7]
    others = [ModuleUpdate(i, "o", {"v": 0.1 * torch.ones(200)}, 1.0) for i in range(3)]  # another module's wave
    mixed = _judge([lone, *others], {**ref, "o": {"v": torch.zeros(200)}}, memory=DefenseMemory())
    assert 7 in {r.node for r in mixed.dropped}  # bounded by the wave's per-coordinate size
    assert scale > 0 and DefenseMemory.from_dict(memory.to_dict()).scale == memory.scale


def test_screen_skips_the_median_direction_and_reuses_the_norms_yet_refuses_the_same_updates():
    ref, honest = _honest(5)
    huge = ModuleUpdate(91, "m", {"w": 1e6 * honest[1].state["w"]}, 10.0)
    screen = DefenseConfig.screen()  # reject_factor only
    agreed = consensus([([*honest, huge], ref)], screen, DefenseMemory(), "edge")
    assert agreed["m"].direction is None  # no direction check, no coordinate-wise median
    assert agreed["m"].norms[91, id(huge.state)] == update_norm(huge.state, ref["m"])
    out = defend([*honest, huge], ref, screen, agreed)
    assert [r.node for r in out.dropped] == [91] and [u.node for u in out.kept] == list(range(5))
    directed = consensus([([*honest, huge], ref)], ROBUST, DefenseMemory(), "edge")["m"]
    assert directed.direction is not None and directed.norm == agreed["m"].norm


def test_defense_none_passes_everything_and_bad_settings_name_the_key():
    ref, honest = _honest(3)
    bad = ModuleUpdate(9, "m", {"w": -1e6 * honest[0].state["w"]}, 1.0)
    assert len(_judge([*honest, bad], ref, DefenseConfig.off()).kept) == 4
    with pytest.raises(ValueError, match="defense.clip_factor=0.5"):
        DefenseConfig(clip_factor=0.5)
    with pytest.raises(ValueError, match="defense.min_cosine=2"):
        DefenseConfig(min_cosine=2)


def test_alie_and_ipm_send_what_their_papers_say():
    received = {"w": torch.ones(4), "n": torch.tensor(3)}
    honest = [{"w": torch.tensor([1.0, 0.0, 2.0, 0.0], dtype=torch.float64)},
              {"w": torch.tensor([3.0, 0.0, 2.0, 4.0], dtype=torch.float64)}]
    trained = {"w": torch.full((4,), 5.0), "n": torch.tensor(3)}
    ipm = attack_state("ipm", trained, received, 0.5, honest=honest)
    assert torch.allclose(ipm["w"], 1 - 0.5 * torch.tensor([2.0, 0.0, 2.0, 2.0]))
    alie = attack_state("alie", trained, received, 1.0, honest=honest)
    std = torch.stack([h["w"] for h in honest]).std(0).float()
    assert torch.allclose(alie["w"], 1 + torch.tensor([2.0, 0.0, 2.0, 2.0]) - std)
    assert torch.equal(attack_state("labelflip", trained, received, 0.0)["w"], trained["w"])  # data attack
    assert set(ATTACKS) >= {"alie", "ipm", "labelflip", "signflip", "scale", "nan"}


def test_labelflip_goes_through_the_trainer_seam_for_attackers_only():
    world = make_world(tiny_config())
    data = world.train[0]
    flipped = flip_labels(data)
    for task in data.tasks:
        if task.kind == "classification":
            assert torch.equal(flipped.targets[task.name], task.num_classes - 1 - data.targets[task.name])
    seen = {}

    def spy(fabric, bank, jobs, local):
        seen.update({j.device: j.data for j in jobs})
        return []

    poisoned_trainer(spy, {1})(FABRIC, world.bank, [_job(world, 0), _job(world, 1)], None)
    assert seen[0] is world.train[0] and seen[1] is not world.train[1]


def _job(world, device):
    from hffm.engine import DeviceJob

    return DeviceJob(device, world.train[device], {}, (), 0)


def _gap(result, clean) -> float:
    """Largest absolute difference between two runs' edge states (NaN counts as infinite)."""
    gap = 0.0
    for s, c in zip(result.state.group_states, clean.state.group_states):
        for m in c:
            for k, v in c[m].items():
                if v.is_floating_point():
                    d = (s[m][k] - v).abs().nan_to_num(math.inf)
                    gap = max(gap, float(d.max()))
    return gap


def test_the_default_config_survives_one_device_sending_a_million_times_its_update():
    from hffm.config import compose

    assert compose().defense == DefenseConfig()  # the default config group (robust) is the dataclass default
    assert compose("defense=screen").defense == DefenseConfig.screen() and compose("defense=none").defense == DefenseConfig.off()
    robust = compose("defense=robust").defense
    assert (robust.clip_factor, robust.min_cosine, robust.reject_factor, robust.norm_band) == (2.0, None, 100.0, 2.0)
    cfg = tiny_config(rounds=2)
    cfg = dataclasses.replace(cfg, faults=FaultsConfig(attack="scale", attack_fraction=0.25, attack_scale=1e6))
    clean = run_federation(FABRIC, make_world(cfg), dataclasses.replace(cfg, faults=FaultsConfig()))
    undefended = run_federation(FABRIC, make_world(cfg), cfg)  # a fresh world each: a run leaves states in the bank
    defended = run_federation(FABRIC, make_world(cfg), dataclasses.replace(cfg, defense=DefenseConfig()))
    assert _gap(undefended, clean) > 1e3  # the attack works without a defense
    assert _gap(defended, clean) < 0.1  # only device 3's honest share is missing
    assert all(math.isfinite(v) for v in defended.history[-1].values())
    assert defended.history[-1]["defense/cum_dropped_updates"] > 0
