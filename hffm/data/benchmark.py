"""The offline multi-modal multi-task (M3T) benchmark: one latent sample rendered into three modalities.

Latent per sample: an object class, a colour, a modulation class and an SNR. Renderings:
``image`` (3 x S x S, the object drawn in its colour, see :mod:`hffm.data.render`), ``text`` (a short
caption naming object and colour, see :mod:`hffm.data.text`) and ``iq`` (2 x L radio I/Q burst of the
modulation at the SNR, see :mod:`hffm.data.radio`). Tasks: ``object``, ``color`` (from image or text),
``modulation`` and ``snr`` (from iq). The ``snr`` target is the SNR in dB normalised to [-1, 1] over
``snr_db_range``: ``(snr_db - mid) / half_width``; :meth:`BenchmarkConfig.snr_db` converts back and
``dataset.extras["snr_db"]`` keeps the raw dB. Everything is drawn from ``seed``; the four renderings
use independent streams of it, so changing, say, the image noise leaves the I/Q bursts unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hffm.data.radio import MODULATION_NAMES, synth_iq
from hffm.data.render import COLOR_NAMES, OBJECT_NAMES, render_images
from hffm.data.text import MIN_TEXT_LEN, build_vocab, make_captions
from hffm.lazy import LazyModule
from hffm.spec import ModalitySpec, TaskSpec

if TYPE_CHECKING:
    import torch

    from hffm.data.dataset import M3TDataset
else:
    torch = LazyModule("torch")

TASK_MODALITIES: dict[str, tuple[str, ...]] = {
    "object": ("image", "text"),
    "color": ("image", "text"),
    "modulation": ("iq",),
    "snr": ("iq",),
}


@dataclass
class BenchmarkConfig:
    """Size and difficulty of the generated benchmark (defaults: 3000 samples, 6 objects, 4 colours)."""

    num_samples: int = 3000
    """Number of latent samples (each rendered into every modality)."""
    image_size: int = 16
    """Side of the square RGB image in pixels (>= 8)."""
    text_len: int = 12
    """Caption length in words, padded with 0 (>= 5)."""
    iq_len: int = 128
    """Number of complex I/Q samples per burst (>= 8 * iq_sps)."""
    num_objects: int = 6
    """Object classes, taken in order from square, circle, triangle, cross, bars, ring, ell, tee (2..8)."""
    num_colors: int = 4
    """Colour classes, taken in order from red, green, blue, yellow, magenta, cyan (2..6)."""
    num_modulations: int = 4
    """Modulation classes, taken in order from BPSK, QPSK, 8PSK, 16QAM, 4PAM, 64QAM (2..6)."""
    snr_db_range: tuple[float, float] = (-5.0, 20.0)
    """SNR drawn uniformly in this range, in dB (signal over noise power in the sampled band)."""
    missing_prob: float = 0.0
    """Chance that a sample misses each modality (its input zeroed, present False); a sample that
    would miss all of them gets one back at random, so none misses everything. In [0, 1)."""
    image_noise: float = 0.3
    """Std of the Gaussian pixel noise (shape intensity is about 1)."""
    background_std: float = 0.25
    """Std of the random background tint per channel; the gradient amplitude is up to twice this."""
    clutter: int = 2
    """Number of random 2x2 specks of random colour per image."""
    text_distractor_prob: float = 0.7
    """Chance a caption also names a different object or colour under a negation ("not a circle")."""
    text_filler_prob: float = 0.5
    """Chance of inserting each further filler word at a random position (geometric count)."""
    iq_sps: int = 4
    """Samples per symbol of the pulse-shaped burst."""
    iq_rolloff: float = 0.35
    """Root-raised-cosine roll-off factor in (0, 1]."""
    iq_max_cfo: float = 0.01
    """Largest carrier frequency offset, cycles per sample (drawn in +-iq_max_cfo)."""

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"BenchmarkConfig.{msg}")

        need(self.num_samples >= 1, f"num_samples must be >= 1, got {self.num_samples}")
        need(self.image_size >= 8, f"image_size must be >= 8, got {self.image_size}")
        need(self.text_len >= MIN_TEXT_LEN, f"text_len must be >= {MIN_TEXT_LEN}, got {self.text_len}")
        need(2 <= self.num_objects <= len(OBJECT_NAMES),
             f"num_objects must lie in [2, {len(OBJECT_NAMES)}], got {self.num_objects}")
        need(2 <= self.num_colors <= len(COLOR_NAMES),
             f"num_colors must lie in [2, {len(COLOR_NAMES)}], got {self.num_colors}")
        need(2 <= self.num_modulations <= len(MODULATION_NAMES),
             f"num_modulations must lie in [2, {len(MODULATION_NAMES)}], got {self.num_modulations}")
        lo, hi = (float(x) for x in self.snr_db_range)
        self.snr_db_range = (lo, hi)
        need(math.isfinite(lo) and math.isfinite(hi) and lo < hi,
             f"snr_db_range must be (low, high) with low < high, got {self.snr_db_range}")
        need(0.0 <= self.missing_prob < 1.0, f"missing_prob must lie in [0, 1), got {self.missing_prob}")
        need(self.image_noise >= 0, f"image_noise must be >= 0, got {self.image_noise}")
        need(self.background_std >= 0, f"background_std must be >= 0, got {self.background_std}")
        need(self.clutter >= 0, f"clutter must be >= 0, got {self.clutter}")
        need(0.0 <= self.text_distractor_prob <= 1.0,
             f"text_distractor_prob must lie in [0, 1], got {self.text_distractor_prob}")
        need(0.0 <= self.text_filler_prob < 1.0, f"text_filler_prob must lie in [0, 1), got {self.text_filler_prob}")
        need(self.iq_sps >= 2, f"iq_sps must be >= 2, got {self.iq_sps}")
        need(self.iq_len >= 8 * self.iq_sps, f"iq_len must be >= 8 * iq_sps = {8 * self.iq_sps}, got {self.iq_len}")
        need(0.0 < self.iq_rolloff <= 1.0, f"iq_rolloff must lie in (0, 1], got {self.iq_rolloff}")
        need(0.0 <= self.iq_max_cfo < 0.5, f"iq_max_cfo must lie in [0, 0.5), got {self.iq_max_cfo}")

    def snr_target(self, snr_db: np.ndarray | torch.Tensor | float) -> np.ndarray | torch.Tensor | float:
        """SNR in dB -> the normalised ``snr`` regression target (range maps to [-1, 1])."""
        lo, hi = self.snr_db_range
        return (snr_db - (lo + hi) / 2) / ((hi - lo) / 2)

    def snr_db(self, target: np.ndarray | torch.Tensor | float) -> np.ndarray | torch.Tensor | float:
        """The normalised ``snr`` target (or a prediction of it) -> SNR in dB."""
        lo, hi = self.snr_db_range
        return target * ((hi - lo) / 2) + (lo + hi) / 2

    def modality_specs(self) -> list[ModalitySpec]:
        return [
            ModalitySpec("image", "image", (3, self.image_size, self.image_size)),
            ModalitySpec("text", "text", (self.text_len,), vocab_size=len(build_vocab())),
            ModalitySpec("iq", "signal", (2, self.iq_len)),
        ]

    def task_specs(self) -> list[TaskSpec]:
        return [
            TaskSpec("object", "classification", self.num_objects),
            TaskSpec("color", "classification", self.num_colors),
            TaskSpec("modulation", "classification", self.num_modulations),
            TaskSpec("snr", "regression"),
        ]


def make_benchmark(cfg: BenchmarkConfig, seed: int) -> M3TDataset:
    """Generate the benchmark: same ``cfg`` and ``seed`` give identical tensors."""
    from hffm.data.dataset import M3TDataset  # torch's Dataset: only when one is made
    if not isinstance(cfg, BenchmarkConfig):
        raise TypeError(f"cfg must be a BenchmarkConfig, got {type(cfg).__name__}")
    latent_rng, image_rng, text_rng, iq_rng, miss_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(5)
    )
    n = cfg.num_samples
    objects = latent_rng.integers(0, cfg.num_objects, n)
    colors = latent_rng.integers(0, cfg.num_colors, n)
    mods = latent_rng.integers(0, cfg.num_modulations, n)
    snr_db = latent_rng.uniform(cfg.snr_db_range[0], cfg.snr_db_range[1], n)

    images = render_images(objects, colors, cfg.image_size, image_rng, cfg.image_noise, cfg.background_std,
                           cfg.clutter)
    text = make_captions(objects, colors, cfg.num_objects, cfg.num_colors, cfg.text_len, text_rng,
                         cfg.text_distractor_prob, cfg.text_filler_prob)
    iq = synth_iq(mods, snr_db, cfg.iq_len, iq_rng, cfg.iq_sps, cfg.iq_rolloff, cfg.iq_max_cfo)

    specs = cfg.modality_specs()
    present = miss_rng.random((n, len(specs))) >= cfg.missing_prob
    none = ~present.any(axis=1)
    present[np.flatnonzero(none), miss_rng.integers(0, len(specs), int(none.sum()))] = True

    # The trusted constructor: these tensors meet the specs by construction, and from_tensors' checks and
    # masked copies would double the peak memory of a large benchmark. Absent inputs are zeroed in place.
    inputs = {"image": torch.from_numpy(images), "text": torch.from_numpy(text), "iq": torch.from_numpy(iq)}
    for j, s in enumerate(specs):
        inputs[s.name][torch.from_numpy(~present[:, j])] = 0
    ds = M3TDataset(
        inputs=inputs,
        present={s.name: torch.from_numpy(present[:, j].copy()) for j, s in enumerate(specs)},
        targets={
            "object": torch.from_numpy(objects).long(),
            "color": torch.from_numpy(colors).long(),
            "modulation": torch.from_numpy(mods).long(),
            "snr": torch.from_numpy(np.asarray(cfg.snr_target(snr_db), dtype=np.float32)),
        },
        modalities=specs,
        tasks=cfg.task_specs(),
        task_modalities=TASK_MODALITIES,
        vocab=build_vocab(),
    )
    ds.extras["snr_db"] = torch.from_numpy(snr_db.astype(np.float32))
    return ds


def class_names(cfg: BenchmarkConfig) -> dict[str, tuple[str, ...]]:
    """Human-readable class names of each classification task (for plots and reports)."""
    return {
        "object": OBJECT_NAMES[: cfg.num_objects],
        "color": COLOR_NAMES[: cfg.num_colors],
        "modulation": MODULATION_NAMES[: cfg.num_modulations],
    }
