"""Compressing module updates on their way off the device: each codec is one record of ``CODECS``.

A device sends the *delta* from the module state it received, encoded by a codec; the edge decodes it and
adds it back, so aggregation sees ``received + decode(encode(delta))``. A codec record holds its three facets:
``encode`` (delta -> the tensors that go on the wire), ``decode`` (those tensors -> a delta) and ``wire_bytes``
(how many bytes ``encode`` puts on the wire for a tensor of that shape, indices and scales included): the
planner and the ledger charge ``wire_bytes``, and ``tests/test_compression.py`` binds it to the encoded tensors.

Codecs with ``error_feedback`` (top-k, low-rank) keep what they dropped on the device (its residual) and add
it to the next delta they send, so nothing is lost for good, only delayed. The residuals are part of the
federation state and of its checkpoints, so a resume continues exactly.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from hffm.federation.aggregate import ModuleUpdate
from hffm.lazy import LazyModule
from hffm.spec import KINDS, ModuleStates, StateDict

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = LazyModule("torch")

Payload: TypeAlias = "dict[str, Tensor]"
"""What goes on the wire for one tensor (values, indices, scales, factors)."""
Shape = tuple[int, ...]
AUTO = "auto"
"""``federation.compression=auto``: the solver chooses a level per device each round."""


@dataclass(frozen=True)
class CodecOptions:
    """The knobs codecs read (``federation.compression_topk``, ``federation.compression_rank``)."""

    topk_fraction: float = 0.1
    rank: int = 2
    feedback: str = "residual"
    """Error feedback of top-k / low-rank (``federation.compression_feedback``): ``residual`` (the device keeps what
    it did not send and adds it to the next delta) or ``ef21`` (device and edge keep the same estimate g of the
    device's update; the device sends the compressed change delta - g, both add it to g, the edge applies g)."""
    topk_scope: str = "tensor"
    """What top-k ranks (``federation.compression_topk_scope``): each ``tensor`` keeps its own k largest entries,
    or the ``module`` keeps the k largest of all its float entries (one threshold; indices into the flattened
    module)."""
    momentum: float = 0.0
    """Momentum correction of top-k's residual feedback (``federation.compression_momentum``, Deep Gradient
    Compression): the device keeps a velocity u = momentum u + delta and accumulates u, not delta, into what it has
    not sent; an entry's velocity is cleared when it is sent (momentum factor masking). 0: off."""


@dataclass(frozen=True)
class Codec:
    """One way of sending a float tensor's delta (integer tensors always go raw)."""

    name: str
    encode: Callable[[Tensor, CodecOptions], Payload]
    decode: Callable[[Payload, Shape, CodecOptions], Tensor]
    wire_bytes: Callable[[Shape, CodecOptions], int]
    """Bytes ``encode`` sends for a float32 tensor of this shape: values, indices and scales."""
    error_feedback: bool = False
    """Keep the dropped part on the device and add it to the next round's delta."""
    lossless: bool = False
    """Sends the state exactly (the delta is not even formed)."""


def _numel(shape: Shape) -> int:
    return math.prod(shape)


# ---- fp32 / fp16 / bf16 -------------------------------------------------------------------------------------
def _cast(dtype: str, size: int) -> tuple[Callable[[Tensor, CodecOptions], Payload],
                                        Callable[[Payload, Shape, CodecOptions], Tensor],
                                        Callable[[Shape, CodecOptions], int]]:
    """A plain cast to ``torch.<dtype>`` (named, so the registry is built without importing torch), ``size``
    bytes an element."""
    return (lambda d, o: {"v": d.to(getattr(torch, dtype))}, lambda p, s, o: p["v"].to(torch.float32),
            lambda s, o: size * _numel(s))


# ---- int8: symmetric, one scale per tensor or per output channel (dim 0) ---------------------------------------
def _int8_encode(d: Tensor, per_channel: bool) -> Payload:
    rows = d.reshape(d.shape[0], -1) if per_channel and d.dim() >= 2 else d.reshape(1, -1)
    scale = rows.abs().amax(dim=1).to(torch.float32) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(rows / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return {"q": q, "scale": scale}


def _int8_decode(p: Payload, shape: Shape) -> Tensor:
    return (p["q"].to(torch.float32) * p["scale"][:, None]).reshape(shape)


def _int8_bytes(shape: Shape, per_channel: bool) -> int:
    scales = shape[0] if per_channel and len(shape) >= 2 else 1
    return _numel(shape) + 4 * scales


# ---- top-k: the k largest magnitudes, int16 indices (int32 past 65,536 entries) + fp32 values; dense when smaller --
SHORT_INDEX = 1 << 16
"""Tensors of at most this many entries address them with int16 indices (stored offset by -32,768)."""


def _index_bytes(shape: Shape) -> int:
    return 2 if _numel(shape) <= SHORT_INDEX else 4


def _topk_k(shape: Shape, o: CodecOptions) -> int:
    return max(1, math.ceil(o.topk_fraction * _numel(shape)))


def topk_warmup_fraction(fraction: float, warmup: int, t: int) -> float:
    """Top-k's kept fraction in round ``t`` of a ``warmup``-round warm-up: from near dense down to ``fraction``
    geometrically (fraction ** ((t + 1) / (warmup + 1))), as Deep Gradient Compression's sparsity warm-up."""
    return fraction if t >= warmup else fraction ** ((t + 1) / (warmup + 1))


def _topk_dense(shape: Shape, o: CodecOptions) -> bool:
    return (4 + _index_bytes(shape)) * _topk_k(shape, o) >= 4 * _numel(shape)


def _topk_encode(d: Tensor, o: CodecOptions) -> Payload:
    if _topk_dense(tuple(d.shape), o):
        return {"v": d.to(torch.float32).clone()}
    flat = d.reshape(-1)
    idx = torch.topk(flat.abs(), _topk_k(tuple(d.shape), o), sorted=False).indices
    idx = torch.sort(idx).values  # a canonical order: the same payload whatever topk returned first
    short = _index_bytes(tuple(d.shape)) == 2
    wire = (idx - SHORT_INDEX // 2).to(torch.int16) if short else idx.to(torch.int32)
    return {"idx": wire, "v": flat[idx].to(torch.float32)}


def _topk_decode(p: Payload, shape: Shape, o: CodecOptions) -> Tensor:
    if "idx" not in p:
        return p["v"].reshape(shape)
    out = torch.zeros(_numel(shape), dtype=torch.float32)
    idx = p["idx"].long() + (SHORT_INDEX // 2 if p["idx"].dtype == torch.int16 else 0)
    out[idx] = p["v"]
    return out.reshape(shape)


def _topk_bytes(shape: Shape, o: CodecOptions) -> int:
    return 4 * _numel(shape) if _topk_dense(shape, o) else (4 + _index_bytes(shape)) * _topk_k(shape, o)


# ---- low-rank: a rank-r SVD of a matrix (adapters' projections), fp32 factors; dense when that is smaller -------
def _lowrank_applies(shape: Shape, o: CodecOptions) -> bool:
    return len(shape) == 2 and o.rank * (shape[0] + shape[1]) < shape[0] * shape[1]


def _lowrank_encode(d: Tensor, o: CodecOptions) -> Payload:
    if not _lowrank_applies(tuple(d.shape), o):
        return {"v": d.to(torch.float32).clone()}
    u, s, vh = torch.linalg.svd(d.to(torch.float64), full_matrices=False)
    r = o.rank
    return {"u": (u[:, :r] * s[:r]).to(torch.float32), "vh": vh[:r].to(torch.float32)}


def _lowrank_decode(p: Payload, shape: Shape, o: CodecOptions) -> Tensor:
    return (p["u"] @ p["vh"]).reshape(shape) if "u" in p else p["v"].reshape(shape)


def _lowrank_bytes(shape: Shape, o: CodecOptions) -> int:
    return 4 * o.rank * (shape[0] + shape[1]) if _lowrank_applies(shape, o) else 4 * _numel(shape)


CODECS: dict[str, Codec] = {
    "none": Codec("none", *_cast("float32", 4), lossless=True),
    "fp16": Codec("fp16", *_cast("float16", 2)),
    "bf16": Codec("bf16", *_cast("bfloat16", 2)),
    "int8": Codec("int8", lambda d, o: _int8_encode(d, False), lambda p, s, o: _int8_decode(p, s),
                  lambda s, o: _int8_bytes(s, False)),
    "int8_channel": Codec("int8_channel", lambda d, o: _int8_encode(d, True), lambda p, s, o: _int8_decode(p, s),
                          lambda s, o: _int8_bytes(s, True)),
    "topk": Codec("topk", _topk_encode, _topk_decode, _topk_bytes, error_feedback=True),
    "lowrank": Codec("lowrank", _lowrank_encode, _lowrank_decode, _lowrank_bytes, error_feedback=True),
}
"""Every codec by its ``federation.compression`` name (``auto`` is not a codec: the solver picks one of these)."""


def codec_of(name: str, field_name: str = "federation.compression") -> Codec:
    """The record called ``name``, or an error naming the closest valid choice."""
    if name in CODECS:
        return CODECS[name]
    valid = sorted(CODECS) + ([AUTO] if field_name == "federation.compression" else [])
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{field_name}={name!r}: choose one of {valid}{hint}")


def payload_bytes(payload: Payload) -> int:
    """Bytes the encoded tensors really hold: what ``Codec.wire_bytes`` must equal."""
    return sum(t.numel() * t.element_size() for t in payload.values())


# ---- which codec each update uses -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Codebook:
    """The run's codec choice: one level for every kind (or ``auto``: the plan's per-device level), per-kind
    overrides on top, and the codecs' options. Built once from the config (``codebook_of``)."""

    level: str = "none"
    kinds: Mapping[str, str] = field(default_factory=dict)
    options: CodecOptions = CodecOptions()

    @property
    def auto(self) -> bool:
        """Some kind's codec is chosen per device by the solver."""
        return self.level == AUTO or AUTO in self.kinds.values()

    @property
    def off(self) -> bool:
        """Nothing is ever compressed: the loop and the ledger take the plain path."""
        return self.level == "none" and all(v == "none" for v in self.kinds.values())

    def codec(self, kind: str, chosen: str | None = None) -> Codec:
        """The codec for a module of ``kind`` sent by a device whose plan chose ``chosen`` (under auto)."""
        name = self.kinds.get(kind, self.level)
        if name == AUTO:
            name = chosen or "none"
        return CODECS[name]

    def module_wire_bytes(self, state: Mapping[str, Tensor], kind: str, chosen: str | None = None) -> int:
        return state_wire_bytes(state, self.codec(kind, chosen), self.options)


FEEDBACK = ("residual", "ef21")
SCOPES = ("tensor", "module")
VELOCITY = "@velocity"
"""Suffix of the keys under which a device keeps its momentum-correction velocity beside its residual (so the
velocity is checkpointed with it); no parameter name contains ``@``."""


def _choice(value: str, valid: Sequence[str], field_name: str) -> None:
    if value not in valid:
        close = difflib.get_close_matches(str(value), valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{field_name}={value!r}: must be one of {list(valid)}{hint}")


def codebook_of(level: str, kinds: Mapping[str, str], topk_fraction: float, rank: int,
                feedback: str = "residual", topk_scope: str = "tensor", momentum: float = 0.0) -> Codebook:
    """Validate the names (the closest valid one in the error) and build the run's ``Codebook``."""
    if level != AUTO:
        codec_of(level)
    for kind, name in kinds.items():
        if kind not in KINDS:
            close = difflib.get_close_matches(str(kind), KINDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"federation.compression_kinds.{kind}: no module kind {kind!r}; kinds are "
                             f"{list(KINDS)}{hint}")
        if name != AUTO:
            codec_of(name, f"federation.compression_kinds.{kind}")
    if not 0 < topk_fraction <= 1:
        raise ValueError(f"federation.compression_topk={topk_fraction}: the kept fraction must be in (0, 1], "
                         "e.g. 0.1")
    if rank < 1:
        raise ValueError(f"federation.compression_rank={rank}: must be >= 1, e.g. 2")
    _choice(feedback, FEEDBACK, "federation.compression_feedback")
    _choice(topk_scope, SCOPES, "federation.compression_topk_scope")
    if not 0 <= momentum < 1:
        raise ValueError(f"federation.compression_momentum={momentum}: must be in [0, 1), e.g. 0.5 (0: off)")
    if momentum and feedback != "residual":
        raise ValueError(f"federation.compression_momentum={momentum} needs federation.compression_feedback="
                         f"residual (got {feedback!r}): the velocity feeds the residual")
    return Codebook(level, dict(kinds), CodecOptions(topk_fraction, rank, feedback, topk_scope, momentum))


def _module_wide(codec: Codec, options: CodecOptions) -> bool:
    return codec.name == "topk" and options.topk_scope == "module"


def state_wire_bytes(state: Mapping[str, Tensor], codec: Codec, options: CodecOptions) -> int:
    """Bytes one module's update takes on the wire under ``codec`` (integer tensors raw; module-wide top-k
    sends the module's float entries as one flat tensor)."""
    raw = sum(v.numel() * v.element_size() for v in state.values() if not v.is_floating_point())
    shapes = [tuple(v.shape) for v in state.values() if v.is_floating_point()]
    if _module_wide(codec, options) and shapes:
        return raw + codec.wire_bytes((sum(_numel(s) for s in shapes),), options)
    return raw + sum(codec.wire_bytes(s, options) for s in shapes)


# ---- applying it ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    """One module update through its codec: the state the edge decodes, the bytes on the wire, and the
    device's new residual (error-feedback codecs; None otherwise)."""

    state: StateDict
    wire_bytes: int
    residual: StateDict | None


def _flatten(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {"": torch.cat([t.reshape(-1) for t in tensors.values()])} if tensors else {}


def _split(flat: Tensor, like: Mapping[str, Tensor]) -> dict[str, Tensor]:
    parts = torch.split(flat, [t.numel() for t in like.values()])
    return {k: p.reshape(t.shape) for (k, t), p in zip(like.items(), parts, strict=True)}


def _encode_deltas(deltas: Mapping[str, Tensor], codec: Codec, options: CodecOptions,
                   residual: Mapping[str, Tensor] | None) -> tuple[StateDict, StateDict, int]:
    """Each float delta through the codec with its feedback: (what the edge decodes, what the device keeps,
    bytes on the wire)."""
    ef21 = codec.error_feedback and options.feedback == "ef21"
    decoded: StateDict = {}
    kept: StateDict = {}
    nbytes = 0
    for key, delta in deltas.items():
        if ef21 and residual is not None and key in residual:  # the change from the estimate both sides hold
            payload = codec.encode(delta - residual[key], options)
            nbytes += payload_bytes(payload)
            decoded[key] = kept[key] = residual[key] + codec.decode(payload, tuple(delta.shape), options)
            continue
        if residual is not None and key in residual:
            delta = delta + residual[key]
        payload = codec.encode(delta, options)
        nbytes += payload_bytes(payload)
        decoded[key] = codec.decode(payload, tuple(delta.shape), options)
        if codec.error_feedback:
            kept[key] = decoded[key] if ef21 else delta - decoded[key]
    return decoded, kept, nbytes


def send_module(state: Mapping[str, Tensor], received: Mapping[str, Tensor], codec: Codec, options: CodecOptions,
                residual: Mapping[str, Tensor] | None = None) -> Sent:
    """Encode ``state - received`` plus the residual the device kept, decode it at the edge. A codec without
    error feedback sends a kept residual along (left from an earlier round's top-k under ``auto``) and keeps
    none (``Sent.residual`` is then empty). With momentum correction the residual also holds each tensor's
    velocity (keys ending in ``VELOCITY``)."""
    if codec.lossless and not residual:
        return Sent(dict(state), state_wire_bytes(state, codec, options), None)
    if not codec.error_feedback and options.feedback == "ef21":
        residual = None  # an ef21 estimate is not a debt: a codec without feedback sends the delta itself
    out: StateDict = {}
    nbytes = 0
    deltas: StateDict = {}
    for key, value in state.items():
        if value.is_floating_point():
            deltas[key] = value.to(torch.float32) - received[key].to(torch.float32)
        else:
            out[key], nbytes = value, nbytes + value.numel() * value.element_size()
    velocity: StateDict = {}
    if codec.error_feedback and options.momentum:  # DGC: accumulate the velocity, not the delta
        old = residual or {}
        for key, delta in deltas.items():
            velocity[key] = options.momentum * old[key + VELOCITY] + delta if key + VELOCITY in old else delta
        deltas = dict(velocity)
    owed = {k: v for k, v in (residual or {}).items() if not k.endswith(VELOCITY)}
    if _module_wide(codec, options) and deltas:
        flat_owed = _flatten({k: owed.get(k, torch.zeros_like(d)) for k, d in deltas.items()}) if owed else None
        decoded, kept, sent_bytes = _encode_deltas(_flatten(deltas), codec, options, flat_owed)
        decoded = _split(decoded[""], deltas)
        kept = _split(kept[""], deltas) if kept else {}
    else:
        decoded, kept, sent_bytes = _encode_deltas(deltas, codec, options, owed or None)
    for key, d in decoded.items():
        out[key] = (received[key].to(torch.float32) + d).to(state[key].dtype)
    for key, u in velocity.items():  # momentum factor masking: a sent entry's velocity starts again
        kept[key + VELOCITY] = torch.where(decoded[key] != 0, torch.zeros_like(u), u)
    out = {k: out[k] for k in state}
    return Sent(out, nbytes + sent_bytes, kept if codec.error_feedback else ({} if residual else None))


def compress_updates(
    updates: Sequence[ModuleUpdate],
    received: Mapping[str, StateDict],
    codebook: Codebook,
    kind_of: Callable[[str], str],
    chosen: Mapping[int, str],
    residuals: Mapping[int, ModuleStates],
) -> tuple[list[ModuleUpdate], dict[int, ModuleStates]]:
    """Step 3b of the round: every update as the edge decodes it, and the residuals the devices now keep
    (device -> module -> tensors, for the error-feedback codecs that ran; an empty dict: the residual was sent
    in full and is dropped). ``received``: the edge's module states the devices started from; ``chosen``:
    device -> the plan's level under ``auto``."""
    if codebook.off:
        return list(updates), {}
    out: list[ModuleUpdate] = []
    kept: dict[int, ModuleStates] = {}
    for u in updates:
        codec = codebook.codec(kind_of(u.module), chosen.get(u.node))
        sent = send_module(u.state, received[u.module], codec, codebook.options,
                           residuals.get(u.node, {}).get(u.module))
        out.append(ModuleUpdate(u.node, u.module, sent.state, u.num_samples))
        if sent.residual is not None:
            kept.setdefault(u.node, {})[u.module] = sent.residual
    return out, kept
