"""Packed batched passes (every device of a wave in one pass a step, no padding) give what one-device-at-a-time
training gives."""


import numpy as np
import pytest
import torch
from conftest import mixed_config
from lightning.fabric import Fabric

from hffm.engine.batched import train_batched
from hffm.engine.jobs import DeviceJob, LocalConfig
from hffm.engine.local import train_device
from hffm.engine.segments import Segments, linear
from hffm.run import make_world


def _fabric():
    return Fabric(accelerator="cpu", devices=1)


def _jobs(world):
    bank = world.bank
    start = bank.state_of(bank.names())
    jobs = []
    for d in range(world.num_devices):
        data = world.train[d]
        required = bank.required_modules(data.modality_names, data.task_names)
        placed = tuple(m for m in required if d % 3 or not m.startswith(("encoder/", "head/")))
        jobs.append(DeviceJob(d, data, start, placed if d % 5 else (), seed=200 + d))
    return jobs


@pytest.mark.parametrize(("optimizer", "batch_size", "atol"), [("sgd", 16, 1e-5), ("adamw", 64, 5e-4)])
def test_packed_training_equals_each_device_training_alone(optimizer, batch_size, atol):
    world = make_world(mixed_config())
    jobs = _jobs(world)
    signatures = {(tuple(j.data.modality_names), tuple(j.data.task_names)) for j in jobs}
    assert len(signatures) >= 4 and len({len(j.data) for j in jobs}) > 1
    assert any(len(j.data) % batch_size for j in jobs)  # some batches are short
    assert any(not p.all() for j in jobs for p in j.data.present.values())  # some samples miss a modality
    local = LocalConfig(steps=3, batch_size=batch_size, lr=1e-2, weight_decay=0.1, optimizer=optimizer,
                        packed=True, max_batch_devices=7)
    packed = train_batched(_fabric(), world.bank, jobs, local)
    for job, result in zip(jobs, packed):
        one = train_device(_fabric(), world.bank, job, local)
        assert result.device == one.device == job.device
        assert list(result.states) == list(one.states)
        for name in one.states:
            for key in one.states[name]:
                torch.testing.assert_close(result.states[name][key], one.states[name][key], atol=atol, rtol=0,
                                           msg=f"device {job.device} {name}.{key}")
        assert result.losses.keys() == one.losses.keys()
        for key in one.losses:
            assert result.losses[key] == pytest.approx(one.losses[key], abs=atol), key
        assert result.samples == one.samples


def test_packed_training_with_the_autograd_attention_equals_each_device_training_alone(monkeypatch):
    """The path CUDA runs (no `bucket_attention`: torch's attention per bucket under autograd) on the CPU."""
    from hffm.engine import bucket_attention

    monkeypatch.setattr(bucket_attention, "available", lambda x: False)
    test_packed_training_equals_each_device_training_alone("adamw", 64, 5e-4)


def test_segments_apply_each_devices_weight_to_its_rows():
    torch.manual_seed(0)
    counts = np.array([5, 0, 1, 9, 4, 7])
    seg = Segments(counts, torch.device("cpu"), ratio=0.6)
    assert len(seg.chunks) > 1
    x = torch.randn(int(counts.sum()), 3)
    weight, bias = torch.randn(len(counts), 2, 3), torch.randn(len(counts), 2)
    dev = np.repeat(np.arange(len(counts)), counts)
    expected = torch.stack([weight[d] @ row + bias[d] for d, row in zip(dev, x)])
    torch.testing.assert_close(linear(x, seg, weight, bias), expected)
    torch.testing.assert_close(seg.sum(x), torch.stack([x[dev == d].sum(0) for d in range(len(counts))]))
    with pytest.raises(ValueError, match="rows given"):
        seg.apply(x[1:], lambda xp: xp)


def test_affine_in_the_padded_layout_gives_each_row_its_devices_affine_and_its_gradients():
    torch.manual_seed(0)
    counts = np.array([5, 0, 1, 9, 4, 7])
    seg = Segments(counts, torch.device("cpu"), ratio=0.6)
    assert len(seg.chunks) > 1 and seg.padded_rows > seg.rows
    x = torch.randn(seg.rows, 3, requires_grad=True)
    weight = torch.randn(len(counts), 2, 3, requires_grad=True)
    bias = torch.randn(len(counts), 2, requires_grad=True)
    real = seg.real_slots
    out = seg.affine_padded(x.index_select(0, seg.slot_rows), weight, bias)
    assert out.shape == (seg.padded_rows, 2)
    picked = out.index_select(0, seg.row_slots)
    dev = np.repeat(np.arange(len(counts)), counts)
    expected = torch.stack([weight[d] @ row + bias[d] for d, row in zip(dev, x)])
    torch.testing.assert_close(picked, expected)
    probe = torch.randn(seg.padded_rows, 2) * real[:, None]  # padding slots' outputs get no gradient
    got = torch.autograd.grad((out * probe).sum(), (x, weight, bias))
    want = torch.autograd.grad((expected * probe.index_select(0, seg.row_slots)).sum(), (x, weight, bias))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    with pytest.raises(ValueError, match="rows given"):
        seg.affine_padded(x, weight, bias)


