"""Path loss, Rayleigh fading, noise and Shannon rates; one channel draw per round.

gain = beta0 * (d / d0)^-alpha * |h|^2 with |h|^2 ~ Exp(1) (Rayleigh), and the rate of a bandwidth
share b at power p is r = b * log2(1 + p * gain / (N0 * b)), concave and increasing in b.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hffm.lazy import LazyModule
from hffm.network.config import ChannelConfig
from hffm.network.topology import Topology

if TYPE_CHECKING:
    import scipy.sparse as sp
else:  # a config error builds no topology: it need not load scipy
    sp = LazyModule("scipy.sparse")


def path_gain(distance_m: np.ndarray | float, beta0_db: float, exponent: float, d0_m: float = 1.0) -> np.ndarray:
    """Linear large-scale gain beta0 * (d / d0)^-alpha, with d clipped to >= d0 (no gain above beta0)."""
    d = np.maximum(np.asarray(distance_m, dtype=float), d0_m)
    return 10.0 ** (beta0_db / 10.0) * (d / d0_m) ** (-exponent)


def rayleigh_fading(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    """Power gain |h|^2 of Rayleigh fading: exponential with mean 1."""
    return rng.exponential(1.0, size=shape)


def noise_w_per_hz(dbm_per_hz: float) -> float:
    """Noise spectral density in W/Hz from dBm/Hz (-174 dBm/Hz -> 3.98e-21 W/Hz)."""
    return float(10.0 ** ((dbm_per_hz - 30.0) / 10.0))


def shannon_rate(
    bandwidth_hz: np.ndarray | float, power_w: np.ndarray | float, gain: np.ndarray | float, n0_w_per_hz: float
) -> np.ndarray:
    """Rate in bit/s: b * log2(1 + p g / (N0 b)); exactly 0 where b = 0. Arrays broadcast."""
    b = np.asarray(bandwidth_hz, dtype=float)
    if np.any(b < 0):
        raise ValueError("shannon_rate: bandwidth_hz must be >= 0")
    if not n0_w_per_hz > 0:
        raise ValueError(f"shannon_rate: n0_w_per_hz must be > 0, got {n0_w_per_hz!r}")
    p = np.asarray(power_w, dtype=float)
    g = np.asarray(gain, dtype=float)
    safe_b = np.where(b > 0, b, 1.0)
    rate = safe_b * np.log2(1.0 + p * g / (n0_w_per_hz * safe_b))
    return np.where(b > 0, rate, 0.0)


@dataclass(frozen=True, eq=False)
class ChannelState:
    """One round's channel. uplink_gain [N] device -> own edge; link_gain [L] and link_rate [L] per
    D2D link of ``topology`` (reciprocal: one value for both directions), the rate in bit/s on the
    configured D2D band; n0_w_per_hz is the effective noise density (noise_bandwidth_scale applied).
    O(devices + links): ask for a pair with ``d2d_rate_of`` / ``d2d_gain_of``."""

    topology: Topology
    uplink_gain: np.ndarray
    link_gain: np.ndarray
    link_rate: np.ndarray
    n0_w_per_hz: float
    device_tx_power_w: float

    @property
    def num_devices(self) -> int:
        return int(self.uplink_gain.shape[0])

    def d2d_rate_of(self, i: int, j: int) -> float:
        """Rate (bit/s) of the D2D link between devices i and j this round; 0.0 when they are not linked."""
        k = self.topology.link_index(i, j)
        return float(self.link_rate[k]) if k >= 0 else 0.0

    def d2d_gain_of(self, i: int, j: int) -> float:
        """Gain of the D2D link between devices i and j this round; 0.0 when they are not linked."""
        k = self.topology.link_index(i, j)
        return float(self.link_gain[k]) if k >= 0 else 0.0

    def rate_matrix(self) -> sp.csr_array:
        """This round's D2D rates as a symmetric sparse [N, N] matrix (no entry where there is no link)."""
        t = self.topology
        n = t.num_devices
        return sp.csr_array((self.link_rate[t.nbr_link], t.nbr, t.indptr), shape=(n, n))

    def regrouped(self, topology: Topology, kept_links: np.ndarray, uplink_gain: np.ndarray) -> ChannelState:
        """This draw on a regrouped topology (``Topology.regrouped``): the kept links' values, new uplink gains."""
        gains = np.array(uplink_gain, dtype=float)
        link_gain, link_rate = self.link_gain[kept_links], self.link_rate[kept_links]
        for a in (gains, link_gain, link_rate):
            a.setflags(write=False)
        return dataclasses.replace(self, topology=topology, uplink_gain=gains, link_gain=link_gain,
                                   link_rate=link_rate)

    def uplink_rate_at(self, bandwidth_hz: np.ndarray | float, power_w: np.ndarray | None = None) -> np.ndarray:
        """[N] uplink rates (bit/s) for a bandwidth per device (scalar or [N]) at a power per device ([N];
        None: the configured device_tx_power_w)."""
        power = self.device_tx_power_w if power_w is None else power_w
        return shannon_rate(bandwidth_hz, power, self.uplink_gain, self.n0_w_per_hz)

    def uplink_snr_db(self, bandwidth_hz: float) -> np.ndarray:
        """[N] received uplink SNR in dB over the given band."""
        return 10.0 * np.log10(self.device_tx_power_w * self.uplink_gain / (self.n0_w_per_hz * bandwidth_hz))


def draw_channel(topology: Topology, cfg: ChannelConfig, rng: np.random.Generator) -> ChannelState:
    """Draw this round's fading and compute gains and D2D rates. Call once per round with that
    round's rng: fading changes, positions do not.

    With Rayleigh fading the draws are N uplink values, then one value per D2D link in link order:
    O(devices + links) numbers, the same for the same rng state.
    """
    n = topology.num_devices
    up = path_gain(topology.edge_dist, cfg.beta0_db, cfg.path_loss_exponent, cfg.d0_m)
    d2d = path_gain(topology.link_dist, cfg.beta0_db, cfg.path_loss_exponent, cfg.d0_m)
    if cfg.fading == "rayleigh":
        up = up * rayleigh_fading(rng, n)
        d2d = d2d * rayleigh_fading(rng, topology.num_links)
    n0 = noise_w_per_hz(cfg.noise_dbm_per_hz) * cfg.noise_bandwidth_scale
    rate = shannon_rate(cfg.d2d_bandwidth_hz, cfg.d2d_tx_power_w, d2d, n0)
    for a in (up, d2d, rate):
        a.setflags(write=False)
    return ChannelState(topology, up, d2d, rate, n0, cfg.device_tx_power_w)
