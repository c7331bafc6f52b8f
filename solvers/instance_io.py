"""The instance's JSON: two layouts in, validated over whole columns with numpy, errors naming the field.

- *records* (hand-written files, `examples/instance_small.json`): `"devices": [{"id": 0, "edge": "e0", ...}, ...]`;
- *columns* (what `RoundProblem.save` and `python -m solvers generate` write; about 2x smaller and faster):
  `"devices": {"id": [0, 1, ...], "edge": ["e0", ...], ...}`, one list per field, all of one length.
Each table (devices, edges, modules, d2d_links) may use either layout. Reading turns both into columns, then
checks each column at once (types, finiteness, signs, references); only when a column fails is it scanned for its
first bad entry, named `devices[3].cpu_hz` (records) or `devices.cpu_hz[3]` (columns).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from solvers.fields import check_flag, check_number

if TYPE_CHECKING:
    from solvers.instance import RoundProblem

DEVICE_FIELDS = ("id", "edge", "samples", "cpu_hz", "memory_bytes", "tx_power_w", "uplink_gain", "modules")
DEVICE_OPTIONAL = ("d2d_power_w", "p_max", "f_min", "f_max")
MODULE_FIELDS = ("name", "bytes", "memory_bytes", "cycles_per_sample")
EDGE_FIELDS = ("id", "bandwidth_hz")
LINK_FIELDS = ("src", "dst", "rate_bps")
TOP_FIELDS = ("noise_w_per_hz", "gamma", "lambda", "relay_aggregates", "devices", "edges", "modules", "d2d_links")
LAYOUTS = ("columns", "records")
_ID_TYPES = frozenset((str, int))  # exact types: a bool is not an id, nor is 1.0 the id 1
_NUMBER_TYPES = frozenset((int, float))


class _Table:
    """One table's fields as lists (whichever layout it came in) and how to name entry k of a field."""

    def __init__(self, value: Any, label: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        self.label = label
        if isinstance(value, list):
            self.records = True
            if not set(map(type, value)) <= {dict}:
                k = next(k for k, item in enumerate(value) if type(item) is not dict)
                raise ValueError(f"{label}[{k}]: must be an object")
            try:  # every required field of every record in one pass (C loops), else find the missing one
                rows = list(map(itemgetter(*required), value)) if len(required) > 1 else \
                    [(v,) for v in map(itemgetter(required[0]), value)]
            except KeyError:
                k, f = next((k, f) for k, item in enumerate(value) for f in required if f not in item)
                raise ValueError(f"{label}[{k}]: missing field {f!r}") from None
            self.cols: dict[str, list] = dict(zip(required, map(list, zip(*rows, strict=True)), strict=True)) \
                if rows else {f: [] for f in required}
            present = set().union(*map(dict.keys, value)) if optional else set()
            for f in optional:
                if f in present:
                    self.cols[f] = [item.get(f) for item in value]  # None: the default applies
            self.size = len(value)
        elif isinstance(value, dict):
            self.records = False
            self.cols = {}
            for f in required + optional:
                if f not in value:
                    if f in required:
                        raise ValueError(f"{label}: missing column {f!r} (columns layout: one list per field)")
                    continue
                if not isinstance(value[f], list):
                    raise ValueError(f"{label}.{f}: must be a list (columns layout: one value per entry)")
                self.cols[f] = value[f]
            self.size = len(self.cols[required[0]])
            for f, col in self.cols.items():
                if len(col) != self.size:
                    raise ValueError(f"{label}.{f}: has {len(col)} values, but {label}.{required[0]} has "
                                     f"{self.size}; give one value per entry")
        else:
            raise ValueError(f"{label}: must be a list of objects (records) or an object of lists (columns)")

    def name(self, field: str) -> Callable[[int], str]:
        label = self.label
        return (lambda k: f"{label}[{k}].{field}") if self.records else (lambda k: f"{label}.{field}[{k}]")

    def numbers(self, field: str, positive: bool = False, default: np.ndarray | None = None) -> np.ndarray:
        """A float array of a numeric column; None entries (records without the optional field) take default."""
        col = self.cols[field]
        if default is not None and None in col:
            fill = default.tolist()  # Python floats, which the column check accepts like the user's numbers
            col = [fill[k] if v is None else v for k, v in enumerate(col)]
        return _numbers(col, self.name(field), positive)

    def ids(self, field: str) -> list:
        col = self.cols[field]
        if not set(map(type, col)) <= _ID_TYPES:
            k = next(k for k, v in enumerate(col) if type(v) not in _ID_TYPES)
            raise ValueError(f"{self.name(field)(k)}: must be a string or an integer, got {col[k]!r}")
        if len(set(col)) != len(col):
            first: dict = {}
            k = next(k for k, v in enumerate(col) if first.setdefault(v, k) != k)
            raise ValueError(f"{self.name(field)(k)}: duplicate {col[k]!r}; ids must be unique")
        return col

    def refs(self, field: str, index: dict, what: str) -> np.ndarray:
        """Indices of the ids a column refers to (its entries must be ids of `index`)."""
        col = self.cols[field]
        if set(map(type, col)) <= _ID_TYPES:
            out = np.array([index.get(v, -1) for v in col], dtype=int)
            if not np.any(out < 0):
                return out
            k = int(np.flatnonzero(out < 0)[0])
        else:
            k = next(k for k, v in enumerate(col) if type(v) not in _ID_TYPES)
        raise ValueError(f"{self.name(field)(k)}: unknown {what} {col[k]!r}")


_MISSING = object()


def _numbers(values: list, name: Callable[[int], str], positive: bool) -> np.ndarray:
    """Finite numbers >= 0 (> 0 if positive), checked on the whole column; the first bad entry is named."""
    if set(map(type, values)) <= _NUMBER_TYPES:
        try:
            a = np.array(values, dtype=float)
        except OverflowError:  # an integer too large for a float: found below
            a = None
        if a is not None and a.shape == (len(values),):
            bad = ~np.isfinite(a) | (a <= 0 if positive else a < 0)
            if not bad.any():
                return a
    for k, v in enumerate(values):
        check_number(v, name(k), positive=positive)
    raise ValueError(f"{name(0)}: not a column of numbers")  # not reached: _number names the bad entry


def read_instance(data: Any) -> dict[str, Any]:
    """The keyword arguments of RoundProblem from the JSON structure of solvers/schema/instance.schema.json."""
    if not isinstance(data, dict):
        raise ValueError("instance: top level must be a JSON object")
    for f in TOP_FIELDS:
        if f not in data:
            raise ValueError(f"instance: missing field {f!r}")
    mods = _Table(data["modules"], "modules", MODULE_FIELDS)
    edges = _Table(data["edges"], "edges", EDGE_FIELDS)
    devs = _Table(data["devices"], "devices", DEVICE_FIELDS, DEVICE_OPTIONAL)
    links = _Table(data["d2d_links"], "d2d_links", LINK_FIELDS)
    edge_ids, device_ids = edges.ids("id"), devs.ids("id")
    names = mods.cols["name"]
    if not set(map(type, names)) <= {str}:
        k = next(k for k, v in enumerate(names) if type(v) is not str)
        raise ValueError(f"{mods.name('name')(k)}: must be a string, got {names[k]!r}")
    if len(set(names)) != len(names):
        raise ValueError("modules.name: duplicate values; module names must be unique")
    module_fields = {f: mods.numbers(f) for f in MODULE_FIELDS[1:]}
    bandwidth = edges.numbers("bandwidth_hz", positive=True)
    edge_of = devs.refs("edge", {v: k for k, v in enumerate(edge_ids)}, "edge")
    per_device: dict[str, np.ndarray | None] = {f: devs.numbers(f) for f in ("samples", "memory_bytes")}
    per_device |= {f: devs.numbers(f, positive=True) for f in ("cpu_hz", "tx_power_w", "uplink_gain")}
    power, cpu = per_device["tx_power_w"], per_device["cpu_hz"]
    per_device["d2d_power_w"] = devs.numbers("d2d_power_w", default=power) if "d2d_power_w" in devs.cols else power
    for key, nominal in (("p_max", power), ("f_min", cpu), ("f_max", cpu)):
        per_device[key] = devs.numbers(key, positive=True, default=nominal) if key in devs.cols else None
    eligible = _eligible(devs, names)
    device_index = {v: k for k, v in enumerate(device_ids)}
    src, dst = links.refs("src", device_index, "device"), links.refs("dst", device_index, "device")
    rate = links.numbers("rate_bps", positive=True)
    cross = np.flatnonzero(edge_of[src] != edge_of[dst])
    if cross.size:
        k = int(cross[0])
        raise ValueError(f"{links.label}[{k}]: src {device_ids[src[k]]!r} and dst {device_ids[dst[k]]!r} are attached "
                         "to different edges; D2D relays must stay within a cluster")
    for f in ("noise_w_per_hz", "gamma", "lambda"):
        check_number(data[f], f, positive=(f == "noise_w_per_hz"))
    check_number(data.get("kappa", 1e-28), "kappa")
    if not isinstance(data["relay_aggregates"], bool):
        raise ValueError("relay_aggregates: must be true or false")
    cap = data.get("relay_capacity")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 0):
        raise ValueError(f"relay_capacity: must be null or an integer >= 0, got {cap!r}")
    return dict(
        device_ids=tuple(device_ids), edge_ids=tuple(edge_ids), module_names=tuple(names), device_edge=edge_of,
        eligible=eligible, module_bytes=module_fields["bytes"], module_memory_bytes=module_fields["memory_bytes"],
        module_cycles=module_fields["cycles_per_sample"], edge_bandwidth_hz=bandwidth, d2d_src=src, d2d_dst=dst,
        d2d_rate_bps=rate, noise_w_per_hz=float(data["noise_w_per_hz"]), gamma=float(data["gamma"]),
        lam=float(data["lambda"]), relay_aggregates=data["relay_aggregates"], kappa=float(data.get("kappa", 1e-28)),
        relay_capacity=cap, tree_aggregation=check_flag(data, "tree_aggregation"), **per_device,
    )


