"""One round's optimization problem (`RoundProblem`): plain numpy arrays, JSON in and out, validation.

Devices, edges and modules are indexed internally 0..N-1, 0..E-1, 0..M-1; the JSON keeps the ids and
names as given. Every bad input raises ValueError naming the offending field, so a user editing an
instance file by hand sees what to fix.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solvers.fields import check_number
from solvers.instance_checks import as_array, check_levels, check_magnitudes
from solvers.instance_io import read_instance, write_instance

MAX_LAMBDA = 1e6
"""lambda (s/J) above this leaves latency below the solvers' numerical precision; 1e6 already minimises energy."""


@dataclass(frozen=True, eq=False)
class RoundProblem:
    """The symbols of one round (SI units). See solvers/README.md for the math."""

    device_ids: tuple
    edge_ids: tuple
    module_names: tuple[str, ...]
    device_edge: np.ndarray  # int [N]: edge index e(i)
    samples: np.ndarray  # float [N]: n_i
    cpu_hz: np.ndarray  # float [N]: f_i
    memory_bytes: np.ndarray  # float [N]: M_i
    tx_power_w: np.ndarray  # float [N]: p_i (uplink)
    uplink_gain: np.ndarray  # float [N]: g_i (path loss x fading)
    d2d_power_w: np.ndarray  # float [N]: power charged for D2D energy
    eligible: np.ndarray  # bool [N, M]: m in A_i
    module_bytes: np.ndarray  # float [M]: s_m
    module_memory_bytes: np.ndarray  # float [M]: mem_m
    module_cycles: np.ndarray  # float [M]: c_m, cycles per sample
    edge_bandwidth_hz: np.ndarray  # float [E]: B_e
    d2d_src: np.ndarray  # int [L]
    d2d_dst: np.ndarray  # int [L]
    d2d_rate_bps: np.ndarray  # float [L]: r_ij (directed, src -> dst)
    noise_w_per_hz: float
    gamma: float = 0.5
    lam: float = 0.0
    relay_aggregates: bool = False
    kappa: float = 1e-28
    relay_capacity: int | None = None
    p_max: np.ndarray | None = None  # float [N]: uplink power is a decision in (0, p_max] (None: fixed tx_power_w)
    f_min: np.ndarray | None = None  # float [N]: CPU frequency is a decision in [f_min, f_max] (None: cpu_hz)
    f_max: np.ndarray | None = None  # float [N] (None: fixed cpu_hz)
    tree_aggregation: bool = False  # the round merges updates up one D2D tree per edge (solvers/tree.py)
    # Compression levels (solvers/levels.py): each device sends its payload at one level, a bytes factor and a
    # distortion; the joint method chooses them. None: every payload goes at full size.
    level_names: tuple[str, ...] = ()  # [L] names of the levels offered
    level_factor: np.ndarray | None = None  # float [L]: payload bytes at this level / full bytes, in (0, inf)
    level_distortion: np.ndarray | None = None  # float [L] >= 0: distortion one sending device adds at this level
    distortion_budget: float | None = None  # most summed distortion over the sending devices (None: no budget)
    distortion_penalty: float = 0.0  # seconds of objective per unit of summed distortion
    level: np.ndarray | None = None  # int [N]: levels already chosen (with_levels); None: full size, no distortion

    def __post_init__(self) -> None:
        n, e, m = len(self.device_ids), len(self.edge_ids), len(self.module_names)
        if n < 1 or e < 1 or m < 1:
            raise ValueError(f"devices, edges, modules: need at least one of each, got {n}, {e}, {m}")
        for label, ids in (("devices.id", self.device_ids), ("edges.id", self.edge_ids),
                           ("modules.name", self.module_names)):
            if len(set(ids)) != len(ids):
                raise ValueError(f"{label}: duplicate values")
        set_ = object.__setattr__
        set_(self, "device_edge", as_array("devices.edge", self.device_edge, int, (n,)))
        if np.any(self.device_edge < 0) or np.any(self.device_edge >= e):
            raise ValueError("devices.edge: edge index out of range")
        for name in ("samples", "cpu_hz", "memory_bytes", "tx_power_w", "uplink_gain", "d2d_power_w"):
            set_(self, name, as_array(f"devices.{name}", getattr(self, name), float, (n,)))
        for name in ("cpu_hz", "tx_power_w", "uplink_gain"):
            if np.any(getattr(self, name) <= 0):
                raise ValueError(f"devices.{name}: must be > 0 for every device")
        for name in ("samples", "memory_bytes", "d2d_power_w"):
            if np.any(getattr(self, name) < 0):
                raise ValueError(f"devices.{name}: must be >= 0 for every device")
        set_(self, "eligible", as_array("devices.modules", self.eligible, bool, (n, m)))
        for name in ("module_bytes", "module_memory_bytes", "module_cycles"):
            set_(self, name, as_array(f"modules.{name}", getattr(self, name), float, (m,)))
            if np.any(getattr(self, name) < 0):
                raise ValueError(f"modules.{name}: must be >= 0")
        set_(self, "edge_bandwidth_hz", as_array("edges.bandwidth_hz", self.edge_bandwidth_hz, float, (e,)))
        if np.any(self.edge_bandwidth_hz <= 0):
            raise ValueError("edges.bandwidth_hz: must be > 0 for every edge")
        num_links = len(np.asarray(self.d2d_src))
        set_(self, "d2d_src", as_array("d2d_links.src", self.d2d_src, int, (num_links,)))
        set_(self, "d2d_dst", as_array("d2d_links.dst", self.d2d_dst, int, (num_links,)))
        set_(self, "d2d_rate_bps", as_array("d2d_links.rate_bps", self.d2d_rate_bps, float, (num_links,)))
        if num_links:
            if np.any((self.d2d_src < 0) | (self.d2d_src >= n) | (self.d2d_dst < 0) | (self.d2d_dst >= n)):
                raise ValueError("d2d_links: device index out of range")
            if np.any(self.d2d_src == self.d2d_dst):
                raise ValueError("d2d_links: a link from a device to itself")
            if np.any(self.d2d_rate_bps <= 0):
                raise ValueError("d2d_links.rate_bps: must be > 0")
            bad = np.flatnonzero(self.device_edge[self.d2d_src] != self.device_edge[self.d2d_dst])
            if bad.size:
                k = int(bad[0])
                raise ValueError(
                    f"d2d_links[{k}]: src {self.device_ids[self.d2d_src[k]]!r} and dst "
                    f"{self.device_ids[self.d2d_dst[k]]!r} are attached to different edges; a relay must be "
                    "in the same cluster")
            keys = self.d2d_src.astype(np.int64) * n + self.d2d_dst
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            set_(self, "_link_key", keys)  # sorted (src, dst) keys for link_rate
            set_(self, "_link_order", order)
            if np.any(keys[1:] == keys[:-1]):
                raise ValueError("d2d_links: duplicate (src, dst) link")
        for name, label, positive in (("noise_w_per_hz", "noise_w_per_hz", True), ("kappa", "kappa", False),
                                      ("lam", "lambda", False)):
            check_number(getattr(self, name), label, positive=positive)
        if not (isinstance(self.gamma, int | float) and 0 <= self.gamma <= 1):
            raise ValueError(f"gamma: must be in [0, 1], got {self.gamma!r}")
        cap = self.relay_capacity
        if cap is not None and (not isinstance(cap, int | np.integer) or isinstance(cap, bool) or cap < 0):
            raise ValueError(f"relay_capacity: must be null or an integer >= 0, got {self.relay_capacity!r}")
        if self.lam > MAX_LAMBDA:
            raise ValueError(f"lambda: must be <= {MAX_LAMBDA:g} s/J, got {self.lam!r} (larger values only lose the "
                             "latency term to rounding: the plan already minimises energy)")
        check_magnitudes(self)

        for name, label in (("p_max", "devices.p_max"), ("f_min", "devices.f_min"), ("f_max", "devices.f_max")):
            if getattr(self, name) is not None:
                set_(self, name, as_array(label, getattr(self, name), float, (n,)))
                if np.any(getattr(self, name) <= 0):
                    raise ValueError(f"{label}: must be > 0 for every device")
        check_levels(self)
        ids = self.device_ids
        for label, low, low_name, high, high_name in (
            ("devices.p_max", self.tx_power_w, "tx_power_w (the nominal power)", self.power_max, "p_max"),
            ("devices.f_min", self.freq_min, "f_min", self.freq_max if self.f_min is not None and self.f_max is not None
             else np.full(n, np.inf), "f_max"),
            ("devices.f_min", self.freq_min, "f_min", self.cpu_hz, "cpu_hz (the nominal frequency)"),
            ("devices.f_max", self.cpu_hz, "cpu_hz (the nominal frequency)", self.freq_max, "f_max"),
        ):
            bad = np.flatnonzero(low > high * (1 + 1e-12))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"{label}: device {ids[i]!r} has {low_name.split()[0]} = {low[i]:g} > "
                                 f"{high_name.split()[0]} = {high[i]:g}; need {low_name} <= {high_name} "
                                 f"(the range must hold the nominal value)")

    # ---- derived quantities -------------------------------------------------------------------
    @property
    def power_max(self) -> np.ndarray:
        """Largest uplink power per device (p_max, else the fixed tx_power_w)."""
        return self.tx_power_w if self.p_max is None else self.p_max

    @property
    def freq_max(self) -> np.ndarray:
        return self.cpu_hz if self.f_max is None else self.f_max

    @property
    def freq_min(self) -> np.ndarray:
        return self.cpu_hz if self.f_min is None else self.f_min

    @property
    def has_power_frequency(self) -> bool:
        """Whether power or frequency are decisions (any of p_max, f_min, f_max given)."""
        return any(v is not None for v in (self.p_max, self.f_min, self.f_max))

    @property
    def offers_levels(self) -> bool:
        """Compression levels are offered and not chosen yet: the level per device is a decision."""
        return self.level_factor is not None and self.level is None

    @property
    def byte_factor(self) -> np.ndarray:
        """[N] each device's payload bytes / full bytes (1 until levels are chosen)."""
        if self.level is None or self.level_factor is None:
            return np.ones(self.num_devices)
        return self.level_factor[self.level]

    def distortion(self, x: np.ndarray) -> float:
        """Summed distortion of the chosen levels over the devices that send something under placement x."""
        if self.level is None or self.level_distortion is None:
            return 0.0
        sends = (np.asarray(x, dtype=float) @ self.module_bytes) > 0
        return float(self.level_distortion[self.level][sends].sum())

    def with_levels(self, level: np.ndarray | None) -> RoundProblem:
        """The same round with each device's level fixed (None: full size): what evaluate and check_plan cost."""
        import dataclasses

        return dataclasses.replace(self, level=None if level is None else np.asarray(level, dtype=int))

    def relaxed(self) -> RoundProblem:
        """Every payload at the smallest factor offered, no distortion counted: no plan of this round costs less
        in latency or energy, so its lower bounds hold here (solvers/levels.py)."""
        import dataclasses

        if self.level_factor is None:
            return self
        least = float(min(1.0, self.level_factor.min()))
        return dataclasses.replace(self, module_bytes=self.module_bytes * least, level_names=(), level_factor=None,
                                   level_distortion=None, distortion_budget=None, distortion_penalty=0.0, level=None)

    @property
    def num_devices(self) -> int:
        return len(self.device_ids)

    @property
    def num_edges(self) -> int:
        return len(self.edge_ids)

    @property
    def num_modules(self) -> int:
        return len(self.module_names)

    @property
    def snr_hz(self) -> np.ndarray:
        """a_i = p_i g_i / N0 (Hz): R_i(b) = b log2(1 + a_i / b)."""
        return self.tx_power_w * self.uplink_gain / self.noise_w_per_hz

    def d2d_matrix(self) -> Any:
        """Sparse [N, N] D2D rates (0 where no link), a scipy CSR matrix (imported here: start-up stays light)."""
        import scipy.sparse as sp

        n = self.num_devices
        return sp.csr_matrix((self.d2d_rate_bps, (self.d2d_src, self.d2d_dst)), shape=(n, n))

    def link_rate(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """D2D rate of each link src -> dst (0 where there is none), by binary search over the sorted links."""
        want = np.asarray(src, dtype=np.int64) * self.num_devices + np.asarray(dst, dtype=np.int64)
        keys: np.ndarray | None = self.__dict__.get("_link_key")
        if keys is None or keys.size == 0:
            return np.zeros(want.shape)
        pos = np.minimum(np.searchsorted(keys, want), keys.size - 1)
        return np.where(keys[pos] == want, self.d2d_rate_bps[self.__dict__["_link_order"][pos]], 0.0)

    def coverage_demand(self) -> np.ndarray:
        """[E, M]: gamma x samples of the eligible devices of each edge, per module."""
        d = np.zeros((self.num_edges, self.num_modules))
        np.add.at(d, self.device_edge, self.eligible * self.samples[:, None])
        return self.gamma * d

    def edge_devices(self, e: int) -> np.ndarray:
        return np.flatnonzero(self.device_edge == e)

    # ---- JSON (layouts and validation: solvers/instance_io.py) ---------------------------------
    def to_dict(self, layout: str = "columns") -> dict[str, Any]:
        """The JSON structure, "columns" (one list per field) or "records" (one object per device, edge, ...)."""
        return write_instance(self, layout)

    @classmethod
    def from_dict(cls, data: Any) -> RoundProblem:
        """Build and validate from the JSON structure of solvers/schema/instance.schema.json (either layout)."""
        return cls(**read_instance(data))

    def save(self, path: str | Path, layout: str = "columns") -> None:
        """Write the JSON (columns: compact, one line; records: indented, for reading by hand)."""
        with paused_gc():
            Path(path).write_text(json.dumps(self.to_dict(layout), indent=1 if layout == "records" else None))

    @classmethod
    def load(cls, path: str | Path) -> RoundProblem:
        with paused_gc():
            try:
                data = json.loads(Path(path).read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON ({exc})") from exc
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: not a UTF-8 text file ({exc})") from exc
            return cls.from_dict(data)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of JSON objects are made and dropped: every collection
    would walk all of them (half the time of reading a 100,000-device file). Reference counting still frees them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
