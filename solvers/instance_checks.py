"""Validation of a `RoundProblem` beyond one field at a time: the compression offer, and magnitudes every formula
can reach (a value far outside any real network would overflow a latency into a wrong number)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from solvers.fields import check_number

if TYPE_CHECKING:
    from solvers.instance import RoundProblem

LIMIT = 1e30
"""Derived quantities (seconds, joules, bits, p g / (N0 B)) must lie in [1 / LIMIT, LIMIT] where they are not 0:
far beyond any real network, and far enough from float64's range (1e308) that no formula overflows into a wrong
latency. An instance outside is refused, naming its fields."""


def as_array(name: str, value: Any, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only array of the given shape, finite if float; a ValueError naming the field otherwise."""
    a: np.ndarray = np.asarray(value, dtype=dtype)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if dtype is float and not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: all values must be finite")
    a = a.copy()
    a.setflags(write=False)
    return a


def check_levels(pr: RoundProblem) -> None:
    """The compression offer: levels named once, factors > 0, distortions >= 0, a budget some choice meets."""
    set_ = object.__setattr__
    given = [pr.level_factor is not None, pr.level_distortion is not None, bool(pr.level_names)]
    if not any(given):
        if pr.distortion_budget is not None or pr.distortion_penalty or pr.level is not None:
            raise ValueError("levels: distortion_budget, distortion_penalty or level set without levels offered; "
                             "give levels (name, factor, distortion) or leave them unset")
        return
    if not all(given):
        raise ValueError("levels: give level_names, level_factor and level_distortion together")
    n_levels = len(pr.level_names)
    if len(set(pr.level_names)) != n_levels:
        raise ValueError("levels.name: duplicate values")
    set_(pr, "level_names", tuple(str(v) for v in pr.level_names))
    factor = as_array("levels.factor", pr.level_factor, float, (n_levels,))
    distortion = as_array("levels.distortion", pr.level_distortion, float, (n_levels,))
    set_(pr, "level_factor", factor)
    set_(pr, "level_distortion", distortion)
    if np.any(factor <= 0):
        raise ValueError("levels.factor: must be > 0 for every level (payload bytes / full bytes)")
    if np.any(distortion < 0):
        raise ValueError("levels.distortion: must be >= 0 for every level")
    check_number(pr.distortion_penalty, "distortion_penalty")
    if pr.distortion_budget is not None:
        check_number(pr.distortion_budget, "distortion_budget")
        least = pr.num_devices * float(distortion.min())
        if pr.distortion_budget < least:
            raise ValueError(f"distortion_budget: {pr.distortion_budget:g} is below {least:g}, the least summed "
                             "distortion (every device at its least distorting level); raise it or offer a level "
                             "with less distortion")
    if pr.tree_aggregation or pr.has_power_frequency:
        raise ValueError("levels: compression levels are planned for one-hop rounds at fixed power and frequency; "
                         "with tree_aggregation or p_max / f_min / f_max offer no levels")
    if pr.level is not None:
        set_(pr, "level", as_array("level", pr.level, int, (pr.num_devices,)))
        if np.any((pr.level < 0) | (pr.level >= n_levels)):
            raise ValueError(f"level: every entry must be a level index in [0, {n_levels})")


def check_magnitudes(pr: RoundProblem) -> None:
    """Refuse inputs whose times, energies, bits or SNR-to-bandwidth ratios leave [1 / LIMIT, LIMIT] (see LIMIT).

    Bounds the worst case each formula can reach (every eligible module placed, every byte of a cluster sent
    by one uploader at its edge's whole bandwidth, over each D2D link), so any plan's cost stays exact.
    """

    def refuse(what: str, value: float, fields: str) -> None:
        raise ValueError(f"{fields}: {what} = {value:.3g} is outside [{1 / LIMIT:g}, {LIMIT:g}]; "
                         "check these values and their units (SI: Hz, W, bytes, cycles)")

    def out(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return ~np.isfinite(x) | (x > LIMIT) | ((x != 0) & (np.abs(x) < 1 / LIMIT))

    with np.errstate(all="ignore"):
        cycles = pr.samples * (pr.eligible.astype(float) @ pr.module_cycles)
        for what, x, fields in (
            ("compute time samples x cycles_per_sample / cpu_hz (s)", cycles / pr.cpu_hz,
             "devices[{i}].samples, devices[{i}].cpu_hz or modules[*].cycles_per_sample"),
            ("compute energy kappa x cycles x cpu_hz^2 (J)", pr.kappa * cycles * pr.cpu_hz ** 2,
             "kappa, devices[{i}].cpu_hz, devices[{i}].samples or modules[*].cycles_per_sample"),
        ):
            bad = np.flatnonzero(out(x))
            if bad.size:
                i = int(bad[0])
                refuse(f"device {pr.device_ids[i]!r}'s {what}", float(x[i]), fields.format(i=i))
        total_bits = 8.0 * float(np.sum(pr.module_bytes))
        if out(np.array([total_bits]))[0]:
            refuse("8 x the sum of modules[*].bytes (bits)", total_bits, "modules[*].bytes")
        bandwidth = pr.edge_bandwidth_hz[pr.device_edge]
        ratio = pr.snr_hz / bandwidth
        rate = bandwidth * np.log1p(ratio) / math.log(2.0)  # the most an uploader can get: its edge's whole band
        cluster_bits = np.zeros(pr.num_edges)
        np.add.at(cluster_bits, pr.device_edge, 8.0 * (pr.eligible.astype(float) @ pr.module_bytes))
        upload = cluster_bits[pr.device_edge] / rate
        for what, x, fields in (
            ("p x g / (N0 x bandwidth)", ratio,
             "edges[{e}].bandwidth_hz, devices[{i}].uplink_gain, devices[{i}].tx_power_w or noise_w_per_hz"),
            ("upload time of its cluster's bits at its edge's whole bandwidth (s)", upload,
             "edges[{e}].bandwidth_hz, devices[{i}].uplink_gain or modules[*].bytes"),
            ("upload energy tx_power_w x that time (J)", pr.tx_power_w * upload,
             "devices[{i}].tx_power_w, edges[{e}].bandwidth_hz or modules[*].bytes"),
        ):
            bad = np.flatnonzero(out(x))
            if bad.size:
                i = int(bad[0])
                refuse(f"device {pr.device_ids[i]!r}'s {what}", float(x[i]),
                       fields.format(i=i, e=int(pr.device_edge[i])))
        if pr.d2d_rate_bps.size:
            bits = 8.0 * (pr.eligible.astype(float) @ pr.module_bytes)[pr.d2d_src]
            hop = bits / pr.d2d_rate_bps
            for what, x in (("D2D time of the source's bits (s)", hop),
                            ("D2D energy d2d_power_w x that time (J)", pr.d2d_power_w[pr.d2d_src] * hop)):
                bad = np.flatnonzero(out(x))
                if bad.size:
                    k = int(bad[0])
                    refuse(f"link {k}'s {what}", float(x[k]),
                           f"d2d_links[{k}].rate_bps, devices[{int(pr.d2d_src[k])}].d2d_power_w or modules[*].bytes")