def _eligible(devs: _Table, names: list[str]) -> np.ndarray:
    """[N, M] bool from each device's list of module names (flattened once, looked up once)."""
    col, name = devs.cols["modules"], devs.name("modules")
    if not set(map(type, col)) <= {list}:
        k = next(k for k, v in enumerate(col) if type(v) is not list)
        raise ValueError(f"{name(k)}: must be a list of module names")
    flat = list(chain.from_iterable(col))
    rows = np.repeat(np.arange(len(col)), [len(v) for v in col])
    if not set(map(type, flat)) <= {str}:
        j = next(j for j, v in enumerate(flat) if type(v) is not str)
        raise ValueError(f"{name(int(rows[j]))}: module names are strings, got {flat[j]!r}")
    index = {v: k for k, v in enumerate(names)}
    cols = np.array([index.get(v, -1) for v in flat], dtype=int)
    if np.any(cols < 0):
        j = int(np.flatnonzero(cols < 0)[0])
        raise ValueError(f"{name(int(rows[j]))}: unknown module {flat[j]!r} (known: {sorted(names)})")
    eligible = np.zeros((len(col), len(names)), dtype=bool)
    eligible[rows, cols] = True
    return eligible


def write_instance(pr: RoundProblem, layout: str = "columns") -> dict[str, Any]:
    """The JSON structure of a problem in `layout` (columns or records); read_instance reads both back."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: must be one of {LAYOUTS}, got {layout!r}")
    names = pr.module_names
    devices: dict[str, list] = {
        "id": list(pr.device_ids), "edge": [pr.edge_ids[e] for e in pr.device_edge.tolist()],
        "samples": pr.samples.tolist(), "cpu_hz": pr.cpu_hz.tolist(), "memory_bytes": pr.memory_bytes.tolist(),
        "tx_power_w": pr.tx_power_w.tolist(), "uplink_gain": pr.uplink_gain.tolist(),
        "d2d_power_w": pr.d2d_power_w.tolist(), "modules": row_names(pr.eligible, names),
        **{key: v.tolist() for key, v in (("p_max", pr.p_max), ("f_min", pr.f_min), ("f_max", pr.f_max))
           if v is not None},
    }
    tables: dict[str, Any] = {
        "modules": {"name": list(names), "bytes": pr.module_bytes.tolist(),
                    "memory_bytes": pr.module_memory_bytes.tolist(), "cycles_per_sample": pr.module_cycles.tolist()},
        "edges": {"id": list(pr.edge_ids), "bandwidth_hz": pr.edge_bandwidth_hz.tolist()},
        "devices": devices,
        "d2d_links": {"src": [pr.device_ids[i] for i in pr.d2d_src.tolist()],
                      "dst": [pr.device_ids[i] for i in pr.d2d_dst.tolist()], "rate_bps": pr.d2d_rate_bps.tolist()},
    }
    if layout == "records":
        tables = {key: [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]
                  for key, cols in tables.items()}
    return {
        "noise_w_per_hz": pr.noise_w_per_hz, "gamma": pr.gamma, "lambda": pr.lam,
        "relay_aggregates": pr.relay_aggregates, "kappa": pr.kappa, "relay_capacity": pr.relay_capacity,
        **({"tree_aggregation": True} if pr.tree_aggregation else {}), **tables,
    }


def row_names(matrix: np.ndarray, names: tuple[str, ...]) -> list[list[str]]:
    """Per row of a bool matrix, the names of its True columns (worked out once per distinct row)."""
    m = matrix.shape[1]
    if m <= 62:
        codes = matrix.astype(np.int64) @ (np.int64(1) << np.arange(m, dtype=np.int64))
        uniq, row = np.unique(codes, return_inverse=True)
        lists = [[names[k] for k in range(m) if (c >> k) & 1] for c in uniq.tolist()]
    else:
        patterns, row = np.unique(matrix, axis=0, return_inverse=True)
        lists = [[names[k] for k in np.flatnonzero(pat)] for pat in patterns]
    return [list(lists[j]) for j in row.ravel().tolist()]
