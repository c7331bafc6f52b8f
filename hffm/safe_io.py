"""Checkpoint files written atomically and read without running code.

``torch.save`` pickles; loading a pickle can run any code the file names, so files are read with
``weights_only=True`` (tensors and plain Python data only). Writes go to a temporary file in the same
folder, are fsynced and renamed over the target, so a crash mid-write leaves the previous file intact
and no temporary file behind (a hard kill can leave one: the next successful write removes it).
"""

from __future__ import annotations

import glob
import hashlib
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what to do."""


def file_mode() -> int:
    """The mode ``open()`` gives a new file (0o666 less the umask): temp files get it too, not mkstemp's 0o600,
    so every file of a run folder has one mode."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` via temp file + fsync + rename; the temp file never outlives a failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a writer killed mid-write
        stale.unlink(missing_ok=True)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def safe_torch_load(path: str | os.PathLike[str], what: str) -> Any:
    """Load a torch file with ``weights_only=True``; every failure is a CheckpointError naming ``path``.

    ``what`` says which file this is for the message (e.g. 'federation.resume checkpoint').
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses anything but tensors and plain data: a crafted or foreign pickle lands here.
        raise CheckpointError(
            f"{what} {str(path)!r} was refused: it is not a checkpoint of tensors and plain data (a corrupt "
            f"file, an old format or a crafted pickle; nothing in it was run): {_unpickler_reason(exc)}"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError) as exc:
        raise CheckpointError(
            f"{what} {str(path)!r} is truncated or corrupt ({type(exc).__name__}: {_first_line(exc)}); "
            "use another checkpoint"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _unpickler_reason(exc: BaseException) -> str:
    """The line of torch's weights_only message that says what was refused (it surrounds it with advice)."""
    boiler = ("Weights only load failed", "Please file an issue", "Check the documentation", "Re-running")
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith(boiler)]
    return lines[0] if lines else type(exc).__name__


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Replace ``path``'s content with ``text`` in one rename, so a reader or a kill never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def payload_digest(obj: Any) -> str:
    """sha256 of a checkpoint payload's content: every tensor's dtype, shape and bytes and every plain value, in a
    fixed order (dict keys sorted). torch does not check its zip's CRCs, so a flipped byte inside a tensor loads
    silently: this digest, stored beside the payload, catches it."""
    digest = hashlib.sha256()

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, dict):
            digest.update(b"D%d" % len(x))
            for k in sorted(x, key=repr):
                digest.update(repr(k).encode() + b":")
                walk(x[k])
        elif isinstance(x, (list, tuple)):
            digest.update(b"L%d" % len(x) if isinstance(x, list) else b"U%d" % len(x))
            for v in x:
                walk(v)
        else:
            digest.update(f"{type(x).__name__}={x!r};".encode())

    walk(obj)
    return digest.hexdigest()
