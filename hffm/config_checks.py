"""Checks a composed config passes before anything is built: no key Hydra would let through and the dataclasses
would drop, no NaN or infinity anywhere, every number in a plausible range, names that exist.

A bad value fails here, naming the key, instead of minutes later deep in numpy or torch (or, for sizes, after
gigabytes of topology were drawn). ``hffm.config.resolve`` collects these problems with the groups' own checks
and raises one ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from typing import Any

from hydra.errors import CompactHydraException
from omegaconf import DictConfig

MAX_DEVICES = 1_000_000
"""topology.num_edges x topology.devices_per_edge above this is refused before any position is drawn."""

RANGES: dict[str, tuple[float, float, str]] = {
    "seed": (0, 2**63 - 1, "an integer >= 0"),
    "federation.lr": (1e-12, 10.0, "a learning rate in (0, 10]"),
    "federation.weight_decay": (0.0, 10.0, "in [0, 10]"),
    "federation.rounds": (1, 10_000_000, "in [1, 1e7]"),
    "federation.local_steps": (1, 1_000_000, "in [1, 1e6]"),
    "federation.batch_size": (1, 1_000_000, "in [1, 1e6] rows"),
    "data.global_test_fraction": (1e-9, 1 - 1e-9, "strictly between 0 and 1"),
    "data.device_test_fraction": (1e-9, 1 - 1e-9, "strictly between 0 and 1 (0 would still hold out one sample)"),
    "topology.num_edges": (1, 100_000, "in [1, 1e5]"),
    "topology.devices_per_edge": (1, 100_000, "in [1, 1e5]"),
    "topology.device_memory_mb": (1e-3, 1e7, "in (0, 1e7] MB"),
    "topology.channel.device_tx_power_w": (1e-9, 100.0, "a device transmit power in (0, 100] W"),
    "topology.channel.d2d_tx_power_w": (1e-9, 100.0, "a D2D transmit power in (0, 100] W"),
    "topology.channel.edge_tx_power_w": (0.0, 1e4, "an edge transmit power in [0, 1e4] W"),
    "topology.channel.backhaul_power_w": (0.0, 1e5, "in [0, 1e5] W"),
    "topology.channel.edge_bandwidth_hz": (1.0, 1e12, "in [1, 1e12] Hz"),
    "topology.channel.d2d_bandwidth_hz": (1.0, 1e12, "in [1, 1e12] Hz"),
    "topology.channel.backhaul_rate_bps": (1.0, 1e15, "in [1, 1e15] bit/s"),
    "topology.channel.downlink_rate_bps": (1.0, 1e15, "in [1, 1e15] bit/s"),
}
"""Key -> (lowest, highest, what a valid value is): the plausible range, checked at compose time."""


class ConfigError(ValueError, CompactHydraException):
    """A config that cannot run; the message names every bad key. Hydra prints only the message (the traceback
    with HYDRA_FULL_ERROR=1)."""


def unknown_keys(node: Any, default: Any, prefix: str = "") -> list[str]:
    """Keys of ``node`` that the dataclass ``default`` (an instance) has no field for, recursively, each with the
    closest known key: what ``+key=...`` / ``++key=...`` would add and the dataclasses would silently drop."""
    fields = {f.name for f in dataclasses.fields(default)}
    out = []
    for raw in node:
        key = str(raw)
        name = prefix + key
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.5)
            hint = f"did you mean {prefix}{close[0]}?" if close else f"known keys: {', '.join(sorted(fields))}"
            out.append(f"{name}: unknown key ({hint})")
            continue
        value, sub = node[raw], getattr(default, key)
        if isinstance(value, (DictConfig, Mapping)) and dataclasses.is_dataclass(sub) and not isinstance(sub, type):
            out += unknown_keys(value, sub, f"{name}.")
    return out


def numeric_problems(cfg: Any, channel: Any = None) -> list[str]:
    """Every NaN or infinite number anywhere in the config, every key of ``RANGES`` outside its range, and sizes
    that would build a world too big to draw. ``channel``: the network's resolved ChannelConfig (preset +
    overrides), checked as ``topology.channel.*``."""
    values = dict(_numbers(cfg))
    if channel is not None:
        values |= {f"topology.channel.{k}": v for k, v in _numbers(channel)}
    problems = [f"{k}={v}: must be a finite number" for k, v in values.items() if not math.isfinite(v)]
    bad = {p.split("=")[0] for p in problems}
    for key, (lo, hi, what) in RANGES.items():
        v = values.get(key)
        if v is not None and key not in bad and not lo <= v <= hi:
            problems.append(f"{key}={v:g}: must be {what}")
    edges, per = values.get("topology.num_edges", 1), values.get("topology.devices_per_edge", 1)
    if math.isfinite(edges * per) and edges * per > MAX_DEVICES:
        problems.append(f"topology.num_edges x topology.devices_per_edge = {int(edges * per):,} devices: at most "
                        f"{MAX_DEVICES:,} (checked before any position is drawn)")
    return problems


def _numbers(obj: Any, prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if not dataclasses.is_dataclass(obj):
        return out
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out.append((f"{prefix}{f.name}", float(value)))
        elif dataclasses.is_dataclass(value):
            out += _numbers(value, f"{prefix}{f.name}.")
    return out


def closest(name: str, known: list[str]) -> str:
    """' (did you mean X?)' for the closest of ``known``, or ''."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""
