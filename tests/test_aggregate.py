import pytest
import torch

from hffm.federation.aggregate import (
    ModuleUpdate,
    aggregate_modules,
    coordinate_median,
    make_rule,
    norm_clipped_average,
    trimmed_mean,
    update_norm,
    update_norms,
    weighted_average,
)


def test_weighted_average_matches_hand_computation():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(0.0)}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor(4.0)}
    out = weighted_average([(a, 1.0), (b, 3.0)])
    # (1*1 + 3*3)/4 = 2.5, (1*2 + 3*6)/4 = 5, (0 + 12)/4 = 3
    assert torch.allclose(out["w"], torch.tensor([2.5, 5.0]))
    assert torch.allclose(out["b"], torch.tensor(3.0))


def test_median_and_trimmed_mean_resist_an_outlier():
    honest = [({"w": torch.tensor([1.0])}, 1.0), ({"w": torch.tensor([1.2])}, 1.0), ({"w": torch.tensor([0.8])}, 1.0)]
    attacker = ({"w": torch.tensor([1000.0])}, 1.0)
    results = honest + [attacker, ({"w": torch.tensor([1.1])}, 1.0)]
    assert coordinate_median(results)["w"].item() == pytest.approx(1.1)
    # five values, trim one each side: mean of 1.0, 1.1, 1.2
    assert trimmed_mean(results, trim_fraction=0.2)["w"].item() == pytest.approx(1.1)
    assert weighted_average(results)["w"].item() > 100


def test_norm_clipping_bounds_each_update():
    ref = {"w": torch.zeros(2)}
    big = {"w": torch.tensor([30.0, 40.0])}  # norm 50 -> clipped to norm 1: (0.6, 0.8)
    small = {"w": torch.tensor([0.3, 0.4])}  # norm 0.5, unchanged
    out = norm_clipped_average([(big, 1.0), (small, 1.0)], ref, max_norm=1.0)
    assert torch.allclose(out["w"], torch.tensor([0.45, 0.6]))
    with pytest.raises(ValueError, match="reference"):
        norm_clipped_average([(big, 1.0)], None)


def test_masked_aggregation_leaves_untouched_modules_alone():
    current = {
        "encoder/image": {"w": torch.zeros(3)},
        "head/object": {"w": torch.ones(2)},
    }
    updates = [
        ModuleUpdate(0, "encoder/image", {"w": torch.full((3,), 2.0)}, 10),
        ModuleUpdate(1, "encoder/image", {"w": torch.full((3,), 5.0)}, 30),
    ]
    new, weight = aggregate_modules(current, updates)
    assert set(new) == {"encoder/image"}  # nobody trained the head: it is not touched
    assert torch.allclose(new["encoder/image"]["w"], torch.full((3,), (2 * 10 + 5 * 30) / 40))
    assert weight == {"encoder/image": 40.0}
    with pytest.raises(KeyError, match="head/text"):
        aggregate_modules(current, [ModuleUpdate(0, "head/text", {"w": torch.ones(1)}, 1)])


def test_aggregation_is_independent_of_update_order():
    current = {"m": {"w": torch.zeros(4)}}
    ups = [ModuleUpdate(i, "m", {"w": torch.randn(4, generator=torch.Generator().manual_seed(i))}, i + 1) for i in range(5)]
    a, _ = aggregate_modules(current, ups, make_rule("median"))
    b, _ = aggregate_modules(current, list(reversed(ups)), make_rule("median"))
    assert torch.equal(a["m"]["w"], b["m"]["w"])


def test_bad_rule_and_weights():
    with pytest.raises(ValueError, match="unknown aggregation rule"):
        make_rule("krum2")
    with pytest.raises(ValueError, match=">= 0"):
        weighted_average([({"w": torch.zeros(1)}, -1.0)])
    with pytest.raises(ValueError, match="at least one"):
        weighted_average([])


def test_update_norms_of_many_updates_are_update_norms_floats_exactly():
    """The stacked norms are the same floats as one update at a time: a defense's thresholds compare them."""
    torch.manual_seed(0)
    shapes = {"w": (4, 3, 2), "b": (4,), "empty": (0,), "s": ()}
    refs = [{k: torch.randn(s) for k, s in shapes.items()} for _ in range(2)]
    pairs = []
    for i in range(40):
        ref = refs[i % 2]
        pairs.append(({k: v + torch.randn_like(v) * 10.0 ** (i % 9 - 4) for k, v in ref.items()}, ref))
    pairs[3] = ({k: v.clone() for k, v in refs[1].items()}, refs[1])  # no change: norm 0
    pairs[5][0]["w"][0, 0, 0] = float("nan")
    pairs[7][0]["b"][1] = float("inf")
    pairs[9][0]["w"][1, 1, 1] = 3e38  # finite, but its square overflows without the scaling
    pairs.append(({"w": torch.ones(2)}, {"w": torch.zeros(2)}))  # another shape: its own group
    got, want = update_norms(pairs), [update_norm(s, r) for s, r in pairs]
    assert got[3] == 0.0 and got[7] == float("inf") and got[5] != got[5] and 3e38 < got[9] < float("inf")
    assert all(g == w or (g != g and w != w) for g, w in zip(got, want))
