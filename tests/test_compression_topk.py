"""Top-k's variants: module-wide ranking, momentum correction and the k warm-up (error bounds, the feedback
invariant, exact resume of their state, and the ledger charging the round's bytes)."""

import dataclasses
import math

import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.compression import (
    VELOCITY,
    codebook_of,
    payload_bytes,
    send_module,
    state_wire_bytes,
    topk_warmup_fraction,
)
from hffm.federation.config import TOPK_MOMENTUM
from hffm.federation.loop import run_federation
from hffm.federation.traffic import codec_bytes
from hffm.run import make_world


def _module(seed=0):
    """A module whose tensors differ in scale: a matrix, a larger-scale bias and an integer buffer."""
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(16, 8, generator=g) * 0.01, "b": torch.randn(8, generator=g) * 0.1,
            "n": torch.arange(3)}


def _zeros(state):
    return {k: torch.zeros_like(v) for k, v in state.items()}


def _floats(state):
    return torch.cat([v.reshape(-1) for v in state.values() if v.is_floating_point()])


def test_module_wide_topk_keeps_the_k_largest_of_the_whole_module():
    book = codebook_of("topk", {}, 0.1, 2, topk_scope="module")
    state = _module()
    sent = send_module(state, _zeros(state), book.codec(""), book.options)
    flat, decoded = _floats(state), _floats(sent.state)
    k = math.ceil(0.1 * flat.numel())
    kept = decoded != 0
    assert int(kept.sum()) == k and torch.equal(decoded[kept], flat[kept])
    assert flat[~kept].abs().max() <= flat[kept].abs().min()
    assert float(((decoded - flat) ** 2).sum()) <= (1 - k / flat.numel()) * float((flat ** 2).sum())
    assert int((sent.state["b"] != 0).sum()) > 1  # one threshold: the larger-scale bias wins more than its 10 %
    assert torch.equal(sent.state["n"], state["n"])
    # the bytes: int16 index + fp32 value per kept entry, the integer buffer raw, as the planner and ledger charge
    assert sent.wire_bytes == state_wire_bytes(state, book.codec(""), book.options) == 6 * k + 3 * 8


@pytest.mark.parametrize(("scope", "momentum"), [("tensor", 0.0), ("module", 0.0), ("tensor", 0.5), ("module", 0.9)])
def test_feedback_loses_nothing(scope, momentum):
    """Without momentum: what the edge decoded + the residual = the sum of the true deltas, every round. With
    momentum correction the same holds for the velocities the device accumulated (u_t = m u_(t-1) + delta_t,
    cleared where sent), computed here by hand."""
    book = codebook_of("topk", {}, 0.1, 2, topk_scope=scope, momentum=momentum)
    received = _zeros(_module())
    residual, decoded_sum, owed_sum, velocity = None, torch.zeros(136), torch.zeros(136), torch.zeros(136)
    for r in range(5):
        state = _module(seed=10 + r)
        sent = send_module(state, received, book.codec(""), book.options, residual)
        velocity = momentum * velocity + _floats(state)
        decoded = _floats(sent.state)
        decoded_sum += decoded
        owed_sum += velocity
        residual = sent.residual
        owed = torch.cat([residual[k].reshape(-1) for k in ("w", "b")])
        torch.testing.assert_close(decoded_sum + owed, owed_sum, atol=1e-6, rtol=0)
        if momentum:  # momentum factor masking: a sent entry's velocity starts again
            velocity = torch.where(decoded != 0, torch.zeros_like(velocity), velocity)
            kept_velocity = torch.cat([residual[k + VELOCITY].reshape(-1) for k in ("w", "b")])
            torch.testing.assert_close(kept_velocity, velocity, atol=1e-7, rtol=0)
        else:
            assert not any(k.endswith(VELOCITY) for k in residual)


def test_momentum_correction_is_plain_when_everything_is_sent():
    """k = 100 %: every entry is sent each round, so every velocity is cleared and the sends are the deltas."""
    plain, dgc = codebook_of("topk", {}, 1.0, 2), codebook_of("topk", {}, 1.0, 2, momentum=0.9)
    received, residual = _zeros(_module()), None
    for r in range(3):
        state = _module(seed=r)
        a = send_module(state, received, plain.codec(""), plain.options)
        b = send_module(state, received, dgc.codec(""), dgc.options, residual)
        residual = b.residual
        for k in state:
            assert torch.equal(a.state[k], b.state[k])


def test_warmup_fraction_falls_geometrically_to_k():
    fractions = [topk_warmup_fraction(0.1, 4, t) for t in range(6)]
    assert fractions[-2:] == [0.1, 0.1]
    assert all(a > b for a, b in zip(fractions[:5], fractions[1:5], strict=False))
    assert fractions[0] == pytest.approx(0.1 ** 0.2)
    fed = tiny_config(compression="topk", compression_topk_warmup=2).federation
    assert fed.at_round(0).compression_topk == pytest.approx(0.1 ** (1 / 3))
    assert fed.at_round(2) is fed


