"""Path loss, Rayleigh fading, noise and Shannon rates; one channel draw per round.

gain = beta0 * (d / d0)^-alpha * |h|^2 with |h|^2 ~ Exp(1) (Rayleigh), and the rate of a bandwidth
share b at power p is r = b * log2(1 + p * gain / (N0 * b)), concave and increasing in b.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hffm.network.config import ChannelConfig
from hffm.network.topology import Topology


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
    """One round's channel. uplink_gain [N] device -> own edge; d2d_gain [N, N] symmetric (reciprocal
    links), 0 where there is no D2D link; d2d_rate [N, N] bit/s on the configured D2D band, 0 where
    there is no link; n0_w_per_hz is the effective noise density (noise_bandwidth_scale applied)."""

    uplink_gain: np.ndarray
    d2d_gain: np.ndarray
    d2d_rate: np.ndarray
    n0_w_per_hz: float
    device_tx_power_w: float

    @property
    def num_devices(self) -> int:
        return int(self.uplink_gain.shape[0])

    def uplink_rate_at(self, bandwidth_hz: np.ndarray | float) -> np.ndarray:
        """[N] uplink rates (bit/s) for a bandwidth per device (scalar or [N])."""
        return shannon_rate(bandwidth_hz, self.device_tx_power_w, self.uplink_gain, self.n0_w_per_hz)

    def uplink_snr_db(self, bandwidth_hz: float) -> np.ndarray:
        """[N] received uplink SNR in dB over the given band."""
        return 10.0 * np.log10(self.device_tx_power_w * self.uplink_gain / (self.n0_w_per_hz * bandwidth_hz))


def draw_channel(topology: Topology, cfg: ChannelConfig, rng: np.random.Generator) -> ChannelState:
    """Draw this round's fading and compute gains and D2D rates. Call once per round with that
    round's rng: fading changes, positions do not."""
    n = topology.num_devices
    up = path_gain(topology.edge_dist, cfg.beta0_db, cfg.path_loss_exponent, cfg.d0_m)
    d2d = path_gain(topology.d2d_dist, cfg.beta0_db, cfg.path_loss_exponent, cfg.d0_m)
    if cfg.fading == "rayleigh":
        up = up * rayleigh_fading(rng, n)
        h = rayleigh_fading(rng, (n, n))
        h = np.triu(h, 1)
        d2d = d2d * (h + h.T)
    d2d = np.where(topology.d2d_adj, d2d, 0.0)
    n0 = noise_w_per_hz(cfg.noise_dbm_per_hz) * cfg.noise_bandwidth_scale
    rate = np.where(topology.d2d_adj, shannon_rate(cfg.d2d_bandwidth_hz, cfg.d2d_tx_power_w, d2d, n0), 0.0)
    for a in (up, d2d, rate):
        a.setflags(write=False)
    return ChannelState(up, d2d, rate, n0, cfg.device_tx_power_w)
