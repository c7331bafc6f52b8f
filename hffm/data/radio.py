"""Radio I/Q synthesis for the M3T benchmark: pulse-shaped digital modulations through a noisy channel.

Each burst: random symbols of one constellation, root-raised-cosine pulse shaping, a random timing
offset, carrier phase and carrier frequency offset, complex AWGN at the sample's SNR, then an AGC that
scales the received burst to unit RMS (so the SNR cannot be read off the raw power). All
constellations have zero mean and, under a random phase, no linear feature of the raw samples tells
them apart: a linear probe sits near chance while a small 1-D CNN learns higher-order statistics.
"""

from __future__ import annotations

import numpy as np

MODULATION_NAMES: tuple[str, ...] = ("BPSK", "QPSK", "8PSK", "16QAM", "4PAM", "64QAM")


def constellation(name: str) -> np.ndarray:
    """Unit-average-power complex constellation points of a modulation."""
    if name.endswith("PSK"):
        m = {"BPSK": 2, "QPSK": 4, "8PSK": 8}[name]
        pts = np.exp(2j * np.pi * np.arange(m) / m + (1j * np.pi / 4 if m == 4 else 0))
    elif name.endswith("QAM"):
        k = int(round(np.sqrt(int(name[:-3]))))
        lv = np.arange(-(k - 1), k, 2, dtype=float)
        pts = (lv[:, None] + 1j * lv[None, :]).reshape(-1)
    elif name == "4PAM":
        pts = np.array([-3, -1, 1, 3], dtype=complex)
    else:
        raise ValueError(f"unknown modulation {name!r}; known: {MODULATION_NAMES}")
    return (pts / np.sqrt(np.mean(np.abs(pts) ** 2))).astype(np.complex128)


def rrc_taps(beta: float, sps: int, span: int) -> np.ndarray:
    """Root-raised-cosine filter taps (unit energy), ``span`` symbols long at ``sps`` samples/symbol."""
    t = np.arange(-span * sps / 2, span * sps / 2 + 1) / sps
    h = np.empty_like(t)
    for i, ti in enumerate(t):
        if abs(ti) < 1e-9:
            h[i] = 1.0 + beta * (4 / np.pi - 1)
        elif beta > 0 and abs(abs(ti) - 1 / (4 * beta)) < 1e-9:
            h[i] = beta / np.sqrt(2) * ((1 + 2 / np.pi) * np.sin(np.pi / (4 * beta))
                                        + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta)))
        else:
            h[i] = (np.sin(np.pi * ti * (1 - beta)) + 4 * beta * ti * np.cos(np.pi * ti * (1 + beta))) / (
                np.pi * ti * (1 - (4 * beta * ti) ** 2))
    return h / np.sqrt(np.sum(h ** 2))


CHUNK_SAMPLES = 4096
"""Bursts shaped at once: the complex128 temporaries stay about 15 kB a sample times this."""


def synth_iq(
    modulations: np.ndarray,
    snr_db: np.ndarray,
    length: int,
    rng: np.random.Generator,
    sps: int,
    rolloff: float,
    max_cfo: float,
    chunk: int = CHUNK_SAMPLES,
) -> np.ndarray:
    """``(N, 2, length)`` float32 I/Q bursts for modulation ids ``modulations`` at ``snr_db`` (dB, per sample).

    ``max_cfo`` is the largest carrier frequency offset in cycles per sample (drawn uniformly in
    +-max_cfo); SNR is signal power over noise power in the full sampled band.

    The stream: the symbols of every sample of each modulation in turn, the timing offsets, phases and
    CFOs, then the in-phase noise of all samples and the quadrature noise of all samples. Bursts are
    made ``chunk`` samples at a time from the same numbers (a second generator reads the quadrature
    noise where the in-phase noise ends), so memory stays bounded and the output does not depend on it.
    """
    from scipy.signal import fftconvolve  # here, not at import: scipy.signal costs about 1 s of start-up

    n = len(modulations)
    chunk = int(chunk)
    span = 8
    taps = rrc_taps(rolloff, sps, span)
    nsym = length // sps + span + 2
    symbol_ids = np.empty((n, nsym), dtype=np.uint8)  # constellation index of each symbol (<= 64 points)
    for mod in np.unique(modulations):
        pts = constellation(MODULATION_NAMES[int(mod)])
        rows = np.flatnonzero(modulations == mod)
        for lo in range(0, len(rows), chunk):
            part = rows[lo:lo + chunk]
            symbol_ids[part] = rng.integers(0, len(pts), (len(part), nsym))
    start = span * sps + rng.integers(0, sps, n)  # past the filter transient, random timing offset
    phase = rng.uniform(0, 2 * np.pi, n)
    cfo = rng.uniform(-max_cfo, max_cfo, n)
    in_phase = np.random.Generator(type(rng.bit_generator)())
    in_phase.bit_generator.state = rng.bit_generator.state
    for lo in range(0, n, chunk):  # move rng past the in-phase noise: it then reads the quadrature noise
        rng.standard_normal((min(n, lo + chunk) - lo, length))
    tables = {int(m): constellation(MODULATION_NAMES[int(m)]) for m in np.unique(modulations)}
    out = np.empty((n, 2, length), dtype=np.float32)
    t = np.arange(length)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        m = sl.stop - sl.start
        symbols = np.empty((m, nsym), dtype=np.complex128)
        for mod, pts in tables.items():
            sel = modulations[sl] == mod
            symbols[sel] = pts[symbol_ids[sl][sel]]
        up = np.zeros((m, nsym * sps), dtype=np.complex128)
        up[:, ::sps] = symbols
        shaped = fftconvolve(up, taps[None, :], axes=1)
        rows = start[sl, None] + t[None, :]
        sig = np.take_along_axis(shaped, rows, axis=1)
        sig /= np.sqrt(np.mean(np.abs(sig) ** 2, axis=1, keepdims=True))
        sig *= np.exp(1j * (phase[sl, None] + 2 * np.pi * cfo[sl, None] * t[None, :]))
        noise_std = np.sqrt(10.0 ** (-np.asarray(snr_db[sl]) / 10.0) / 2.0)[:, None]
        sig = sig + noise_std * (in_phase.standard_normal((m, length)) + 1j * rng.standard_normal((m, length)))
        sig /= np.sqrt(np.mean(np.abs(sig) ** 2, axis=1, keepdims=True))  # AGC
        out[sl, 0] = sig.real
        out[sl, 1] = sig.imag
    return out
