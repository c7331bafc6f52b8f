"""The M3T benchmark generator and the M3TDataset protocol (small sizes: these run in a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from hffm.data import BenchmarkConfig, M3TDataset, make_benchmark
from hffm.data.render import COLOR_NAMES, OBJECT_NAMES
from hffm.data.text import COLOR_WORDS, OBJECT_WORDS
from hffm.spec import ModalitySpec, TaskSpec

SMALL = dict(num_samples=120)


@pytest.fixture(scope="module")
def ds() -> M3TDataset:
    return make_benchmark(BenchmarkConfig(**SMALL), seed=3)


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        _equal(a[k], b[k]) if isinstance(a[k], dict) else torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_tensors_other_seed_differs(ds: M3TDataset) -> None:
    again = make_benchmark(BenchmarkConfig(**SMALL), seed=3)
    other = make_benchmark(BenchmarkConfig(**SMALL), seed=4)
    for group in ("inputs", "targets", "present"):
        assert _equal(getattr(ds, group), getattr(again, group))
    for m in ds.inputs:
        assert not torch.equal(ds.inputs[m], other.inputs[m]), m
    for t in ds.targets:
        assert not torch.equal(ds.targets[t], other.targets[t]), t


def test_shapes_dtypes_match_specs(ds: M3TDataset) -> None:
    cfg = BenchmarkConfig(**SMALL)
    assert ds.modality_names == ["image", "text", "iq"]
    assert ds.task_names == ["object", "color", "modulation", "snr"]
    assert ds.modality("image").shape == (3, 16, 16) and ds.modality("iq").shape == (2, 128)
    assert ds.modality("text").vocab_size == len(ds.vocab) and ds.vocab[0] == "<pad>"
    for spec in ds.modalities:
        x = ds.inputs[spec.name]
        assert tuple(x.shape) == (len(ds), *spec.shape)
        assert x.dtype == (torch.long if spec.kind == "text" else torch.float32)
        assert ds.present[spec.name].dtype == torch.bool
    for spec in ds.tasks:
        y = ds.targets[spec.name]
        assert y.shape == (len(ds),)
        if spec.kind == "classification":
            assert y.dtype == torch.long and 0 <= y.min() and y.max() < spec.num_classes
            assert len(np.unique(y.numpy())) == spec.num_classes  # 120 samples see every class
        else:
            assert y.dtype == torch.float32 and -1.0 <= y.min() and y.max() <= 1.0
    assert torch.allclose(torch.as_tensor(cfg.snr_db(ds.targets["snr"])), ds.extras["snr_db"], atol=1e-4)
    assert ds.task_modalities == {"object": ("image", "text"), "color": ("image", "text"),
                                  "modulation": ("iq",), "snr": ("iq",)}
    # I/Q bursts are AGC'd to unit RMS.
    rms = ds.inputs["iq"].pow(2).sum(1).mean(1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-4)


def test_captions_name_the_true_object_and_colour(ds: M3TDataset) -> None:
    assert list(OBJECT_WORDS) == list(OBJECT_NAMES) and list(COLOR_WORDS) == list(COLOR_NAMES)
    objs, cols = list(OBJECT_WORDS.values()), list(COLOR_WORDS.values())
    for i in range(len(ds)):
        words = [ds.vocab[j] for j in ds.inputs["text"][i].tolist() if j]
        assert set(words) & set(objs[int(ds.targets["object"][i])]), words
        assert set(words) & set(cols[int(ds.targets["color"][i])]), words
        ids = ds.inputs["text"][i]
        nz = int((ids != 0).sum())
        assert bool((ids[:nz] != 0).all()), "padding only at the end"


def test_default_collate_and_batches_match_getitem(ds: M3TDataset) -> None:
    sample = ds[5]
    assert sample["present"]["image"].shape == () and sample["targets"]["object"].shape == ()
    collated = default_collate([ds[i] for i in range(7)])
    assert _equal(collated, ds.batch(list(range(7))))
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    got = list(ds.batches(32, shuffle=True, generator=gen))
    assert [len(b["targets"]["snr"]) for b in got] == [32, 32, 32, 24]
    for k, b in enumerate(got):
        want = default_collate([ds[int(i)] for i in order[32 * k: 32 * (k + 1)]])
        assert _equal(b, want)
    assert len(list(ds.batches(32, shuffle=False, drop_last=True))) == 3


def test_missing_modalities_but_never_all() -> None:
    cfg = BenchmarkConfig(num_samples=400, missing_prob=0.6)
    d = make_benchmark(cfg, seed=0)
    pres = torch.stack([d.present[m] for m in d.modality_names], 1)
    assert pres.any(1).all()
    frac = 1 - pres.float().mean(0)
    assert ((frac > 0.35) & (frac < 0.65)).all(), frac
    for m in d.modality_names:
        assert (d.inputs[m][~d.present[m]] == 0).all()
    assert torch.equal(d.observable("snr"), d.present["iq"])
    assert make_benchmark(BenchmarkConfig(num_samples=50), 0).observable("object").all()


def test_subset_split_and_labels(ds: M3TDataset) -> None:
    sub = ds.subset([4, 1, 9], modalities=["iq"], tasks=["snr", "modulation"])
    assert len(sub) == 3 and sub.modality_names == ["iq"] and sub.task_names == ["modulation", "snr"]
    assert torch.equal(sub.inputs["iq"][1], ds.inputs["iq"][1])
    assert sub.task_modalities == {"modulation": ("iq",), "snr": ("iq",)}
    assert np.array_equal(sub.labels("modulation"), ds.labels("modulation")[[4, 1, 9]])
    assert torch.equal(sub.extras["snr_db"], ds.extras["snr_db"][[4, 1, 9]])
    with pytest.raises(ValueError, match="'sonar'"):
        ds.subset([0], modalities=["image", "sonar"])
    with pytest.raises(ValueError, match="'depth'"):
        ds.subset([0], tasks=["depth"])
    with pytest.raises(ValueError, match="device has no samples"):
        ds.subset([])
    train, test = ds.split(0.25, seed=1)
    assert len(test) == 30 and len(train) == 90
    t2, _ = ds.split(0.25, seed=1)
    assert torch.equal(train.inputs["image"], t2.inputs["image"])
    both = torch.cat([train.extras["snr_db"], test.extras["snr_db"]])
    assert torch.equal(both.sort().values, ds.extras["snr_db"].sort().values)
    with pytest.raises(ValueError, match="test_fraction"):
        ds.split(1.0, seed=0)


@pytest.mark.parametrize(
    "field,value",
    [("num_samples", 0), ("image_size", 4), ("text_len", 3), ("num_objects", 9), ("missing_prob", 1.0),
     ("snr_db_range", (5.0, 5.0)), ("iq_len", 16), ("iq_rolloff", 0.0)],
)
def test_config_checks_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BenchmarkConfig(**{field: value})


def _user_data(n: int = 10) -> dict:
    return dict(
        inputs={"cam": torch.randn(n, 1, 4, 4), "words": torch.randint(0, 5, (n, 3))},
        targets={"kind": torch.randint(0, 3, (n,)), "size": torch.rand(n)},
        modalities=[ModalitySpec("cam", "image", (1, 4, 4)), ModalitySpec("words", "text", (3,), vocab_size=5)],
        tasks=[TaskSpec("kind", "classification", 3), TaskSpec("size", "regression")],
    )


def test_from_tensors_accepts_valid_user_data() -> None:
    d = M3TDataset.from_tensors(**_user_data(), present={"cam": torch.tensor([True] * 9 + [False])},
                                task_modalities={"kind": ["cam", "words"], "size": ["cam"]},
                                vocab=["<pad>", "a", "b", "c", "d"])
    assert len(d) == 10 and d.present["words"].all() and not d.present["cam"][9]
    assert (d.inputs["cam"][9] == 0).all()
    batch = default_collate([d[i] for i in range(4)])
    assert batch["inputs"]["cam"].shape == (4, 1, 4, 4) and batch["targets"]["kind"].dtype == torch.long
    assert M3TDataset.from_tensors(**_user_data()).task_modalities["size"] == ("cam", "words")


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda u: u["inputs"].pop("cam"), "cam"),
        (lambda u: u["inputs"].__setitem__("cam", torch.randn(10, 4, 4)), "cam"),
        (lambda u: u["inputs"].__setitem__("cam", torch.randn(9, 1, 4, 4)), "cam"),
        (lambda u: u["inputs"].__setitem__("words", torch.rand(10, 3)), "words"),
        (lambda u: u["inputs"].__setitem__("words", torch.full((10, 3), 7)), "words"),
        (lambda u: u["inputs"].__setitem__("cam", torch.full((10, 1, 4, 4), float("nan"))), "cam"),
        (lambda u: u["inputs"].__setitem__("radar", torch.randn(10, 2)), "radar"),
        (lambda u: u["targets"].__setitem__("kind", torch.rand(10)), "kind"),
        (lambda u: u["targets"].__setitem__("kind", torch.full((10,), 3)), "kind"),
        (lambda u: u["targets"].__setitem__("size", torch.ones(10, dtype=torch.long)), "size"),
        (lambda u: u["targets"].__setitem__("size", torch.rand(10, 1)), "size"),
        (lambda u: u["targets"].pop("size"), "size"),
        (lambda u: u.__setitem__("present", {"cam": torch.ones(10)}), "cam"),
        (lambda u: u.__setitem__("task_modalities", {"kind": ["cam"], "size": ["lidar"]}), "size"),
        (lambda u: u.__setitem__("vocab", ["<pad>", "x"]), "vocab"),
    ],
)
def test_from_tensors_errors_name_the_key(mutate, match: str) -> None:
    u = _user_data()
    mutate(u)
    with pytest.raises(ValueError, match=match):
        M3TDataset.from_tensors(**u)
