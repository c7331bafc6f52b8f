"""Local computation: cycles, time cycles / f and energy kappa * cycles * f^2 (dynamic CPU power)."""

from __future__ import annotations

import numpy as np

from hffm.network.config import ComputeConfig


def module_cycles(
    num_params: np.ndarray | float, samples: np.ndarray | float, cycles_per_sample_per_param: float
) -> np.ndarray:
    """Cycles to train a module of num_params parameters on `samples` samples."""
    p = np.asarray(num_params, dtype=float)
    s = np.asarray(samples, dtype=float)
    if np.any(p < 0) or np.any(s < 0) or cycles_per_sample_per_param < 0:
        raise ValueError("module_cycles: num_params, samples and cycles_per_sample_per_param must be >= 0")
    return cycles_per_sample_per_param * p * s


def compute_time(cycles: np.ndarray | float, cpu_hz: np.ndarray | float) -> np.ndarray:
    """Seconds to run `cycles` at frequency cpu_hz."""
    c = np.asarray(cycles, dtype=float)
    f = np.asarray(cpu_hz, dtype=float)
    if np.any(c < 0):
        raise ValueError("compute_time: cycles must be >= 0")
    if np.any(f <= 0):
        raise ValueError("compute_time: cpu_hz must be > 0")
    return c / f


def compute_energy(cycles: np.ndarray | float, cpu_hz: np.ndarray | float, kappa: float) -> np.ndarray:
    """Joules of running `cycles` at cpu_hz: kappa * cycles * f^2 (kappa in J per cycle per Hz^2)."""
    c = np.asarray(cycles, dtype=float)
    f = np.asarray(cpu_hz, dtype=float)
    if np.any(c < 0) or np.any(f <= 0) or kappa < 0:
        raise ValueError("compute_energy: need cycles >= 0, cpu_hz > 0, kappa >= 0")
    return kappa * c * f**2


def draw_cpu_hz(cfg: ComputeConfig, num_devices: int, rng: np.random.Generator) -> np.ndarray:
    """[N] CPU frequency per device, uniform in cfg.cpu_hz_range; draw once per run (hardware is fixed)."""
    lo, hi = cfg.cpu_hz_range
    return rng.uniform(lo, hi, size=num_devices) if hi > lo else np.full(num_devices, lo)