@pytest.mark.slow  # seconds: 2 threads on a shared 2-core machine wait for each other
def test_packed_training_with_two_threads_is_bit_deterministic():
    """Same jobs, same numbers, with 2 intra-op threads too (advanced indexing's backward, index_put_ with
    accumulate, differed in the last bits from run to run; the packed pass gathers with index_select)."""
    world = make_world(mixed_config())
    jobs = _jobs(world)
    local = LocalConfig(steps=3, batch_size=64, lr=1e-2, optimizer="adamw", packed=True, max_batch_devices=7)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = [train_batched(_fabric(), world.bank, jobs, local) for _ in range(3)]
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            for name in a.states:
                for key in a.states[name]:
                    assert torch.equal(a.states[name][key], b.states[name][key]), f"{a.device} {name}.{key}"


def test_waves_are_equal_and_one_a_worker_at_least():
    from hffm.engine.batched import _waves

    assert _waves(100, 64, 1) == [list(range(64)), list(range(64, 100))]  # one worker: as before
    two = _waves(100, 64, 2)
    assert [len(w) for w in two] == [50, 50] and sum(two, []) == list(range(100))
    assert [len(w) for w in _waves(130, 64, 2)] == [33, 33, 32, 32]  # 3 waves needed -> 4, a multiple of 2
    assert [len(w) for w in _waves(20, 64, 2)] == [10, 10]
    assert _waves(1, 64, 2) == [[0]]


def test_bucket_attention_equals_attention_bucket_by_bucket_and_its_gradients():
    import torch.nn.functional as F

    from hffm.engine import bucket_attention as ba

    if not ba.available(torch.zeros(1)):
        pytest.skip("this torch has no CPU flash attention op")
    torch.manual_seed(0)
    heads, width = 2, 8
    shapes = [(3, 5), (2, 4), (1, 1), (4, 7)]  # masked: the flash kernel; unmasked: the transposed bmms
    masks = [torch.rand(3, 1, 1, 5) > 0.3, None, None, None]
    for m in masks[:1]:
        m[..., 0] = True  # every sample attends somewhere
    rows = 40
    gather = torch.randint(0, rows, (sum(n * s for n, s in shapes),))
    restore = torch.randint(0, len(gather), (rows + 3,))
    qkv = torch.randn(rows, 3 * width, requires_grad=True)
    got = ba.bucket_attention(qkv, gather, restore, shapes, masks, heads)
    parts, start = [], 0
    for (n, s), mask in zip(shapes, masks):
        q, k, v = qkv.index_select(0, gather[start:start + n * s]).view(n, s, 3, heads, -1).permute(2, 0, 3, 1, 4)
        parts.append(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(n * s, width))
        start += n * s
    want = torch.cat(parts).index_select(0, restore)
    torch.testing.assert_close(got, want)
    probe = torch.randn_like(want)
    (g_got,) = torch.autograd.grad((got * probe).sum(), qkv)
    (g_want,) = torch.autograd.grad((want * probe).sum(), qkv)
    torch.testing.assert_close(g_got, g_want)


def test_a_compact_batch_buckets_each_samples_kept_tokens_once_without_masks():
    from hffm.engine.packed_batch import WaveLayout, pack
    from hffm.spec import ModalitySpec, TaskSpec

    text, image = ModalitySpec("text", "text", (6,), vocab_size=20), ModalitySpec("image", "image", (1, 4, 4))
    task = TaskSpec("y", "classification", num_classes=3)
    layout = WaveLayout.of([text, image], [task], {"text": 6, "image": 4}, 2,
                           [(["text", "image"], ["y"]), (["text"], ["y"])])
    ids = torch.tensor([[3, 4, 0, 0, 0, 0], [5, 6, 7, 8, 9, 0], [1, 2, 3, 0, 0, 0]])
    batches = [{"inputs": {"text": ids[:2], "image": torch.randn(2, 1, 4, 4)},
                "present": {"text": torch.ones(2), "image": torch.tensor([1.0, 0.0])},
                "targets": {"y": torch.tensor([0, 1])}},
               {"inputs": {"text": ids[2:]}, "present": {"text": torch.ones(1)}, "targets": {"y": torch.tensor([2])}}]
    batch = pack(layout, batches, torch.device("cpu"), compact=True)
    # kept: prompts 2 + text ids + image 4 if present: 2 + 2 + 4, 2 + 5 + 0, 2 + 3
    assert sorted(b.index.shape[1] for b in batch.buckets for _ in range(b.index.shape[0])) == [5, 7, 8]
    assert all(b.attend is None for b in batch.buckets)
    assert batch.tokens.rows == 20 and torch.equal(batch.bucket_rows.sort().values, torch.arange(20))
    assert torch.equal(batch.bucket_rows[batch.restore], torch.arange(20))
    for b in batch.buckets:  # a sample's kept tokens are consecutive in the compact array
        assert torch.equal(b.index - b.index[:, :1], torch.arange(b.index.shape[1]).expand_as(b.index))
