"""What the held-class validation score does when a label flipper misreports its class shares (issue 19).

``defense.validation_classes=held`` weighs each validation class by the share of it the device *reports* among the
labels it trains on; the aggregator cannot check that report. These tests pin the behaviour down, hole included:
a flipper that reports the classes its update does not touch scores like a device that learned nothing, so the
validation evidence alone cannot tell them apart; scoring every sample alike (``validation_classes=all``) ignores
the report and still sees the flip (docs/faults-and-security.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hffm.federation.validation import task_gains

CLASSES = 4


def _wave() -> tuple[dict, dict, dict, dict]:
    """Validation logits before, after a flipper's update, after an honest device's update (both hold classes 0
    and 1: their updates move those samples only) and the labels: 8 samples of each class."""
    torch.manual_seed(0)
    y = torch.arange(CLASSES).repeat(8)
    before = torch.randn(len(y), CLASSES)
    held = (y < 2)[:, None]
    flipped = before + 2.0 * torch.nn.functional.one_hot(CLASSES - 1 - y, CLASSES) * held  # c -> C - 1 - c
    honest = before + 2.0 * torch.nn.functional.one_hot(y, CLASSES) * held
    return {"t": before}, {"t": flipped}, {"t": honest}, {"t": y}


def _score(before: dict, after: dict, y: dict, report: list[float] | None) -> float:
    return task_gains(before, after, y, None if report is None else {"t": np.array(report)})["t"]


def test_the_flippers_score_depends_on_what_it_reports():
    before, flipped, honest, y = _wave()
    inputs = _score(before, flipped, y, [0.5, 0.5, 0, 0])  # the classes of the inputs it holds
    trained = _score(before, flipped, y, [0, 0, 0.5, 0.5])  # the flipped labels it trains on (the loop's report)
    best = max(_score(before, flipped, y, list(np.eye(CLASSES)[c])) for c in range(CLASSES))  # any one class
    assert inputs < -0.4 < -0.1 < trained  # reporting its inputs' classes gives it away
    assert best == pytest.approx(trained)  # the best report: classes its update did not touch
    nothing = _score(before, before, y, [0, 0, 0.5, 0.5])  # a device whose update changed nothing
    assert nothing == pytest.approx(0.0, abs=1e-12) and abs(best - nothing) < 0.05  # the hole: alike
    assert _score(before, honest, y, [0.5, 0.5, 0, 0]) > 1.0  # an honest device reporting truly


def test_scoring_every_sample_ignores_the_report_and_sees_the_flip():
    before, flipped, honest, y = _wave()
    assert _score(before, flipped, y, None) == pytest.approx(-0.25, abs=1e-6)
    assert _score(before, flipped, y, [0.25] * CLASSES) == pytest.approx(-0.25, abs=1e-6)  # uniform = every sample
    assert _score(before, honest, y, None) > 0.5


def test_a_misreporting_flipper_reports_one_class_per_task_the_one_it_trains_on_least():
    from conftest import tiny_config

    from hffm.federation.validation import reported_shares
    from hffm.run import make_world

    world = make_world(tiny_config())
    flipped = reported_shares(world, frozenset({0, 1}))
    hidden = reported_shares(world, frozenset({0, 1}), frozenset({1}))
    assert hidden[0].keys() == flipped[0].keys() and all((hidden[0][t] == flipped[0][t]).all() for t in flipped[0])
    for task, share in hidden[1].items():
        assert share.sum() == 1.0 and share[int(np.argmin(flipped[1][task]))] == 1.0


def test_a_run_with_misreporting_flippers_trains_and_its_attack_is_known():
    import dataclasses

    from conftest import tiny_config
    from lightning.fabric import Fabric

    from hffm.federation.attacks import attack_of
    from hffm.federation.defense import DefenseConfig
    from hffm.federation.faults import FaultsConfig
    from hffm.federation.loop import run_federation
    from hffm.run import make_world

    attack = attack_of("labelflip_misreport")
    assert attack.flips_labels and attack.misreports and not attack_of("labelflip").misreports
    cfg = tiny_config(rounds=2, local_steps=1)
    cfg = dataclasses.replace(cfg, seed=0, faults=FaultsConfig(attack="labelflip_misreport", attack_fraction=0.25),
                              defense=DefenseConfig(name="robust", min_trust=0.25, validation_samples=32))
    result = run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg)
    assert result.state.defense["trust"] and all(v == v for v in result.history[-1].values())


def test_inferred_shares_read_the_trained_labels_from_the_update_whatever_the_report():
    before, flipped, honest, y = _wave()
    inferred = task_gains(before, flipped, y, {"t": np.eye(CLASSES)[2]}, infer_shares=True)["t"]  # report ignored
    assert inferred == pytest.approx(_score(before, flipped, y, [0, 0, 0.5, 0.5]), abs=1e-6)  # its trained labels
    truthful = _score(before, honest, y, [0.5, 0.5, 0, 0])
    assert task_gains(before, honest, y, None, infer_shares=True)["t"] == pytest.approx(truthful, abs=1e-6)
    assert task_gains(before, before, y, None, infer_shares=True)["t"] == 0.0  # no shift: every sample alike


def test_the_check_overrules_a_report_that_hides_the_trained_labels_and_keeps_an_honest_one():
    from hffm.federation.validation import share_mismatch

    before, flipped, honest, y = _wave()
    lie, truth = {"t": np.eye(CLASSES)[0]}, {"t": np.array([0.5, 0.5, 0, 0])}  # least trained on; its inputs' classes
    seen: dict[str, float] = {}
    caught = task_gains(before, flipped, y, lie, check=0.99, mismatch=seen)["t"]
    assert seen["t"] == pytest.approx(1.0)  # its update raises none of the reported class's prior
    assert caught == pytest.approx(_score(before, flipped, y, [0, 0, 0.5, 0.5]), abs=1e-6)  # scored as it trains
    kept: dict[str, float] = {}
    assert task_gains(before, honest, y, truth, check=0.99, mismatch=kept)["t"] == _score(before, honest, y,
                                                                                         [0.5, 0.5, 0, 0])
    assert kept["t"] < 0.5  # an honest report is near its update's shift: kept as reported
    assert share_mismatch(np.array([1.0, 0]), np.array([0, 2.0])) == 1.0
    assert share_mismatch(np.array([1.0, 1.0]), np.array([3.0, 3.0])) == 0.0


def test_the_check_is_an_option_with_a_checked_threshold():
    from hffm.federation.defense import DefenseConfig

    assert DefenseConfig(name="robust", min_trust=0.0, validation_classes="checked").validation_check == 0.99
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="defense.validation_check"):
            DefenseConfig(name="robust", min_trust=0.0, validation_classes="checked", validation_check=bad)
    with pytest.raises(ValueError, match="'checked'"):
        DefenseConfig(name="robust", min_trust=0.0, validation_classes="check")


def test_a_checked_run_counts_the_reports_it_overrules():
    """The loop's plumbing: the threshold reaches the scoring and the overruled devices are counted (a threshold near
    0 overrules every scored report; the default, none of the tiny run's honest ones)."""
    import dataclasses

    from conftest import tiny_config
    from lightning.fabric import Fabric

    from hffm.federation.defense import DefenseConfig
    from hffm.federation.loop import run_federation
    from hffm.run import make_world

    cfg = tiny_config(rounds=1, local_steps=1)
    world = make_world(cfg)
    counts = {}
    for check in (1e-6, 0.99):
        run = dataclasses.replace(cfg, seed=0, defense=DefenseConfig(
            name="robust", min_trust=0.25, validation_samples=32, validation_classes="checked", validation_check=check))
        counts[check] = run_federation(Fabric(accelerator="cpu", devices=1), world, run).history[-1][
            "defense/overruled_reports"]
    assert counts[0.99] == 0 < counts[1e-6] <= world.num_devices
