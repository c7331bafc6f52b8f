"""Image rendering for the M3T benchmark: a coloured shape on a cluttered, tinted background.

Every shape is a signed distance function in the shape's own unit frame; a random position, scale
and rotation map pixels into that frame, and the distance (in pixels) gives an anti-aliased coverage.
Random placement, a tinted gradient background, specks of clutter and pixel noise keep a linear
probe on raw pixels well below a small CNN on the object task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OBJECT_NAMES: tuple[str, ...] = ("square", "circle", "triangle", "cross", "bars", "ring", "ell", "tee")
COLOR_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
# The colour attribute is the channel pattern of the shape (3 channels: R, G, B).
COLOR_RGB = np.array(
    [
        [1.0, 0.15, 0.15],
        [0.15, 1.0, 0.15],
        [0.15, 0.15, 1.0],
        [1.0, 1.0, 0.15],
        [1.0, 0.15, 1.0],
        [0.15, 1.0, 1.0],
    ],
    dtype=np.float32,
)


def _rect(u: np.ndarray, v: np.ndarray, cu: float, cv: float, hu: float, hv: float) -> np.ndarray:
    """Approximate signed distance of an axis-aligned box (exact near its edges, enough for coverage)."""
    return np.maximum(np.abs(u - cu) - hu, np.abs(v - cv) - hv)


def _polygon(u: np.ndarray, v: np.ndarray, sides: int, inradius: float) -> np.ndarray:
    angles = np.pi / 2 + 2 * np.pi * np.arange(sides) / sides
    d = np.stack([np.cos(a) * u + np.sin(a) * v for a in angles])
    return d.max(axis=0) - inradius


def shape_sdf(obj: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of object class ``obj`` at unit-frame points (u, v)."""
    name = OBJECT_NAMES[obj]
    r = np.sqrt(u * u + v * v)
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.72
    if name == "circle":
        return r - 0.82
    if name == "triangle":
        return _polygon(u, -v, 3, 0.5)
    if name == "cross":
        return np.minimum(_rect(u, v, 0, 0, 0.26, 1.0), _rect(u, v, 0, 0, 1.0, 0.26))
    if name == "bars":
        return np.minimum(_rect(u, v, 0, -0.55, 0.95, 0.22), _rect(u, v, 0, 0.55, 0.95, 0.22))
    if name == "ring":
        return np.abs(r - 0.74) - 0.24
    if name == "ell":
        return np.minimum(_rect(u, v, -0.6, 0.0, 0.26, 0.95), _rect(u, v, 0.0, 0.69, 0.86, 0.26))
    if name == "tee":
        return np.minimum(_rect(u, v, 0.0, -0.69, 0.95, 0.26), _rect(u, v, 0.0, 0.15, 0.26, 0.8))
    raise ValueError(f"unknown object class {obj}")


CHUNK_SAMPLES = 2048
"""Images rendered at once: the temporaries (float64 frames, shape distances, noise) stay about
20 kB a sample times this, whatever the benchmark's size."""


@dataclass(frozen=True)
class _ImageDraws:
    """Every per-image random draw but the pixel noise, in the order the stream gives them."""

    scale: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    theta: np.ndarray
    brightness: np.ndarray
    tint: np.ndarray
    g_angle: np.ndarray
    g_amp: np.ndarray
    specks: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    """``clutter`` times (x, y, rgb value) of a 2x2 speck, drawn in this order."""


def _draw(n: int, size: int, rng: np.random.Generator, background_std: float, clutter: int) -> _ImageDraws:
    scale = rng.uniform(0.25, 0.40, n).astype(np.float32) * size  # pixels per unit
    margin = 0.7 * scale
    cx = rng.uniform(margin, size - margin)
    cy = rng.uniform(margin, size - margin)
    theta = rng.uniform(0, 2 * np.pi, n)
    brightness = rng.uniform(0.7, 1.2, n).astype(np.float32)
    tint = rng.normal(0.0, background_std, (n, 3)).astype(np.float32)
    g_angle = rng.uniform(0, 2 * np.pi, n)
    g_amp = rng.uniform(0, 2 * background_std, n)
    specks = []
    for _ in range(int(clutter)):
        px = rng.integers(0, size - 1, n)
        py = rng.integers(0, size - 1, n)
        specks.append((px, py, rng.uniform(0.0, 0.9, (n, 3)).astype(np.float32)))
    return _ImageDraws(scale, cx, cy, theta, brightness, tint, g_angle, g_amp, tuple(specks))


def _render(objects: np.ndarray, colors: np.ndarray, size: int, d: _ImageDraws, sl: slice) -> np.ndarray:
    """The noiseless images of the samples in ``sl`` (element-wise the same arithmetic for any slicing)."""
    objects = objects[sl]
    n = len(objects)
    coords = np.arange(size, dtype=np.float32) + 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")  # (H, W)
    theta = d.theta[sl]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    dx = xx[None] - d.cx[sl, None, None]
    dy = yy[None] - d.cy[sl, None, None]
    s = d.scale[sl, None, None]
    u = (cos * dx + sin * dy) / s
    v = (-sin * dx + cos * dy) / s
    sdf = np.empty((n, size, size), dtype=np.float32)
    for obj in np.unique(objects):
        sel = objects == obj
        sdf[sel] = shape_sdf(int(obj), u[sel], v[sel])
    coverage = np.clip(0.5 - sdf * s, 0.0, 1.0)  # distance in pixels -> anti-aliased coverage
    fg = COLOR_RGB[colors[sl]] * d.brightness[sl, None]  # (N, 3)
    g_angle = d.g_angle[sl]
    ramp = (np.cos(g_angle)[:, None, None] * (xx[None] / size - 0.5)
            + np.sin(g_angle)[:, None, None] * (yy[None] / size - 0.5)) * d.g_amp[sl, None, None]
    bg = d.tint[sl, :, None, None] + ramp[:, None].astype(np.float32)  # (N, 3, H, W)
    img = bg * (1.0 - coverage[:, None]) + fg[:, :, None, None] * coverage[:, None]
    rows = np.arange(n)
    for px, py, val in d.specks:
        for oy in (0, 1):  # a 2x2 speck
            for ox in (0, 1):
                img[rows, :, py[sl] + oy, px[sl] + ox] = val[sl]
    return img


def render_images(
    objects: np.ndarray,
    colors: np.ndarray,
    size: int,
    rng: np.random.Generator,
    noise_std: float,
    background_std: float,
    clutter: int,
    chunk: int = CHUNK_SAMPLES,
) -> np.ndarray:
    """Render ``(N, 3, size, size)`` float32 images of shape ``objects[i]`` in colour ``colors[i]``.

    Randomness per image: centre (shape kept mostly inside), scale (radius 25-40% of the side),
    rotation, brightness, a tinted linear-gradient background (``background_std``), ``clutter``
    small specks of random colour, and Gaussian pixel noise (``noise_std``). The per-image draws come
    first, then the noise of every pixel in sample order, so rendering ``chunk`` images at a time draws
    the same numbers as rendering all at once.
    """
    n = len(objects)
    draws = _draw(n, size, rng, background_std, clutter)
    out = np.empty((n, 3, size, size), dtype=np.float32)
    for lo in range(0, n, int(chunk)):
        sl = slice(lo, min(n, lo + int(chunk)))
        img = _render(objects, colors, size, draws, sl)
        img += rng.normal(0.0, noise_std, img.shape).astype(np.float32)
        out[sl] = img
    return out