def test_momentum_correction_is_on_by_default_with_residual_feedback_only():
    fed = tiny_config(compression="topk").federation
    assert fed.codebook().options.momentum == TOPK_MOMENTUM > 0
    assert dataclasses.replace(fed, compression_feedback="ef21").codebook().options.momentum == 0.0
    assert dataclasses.replace(fed, compression_momentum=0.0).codebook().options.momentum == 0.0


@pytest.mark.parametrize(("change", "message"), [
    ({"compression_topk_scope": "modul"}, "did you mean 'module'"),
    ({"compression_momentum": 1.0}, "compression_momentum"),
    ({"compression_momentum": 0.5, "compression_feedback": "ef21"}, "needs federation.compression_feedback"),
    ({"compression_topk_warmup": -1}, "compression_topk_warmup"),
])
def test_bad_topk_settings_name_the_field_and_the_fix(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(tiny_config().federation, **change)


def _fabric():
    return Fabric(accelerator="cpu", devices=1)


def test_the_ledger_charges_each_warmup_rounds_bytes():
    cfg = tiny_config(e_agg=2, rounds=3, compression="topk", compression_topk_warmup=2)
    world = make_world(cfg)
    charged, want = [], []

    def log(metrics, t, plan, outcome):
        book = cfg.federation.at_round(t - 1).codebook()
        charged.append(metrics["cost/bytes/uplink"])
        want.append(float(sum(codec_bytes(world, book, m) for r in outcome.routes for m in r.modules)))

    run_federation(_fabric(), make_world(cfg), cfg, loggers=[log])
    assert charged == want
    assert charged[0] > charged[1] > charged[2]  # the warm-up's larger k costs more, and is charged


def test_topk_indexes_large_tensors_with_int32():
    book = codebook_of("topk", {}, 0.01, 2)
    d = torch.randn(70_000, generator=torch.Generator().manual_seed(0))
    payload = book.codec("").encode(d, book.options)
    assert payload["idx"].dtype == torch.int32 and payload_bytes(payload) == 8 * 700
    decoded = book.codec("").decode(payload, (70_000,), book.options)
    assert torch.equal(decoded[decoded != 0], d[decoded != 0]) and int((decoded != 0).sum()) == 700
    edge = d[:65_536].clone()  # the largest tensor int16 indices still address, its first and last entries kept
    edge[0], edge[-1] = -100.0, 100.0
    small = book.codec("").encode(edge, book.options)
    assert small["idx"].dtype == torch.int16 and payload_bytes(small) == 6 * 656
    back = book.codec("").decode(small, (65_536,), book.options)
    assert back[0] == -100.0 and back[-1] == 100.0 and torch.equal(back[back != 0], edge[back != 0])


def test_wire_bytes_of_a_module_match_its_payload():
    state = _module()
    for scope in ("tensor", "module"):
        book = codebook_of("topk", {}, 0.25, 2, topk_scope=scope)
        codec = book.codec("")
        sent = send_module(state, _zeros(state), codec, book.options)
        assert sent.wire_bytes == state_wire_bytes(state, codec, book.options)
    flat = codebook_of("topk", {}, 0.25, 2)
    assert payload_bytes(flat.codec("").encode(_floats(state), flat.options)) == 6 * math.ceil(0.25 * 136)


@pytest.mark.parametrize("change", [{"compression_topk_scope": "module", "compression_momentum": 0.5,
                                     "compression_topk_warmup": 2}])
def test_resume_with_topk_variants_is_exact(tmp_path, change):
    cfg = tiny_config(e_agg=2, rounds=3, compression="topk", **change)
    full = run_federation(_fabric(), make_world(cfg), cfg)
    assert any(k.endswith(VELOCITY) for mods in full.state.residual.values() for t in mods.values() for k in t)
    run_federation(_fabric(), make_world(cfg), cfg.replace(federation={"rounds": 2}), out_dir=tmp_path)
    resumed_cfg = cfg.replace(federation={"resume": str(tmp_path / "checkpoints" / "federation.pt")})
    resumed = run_federation(_fabric(), make_world(cfg), resumed_cfg)
    for a, b in zip(full.state.group_states, resumed.state.group_states, strict=True):
        for m in a:
            for k in a[m]:
                assert torch.equal(a[m][k], b[m][k]), (m, k)
    for d, mods in full.state.residual.items():
        for m, tensors in mods.items():
            assert tensors.keys() == resumed.state.residual[d][m].keys()
            for k, v in tensors.items():
                assert torch.equal(v, resumed.state.residual[d][m][k])
    assert [h["cost/bytes/uplink"] for h in full.history] == [h["cost/bytes/uplink"] for h in resumed.history]


def test_a_late_device_keeps_what_it_did_not_send():
    """A device past the deadline still sent its update (the ledger charges it as wasted), so its residual is
    what its codec left, exactly as if the update had counted; its update does not reach the edge."""
    cfg = tiny_config(rounds=1, compression="topk", deadline_quantile=0.5)
    seen = []
    result = run_federation(_fabric(), make_world(cfg), cfg, loggers=[lambda m, t, p, o: seen.append(o)])
    late = set(seen[0].faults.late)
    assert late and late <= set(result.state.residual)
    sent = {r.device for r in seen[0].routes}
    assert sent and not late & sent and sent <= set(result.state.residual)
