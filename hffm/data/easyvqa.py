"""easy-VQA (image + question -> answer) as an M3T dataset, one task per question type.

The data comes from the ``easy-vqa`` package (the optional ``data`` extra, MIT): 4,000 train and 1,000
test 64x64 PNG images of one coloured shape each, 38,575 + 9,673 questions with 13 answers. The images
are synthetic: easy-VQA has the task format of VQA benchmarks (GQA, ArtVQA), not their content.
Questions are read from the package's JSON and images decoded with Pillow; nothing is executed.

A sample is one question: ``image`` (3 x S x S, averaged down from 64x64) and ``question`` (word ids
of a vocabulary built from the training questions). Tasks by answer type: ``shape`` (3), ``color``
(8), ``yesno`` (2); a question's other two tasks hold ``MISSING_LABEL``. The package's test split is
the global test set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hffm.data.extra import package_dir
from hffm.lazy import LazyModule
from hffm.spec import MISSING_LABEL, ModalitySpec, TaskSpec

if TYPE_CHECKING:
    import torch

    from hffm.data.dataset import M3TDataset
else:
    torch = LazyModule("torch")

ANSWERS = {
    "shape": ("circle", "rectangle", "triangle"),
    "color": ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow"),
    "yesno": ("no", "yes"),
}
TASK_MODALITIES = {task: ("image", "question") for task in ANSWERS}
SOURCE_SIZE = 64


@dataclass
class EasyVQAConfig:
    """How much of easy-VQA to load and at what resolution."""

    image_size: int = 32
    """Side of the images after averaging down from 64 (a divisor of 64, >= 8)."""
    text_len: int = 12
    """Question length in words, padded with 0 (longer questions are cut)."""
    max_train: int | None = 8000
    """Training questions kept, a seeded sample (None: all 38,575)."""
    max_test: int | None = 2000
    """Test questions kept, a seeded sample (None: all 9,673)."""

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"EasyVQAConfig.{msg}")

        need(self.image_size >= 8 and SOURCE_SIZE % self.image_size == 0,
             f"image_size must be a divisor of {SOURCE_SIZE} and >= 8 (8, 16, 32, 64), got {self.image_size}")
        need(self.text_len >= 4, f"text_len must be >= 4, got {self.text_len}")
        for name in ("max_train", "max_test"):
            value = getattr(self, name)
            need(value is None or value >= 1, f"{name} must be >= 1 or None, got {value}")


def words(question: str) -> list[str]:
    return re.findall(r"[a-z]+", question.lower())


def _read_split(root: Path, split: str) -> list[tuple[str, str, int]]:
    with open(root / "data" / split / "questions.json") as f:
        rows = json.load(f)
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == 3 for r in rows):
        raise ValueError(f"{root}/data/{split}/questions.json: expected a list of [question, answer, image id]")
    return [(str(q), str(a), int(i)) for q, a, i in rows]


def _images(root: Path, split: str, ids: np.ndarray, size: int) -> dict[int, np.ndarray]:
    from PIL import Image  # Pillow comes with matplotlib, a core dependency

    out = {}
    k = SOURCE_SIZE // size
    for i in np.unique(ids).tolist():
        with Image.open(root / "data" / split / "images" / f"{i}.png") as im:
            x = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        if x.shape != (SOURCE_SIZE, SOURCE_SIZE, 3):
            raise ValueError(f"easy-VQA image {split}/{i}.png: shape {x.shape}, expected 64x64 RGB")
        out[i] = x.reshape(size, k, size, k, 3).mean((1, 3)).transpose(2, 0, 1)
    return out


def _dataset(root: Path, split: str, rows: list[tuple[str, str, int]], vocab: list[str], cfg: EasyVQAConfig
             ) -> M3TDataset:
    from hffm.data.dataset import M3TDataset  # torch's Dataset: only when one is made
    ids = np.array([r[2] for r in rows])
    images = _images(root, split, ids, cfg.image_size)
    wid = {w: i for i, w in enumerate(vocab)}
    text = np.zeros((len(rows), cfg.text_len), dtype=np.int64)
    for n, (question, _, _) in enumerate(rows):
        tokens = [wid.get(w, 1) for w in words(question)][: cfg.text_len]  # 1 = <unk>
        text[n, : len(tokens)] = tokens
    targets = {t: np.full(len(rows), MISSING_LABEL, dtype=np.int64) for t in ANSWERS}
    for n, (_, answer, _) in enumerate(rows):
        task = next((t for t, names in ANSWERS.items() if answer in names), None)
        if task is None:
            raise ValueError(f"easy-VQA {split}: unknown answer {answer!r}; known {sorted(sum(ANSWERS.values(), ()))}")
        targets[task][n] = ANSWERS[task].index(answer)
    mean = np.array([0.5, 0.5, 0.5], dtype=np.float32)[:, None, None]
    ds = M3TDataset(
        inputs={"image": torch.from_numpy(np.stack([images[i] for i in ids.tolist()]) - mean).float(),
                "question": torch.from_numpy(text)},
        present={m: torch.ones(len(rows), dtype=torch.bool) for m in ("image", "question")},
        targets={t: torch.from_numpy(y) for t, y in targets.items()},
        modalities=[ModalitySpec("image", "image", (3, cfg.image_size, cfg.image_size)),
                    ModalitySpec("question", "text", (cfg.text_len,), vocab_size=len(vocab))],
        tasks=[TaskSpec(t, "classification", len(names)) for t, names in ANSWERS.items()],
        task_modalities=TASK_MODALITIES,
        vocab=vocab,
    )
    # The answer over all 13 (task offset + class): the Dirichlet partitioner's label (data.partition.label_task).
    offsets = np.cumsum([0] + [len(v) for v in ANSWERS.values()])[:-1]
    answer_ids = np.full(len(rows), -1)
    for offset, t in zip(offsets, ANSWERS, strict=True):
        has = targets[t] != MISSING_LABEL
        answer_ids[has] = offset + targets[t][has]
    ds.extras["answer"] = torch.from_numpy(answer_ids)
    return ds


def _sample(rows: list, limit: int | None, rng: np.random.Generator) -> list:
    if limit is None or limit >= len(rows):
        return rows
    return [rows[i] for i in np.sort(rng.choice(len(rows), limit, replace=False))]


def make_easyvqa(cfg: EasyVQAConfig, seed: int, root: Path | None = None) -> tuple[M3TDataset, M3TDataset]:
    """(train, test) from the installed package (``root``: its folder, default found by name)."""
    root = package_dir("easy_vqa", "easy-vqa", "easyvqa") if root is None else Path(root)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20]))
    train_rows = _sample(_read_split(root, "train"), cfg.max_train, rng)
    test_rows = _sample(_read_split(root, "test"), cfg.max_test, rng)
    vocab = ["<pad>", "<unk>", *sorted({w for q, _, _ in train_rows for w in words(q)})]
    return _dataset(root, "train", train_rows, vocab, cfg), _dataset(root, "test", test_rows, vocab, cfg)
