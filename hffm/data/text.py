"""Short templated captions for the M3T benchmark.

A caption names the object and its colour with synonyms, in one of several word orders, with
optional filler words, a place phrase and a negated distractor ("not a circle", "not blue"). The
distractor names a *different* object or colour, so a bag of words is ambiguous and a model must use
word order; the true object and colour are always stated, so text alone solves both tasks.
"""

from __future__ import annotations

import numpy as np

OBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "square": ("square", "box", "block"),
    "circle": ("circle", "disc", "disk"),
    "triangle": ("triangle", "wedge", "pyramid"),
    "cross": ("cross", "plus", "x"),
    "bars": ("bars", "stripes", "lines"),
    "ring": ("ring", "hoop", "loop"),
    "ell": ("ell", "corner", "angle"),
    "tee": ("tee", "junction", "t"),
}
COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "lime"),
    "blue": ("blue", "azure", "navy"),
    "yellow": ("yellow", "golden", "amber"),
    "magenta": ("magenta", "pink", "purple"),
    "cyan": ("cyan", "teal", "turquoise"),
}
DETERMINERS = ("a", "the", "one")
FILLERS = ("maybe", "clearly", "small", "large", "bright", "dim", "here", "now", "probably", "tiny")
PLACES = (("near", "left"), ("near", "right"), ("at", "top"), ("at", "bottom"), ("in", "center"),
          ("in", "corner"))
# Base templates: D determiner, C colour word, O object word. Every one is at most 5 words.
TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("D", "C", "O"),
    ("there", "is", "D", "C", "O"),
    ("D", "O", "that", "is", "C"),
    ("D", "O", "painted", "C"),
    ("i", "see", "D", "C", "O"),
    ("C", "colored", "O"),
    ("picture", "of", "D", "C", "O"),
    ("D", "O", "in", "C"),
)
MIN_TEXT_LEN = 5


def build_vocab() -> list[str]:
    """The fixed word list (index 0 is ``"<pad>"``); independent of the seed and of the class counts."""
    words: list[str] = []
    for group in (*OBJECT_WORDS.values(), *COLOR_WORDS.values()):
        words.extend(group)
    words.extend(DETERMINERS)
    words.extend(FILLERS)
    for p in PLACES:
        words.extend(p)
    for t in TEMPLATES:
        words.extend(w for w in t if w not in ("D", "C", "O"))
    words.extend(("not", "but", "and"))
    seen: list[str] = ["<pad>"]
    for w in words:
        if w not in seen:
            seen.append(w)
    return seen


def make_captions(
    objects: np.ndarray,
    colors: np.ndarray,
    num_objects: int,
    num_colors: int,
    length: int,
    rng: np.random.Generator,
    distractor_prob: float,
    filler_prob: float,
) -> np.ndarray:
    """``(N, length)`` int64 word ids (0-padded at the end) describing each (object, colour) pair."""
    vocab = build_vocab()
    wid = {w: i for i, w in enumerate(vocab)}
    obj_names = list(OBJECT_WORDS)[:num_objects]
    col_names = list(COLOR_WORDS)[:num_colors]
    out = np.zeros((len(objects), length), dtype=np.int64)
    for i, (o, c) in enumerate(zip(objects, colors, strict=True)):
        det = DETERMINERS[rng.integers(len(DETERMINERS))]
        ow = OBJECT_WORDS[obj_names[o]][rng.integers(3)]
        cw = COLOR_WORDS[col_names[c]][rng.integers(3)]
        fill = {"D": det, "C": cw, "O": ow}
        words = [fill.get(w, w) for w in TEMPLATES[rng.integers(len(TEMPLATES))]]
        if rng.random() < distractor_prob:
            if rng.random() < 0.5:
                other = obj_names[(o + 1 + rng.integers(num_objects - 1)) % num_objects]
                neg = ["not", DETERMINERS[rng.integers(len(DETERMINERS))],
                       OBJECT_WORDS[other][rng.integers(3)]]
            else:
                other = col_names[(c + 1 + rng.integers(num_colors - 1)) % num_colors]
                neg = ["not", COLOR_WORDS[other][rng.integers(3)]]
            if rng.random() < 0.5 and len(words) + len(neg) + 1 <= length:
                words = neg + ["but"] + words
            elif len(words) + len(neg) + 1 <= length:
                words = words + ["and"] + neg
        if rng.random() < 0.5 and len(words) + 2 <= length:
            words = words + list(PLACES[rng.integers(len(PLACES))])
        while rng.random() < filler_prob and len(words) < length:
            pos = int(rng.integers(len(words) + 1))
            words.insert(pos, FILLERS[rng.integers(len(FILLERS))])
        out[i, : len(words)] = [wid[w] for w in words]
    return out
