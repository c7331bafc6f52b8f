"""Update screening and robust rules: properties over random updates (hypothesis), plus the loop."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hffm.federation.aggregate import (
    ModuleUpdate,
    aggregate_modules,
    coordinate_median,
    make_rule,
    norm_clipped_average,
    trimmed_mean,
    update_norm,
)
from hffm.federation.screening import Rejection, screen_updates, thin_modules

ROBUST = ("median", "trimmed_mean", "clip")
RULE_OPTIONS = {"mean": {}, "median": {}, "trimmed_mean": {"trim_fraction": 0.1}, "clip": {"max_norm": 1.0}}
FAST = settings(max_examples=40, deadline=None)

values = st.floats(-1e3, 1e3, allow_nan=False, width=32)
bad_values = st.sampled_from([math.nan, math.inf, -math.inf])


def _update(node, vals, module="m", weight=1.0):
    return ModuleUpdate(node, module, {"w": torch.tensor(vals, dtype=torch.float32)}, weight)


def _agg(rule, updates, reference):
    new, _ = aggregate_modules({"m": reference}, updates, make_rule(rule, **RULE_OPTIONS[rule]))
    return new["m"]["w"]


@FAST
@given(rule=st.sampled_from(sorted(RULE_OPTIONS)), rows=st.lists(st.lists(values, min_size=3, max_size=3), min_size=1,
                                                                  max_size=6), data=st.data())
def test_every_rule_is_invariant_to_the_order_updates_arrive_in(rule, rows, data):
    ups = [_update(i, r, weight=float(i + 1)) for i, r in enumerate(rows)]
    shuffled = data.draw(st.permutations(ups))
    ref = {"w": torch.zeros(3)}
    assert torch.equal(_agg(rule, ups, ref), _agg(rule, shuffled, ref))


@FAST
@given(rule=st.sampled_from(sorted(RULE_OPTIONS)), row=st.lists(values, min_size=3, max_size=3))
def test_a_single_holder_gets_its_own_weights_back(rule, row):
    ref = {"w": torch.tensor(row)} if rule == "clip" else {"w": torch.zeros(3)}  # clip: an update within max_norm
    out = _agg(rule, [_update(0, row, weight=7.0)], ref)
    assert torch.allclose(out, torch.tensor(row, dtype=torch.float32))


@FAST
@given(rule=st.sampled_from(sorted(RULE_OPTIONS)), rows=st.lists(st.lists(values, min_size=2, max_size=2), min_size=0,
                                                                  max_size=5), bad=bad_values, where=st.integers(0, 1))
def test_one_non_finite_update_never_reaches_the_state_after_screening(rule, rows, bad, where):
    ref = {"w": torch.zeros(2)}
    poisoned = [0.5, 0.5]
    poisoned[where] = bad
    ups = [_update(i, r) for i, r in enumerate(rows)] + [_update(99, poisoned)]
    kept, rejected = screen_updates(ups, {"m": ref})
    assert rejected == [Rejection(99, "m", "non-finite", "NaN or Inf in w")]
    if kept:
        assert torch.isfinite(_agg(rule, kept, ref)).all()
    # the robust rules also refuse it on their own, without the screen
    if rule in ROBUST:
        assert torch.isfinite(_agg(rule, ups, ref)).all()


@FAST
@given(rows=st.lists(st.lists(values, min_size=2, max_size=2), min_size=3, max_size=4), bad=bad_values)
def test_robust_rules_with_an_inf_or_nan_holder_equal_the_rule_without_it(rows, bad):
    ref = {"w": torch.zeros(2)}
    honest = [_update(i, r) for i, r in enumerate(rows)]
    for rule in ROBUST:
        assert torch.equal(_agg(rule, honest + [_update(9, [bad, 0.0])], ref), _agg(rule, honest, ref))


def test_robust_rules_keep_the_reference_when_every_update_is_non_finite():
    ref = {"w": torch.tensor([1.0, 2.0])}
    ups = [({"w": torch.tensor([math.nan, 0.0])}, 1.0), ({"w": torch.tensor([math.inf, 0.0])}, 1.0)]
    for fn in (coordinate_median, trimmed_mean, norm_clipped_average):
        assert torch.equal(fn(ups, ref)["w"], ref["w"])
    with pytest.raises(ValueError, match="NaN or Inf"):
        coordinate_median(ups, None)


def test_trimmed_mean_trims_one_from_each_end_in_small_groups():
    ups = [({"w": torch.tensor([v])}, 1.0) for v in (1.0, 2.0, 1e6)]
    assert trimmed_mean(ups, trim_fraction=0.1)["w"].item() == 2.0  # int(0.1 * 3) = 0 would give 333334.3
    assert trimmed_mean(ups, trim_fraction=0.0)["w"].item() == pytest.approx((1 + 2 + 1e6) / 3)
    two = ups[:2]
    assert trimmed_mean(two, trim_fraction=0.1)["w"].item() == 1.5  # fewer than 3: nothing to trim


def test_clip_handles_huge_finite_updates_without_overflow():
    ref = {"w": torch.zeros(2, dtype=torch.float32)}
    huge = {"w": torch.tensor([3e38, 3e38])}  # the float32 norm overflows; update_norm's scaled float64 one does not
    assert update_norm(huge, ref) == pytest.approx(3e38 * math.sqrt(2), rel=1e-6)
    out = norm_clipped_average([(huge, 1.0), ({"w": torch.zeros(2)}, 1.0)], ref, max_norm=1.0)
    assert torch.isfinite(out["w"]).all() and float(out["w"].norm()) <= 0.5 + 1e-6


def test_screen_names_wrong_keys_shapes_weights_and_large_norms():
    ref = {"m": {"w": torch.zeros(2), "b": torch.zeros(1)}}
    ok = ModuleUpdate(0, "m", {"w": torch.ones(2), "b": torch.zeros(1)}, 1.0)
    ups = [
        ok,
        ModuleUpdate(1, "m", {"w": torch.ones(2)}, 1.0),
        ModuleUpdate(2, "m", {"w": torch.ones(3), "b": torch.zeros(1)}, 1.0),
        ModuleUpdate(3, "m", {"w": torch.ones(2), "b": torch.zeros(1)}, math.inf),
        ModuleUpdate(4, "other", {"w": torch.ones(2)}, 1.0),
        ModuleUpdate(5, "m", {"w": torch.full((2,), 100.0), "b": torch.zeros(1)}, 1.0),
    ]
    kept, rejected = screen_updates(ups, ref, max_update_norm=10.0)
    assert kept == [ok]
    assert [(r.node, r.reason) for r in rejected] == [
        (1, "wrong keys"), (2, "wrong shape"), (3, "bad weight"), (4, "unknown module"), (5, "norm above max")]
    assert "federation.max_update_norm=10" in rejected[-1].detail
    assert "node 2, module 'm': wrong shape (w: (3,) instead of (2,))" == str(rejected[1])
    assert len(screen_updates(ups, ref).kept) == 2  # no norm check without a max
    with pytest.raises(ValueError, match="max_update_norm"):
        screen_updates(ups, ref, max_update_norm=0.0)


def test_thin_modules_lists_modules_a_robust_rule_cannot_protect():
    ups = [_update(i, [0.0], module=m) for i, m in enumerate(["a", "a", "a", "b", "c", "c"])]
    assert thin_modules(ups, "median") == {"b": 1, "c": 2}
    assert thin_modules(ups, "mean") == {}


def test_max_update_norm_is_checked_in_the_config():
    from hffm.federation.config import FederationConfig

    assert FederationConfig(max_update_norm=5.0).max_update_norm == 5.0
    with pytest.raises(ValueError, match="federation.max_update_norm"):
        FederationConfig(max_update_norm=-1.0)


def test_a_device_sending_nan_every_round_never_reaches_the_edges_or_the_cloud(caplog):
    """The real loop with the real training; device 0's trained states are replaced by NaN on the way out."""
    from conftest import tiny_config
    from lightning.fabric import Fabric

    from hffm.engine import TrainResult, train_devices
    from hffm.federation.loop import run_federation
    from hffm.run import make_world

    def train_then_poison(fabric, bank, jobs, local):  # the training seam: device 0's states become NaN
        out = []
        for r in train_devices(fabric, bank, jobs, local):
            if r.device == 0:
                r = TrainResult(r.device, {m: {k: torch.full_like(v, math.nan) for k, v in s.items()}
                                           for m, s in r.states.items()}, r.losses)
            out.append(r)
        return out

    cfg = tiny_config(rounds=2, e_agg=1, rule="mean")
    world = make_world(cfg)
    result = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg, trainer=train_then_poison)
    for states in [result.state.cloud_state, *result.state.group_states]:
        for module in states.values():
            assert all(torch.isfinite(v).all() for v in module.values())
    assert math.isfinite(result.history[-1]["accuracy"])
    rejected = [r.getMessage() for r in caplog.records if "rejected the update of node 0" in r.getMessage()]
    assert rejected and all("non-finite" in m for m in rejected)
    assert "round 1, edge 0" in rejected[0]
    assert all(h["faults/rejected_updates"] > 0 for h in result.history)  # counted, and recorded in the outcome
    assert {r.node for r in result.last_outcome.rejected} == {0}
