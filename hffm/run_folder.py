"""A run's folder: claimed by one process before anything is written there, locked for the run's life.

Two runs never share a folder. A new run claims an unused folder by creating ``config.json`` exclusively;
a resume in place (``federation.resume`` inside the folder) takes its own folder over. Either way the
claimer first takes an exclusive lock on ``.lock`` and holds it until the run ends, so a second run or
resume started meanwhile is refused. The operating system drops the lock when the process dies, even
by SIGKILL, so a killed run can be resumed at once. A run that fails before writing any result (a
checkpoint or a metrics row) releases its claim: what it wrote is removed or restored, and the same
command can simply be run again.

Only one process claims, global rank 0 (hffm.run decides); the others never touch the folder.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hffm.safe_io import atomic_write_text, file_mode

LOCK = ".lock"
CLAIM = "config.json"
CHECKPOINT = Path("checkpoints") / "federation.pt"
RESULTS = (CHECKPOINT, Path("metrics.csv"))
"""Files that hold a run's results: once one of them changed, a failed run keeps its claim (it can be resumed)."""
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job log format


class RunFolderError(FileExistsError):
    """A folder that this run may not use; the message names the folder and what to do instead."""


@dataclass(frozen=True)
class FolderExtras:
    """What a launcher adds to the folder once it is claimed (the CLI: Hydra's record of the run and its log)."""

    files: Mapping[str, str] = field(default_factory=dict)
    """Relative path -> text, written after the claim (e.g. ``.hydra/config.yaml``)."""
    log_name: str | None = None
    """A file in the folder that receives every log record of the run (Hydra's ``<job name>.log``)."""


def in_place(folder: Path, resume: str | None) -> bool:
    """Whether ``resume`` continues the run that lives in ``folder``."""
    return bool(resume) and Path(str(resume)).resolve().is_relative_to(folder.resolve())


def used_message(folder: Path) -> str:
    """Why a folder holding a run cannot take a new one, and exactly how to go on."""
    ckpt = folder / CHECKPOINT
    if ckpt.is_file():
        return (f"output folder {str(folder)!r} already holds a run (config.json); runs never share a folder: "
                f"choose another hydra.run.dir (API: another folder), or continue that run there with "
                f"federation.resume={ckpt}")
    return (f"output folder {str(folder)!r} already holds a run that saved no checkpoint (config.json, no "
            f"{CHECKPOINT}), so it cannot be resumed: choose another hydra.run.dir (API: another folder), or "
            f"delete that folder (rm -r {folder}) and run again")


def _snapshot(folder: Path) -> dict[Path, tuple[int, int] | None]:
    out: dict[Path, tuple[int, int] | None] = {}
    for rel in RESULTS:
        try:
            st = (folder / rel).stat()
            out[rel] = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            out[rel] = None
    return out


def _lock(folder: Path) -> int | None:
    """An exclusive lock on ``folder/.lock`` (its file descriptor), or a RunFolderError naming the holder."""
    import fcntl  # POSIX: Linux and macOS, the platforms hffm runs on

    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunFolderError(
            f"output folder {str(folder)!r} is in use by a running run ({holder}; lock {folder / LOCK}): "
            "wait until it ends, or choose another hydra.run.dir (API: another folder)"
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            os.close(fd)
            raise
        warnings.warn(f"the file system of {str(folder)!r} has no file locks ({exc.strerror}): two runs started "
                      "in this folder at the same time would not be told apart", stacklevel=3)
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    return fd


class RunFolder:
    """A claimed folder: holds the lock until :meth:`close`; :meth:`fail` releases the claim of a failed start."""

    def __init__(self, path: Path, lock_fd: int | None, before: dict[Path, str | None],
                 results: dict[Path, tuple[int, int] | None], log_handler: logging.Handler | None) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._before = before  # each file the claim wrote -> its previous text (None: it did not exist)
        self._results = results
        self._log_handler = log_handler

    def wrote_results(self) -> bool:
        return _snapshot(self.path) != self._results

    def fail(self) -> str:
        """The run failed: release the claim if it wrote no result yet, else keep it; says which, and how to retry.
        The lock is still held: call :meth:`close` after logging the answer (it goes to the run's log too)."""
        if self.wrote_results():
            msg = (f"the run failed after writing results to {str(self.path)!r}; "
                   + (f"continue it with federation.resume={self.path / CHECKPOINT}" if (self.path / CHECKPOINT)
                      .is_file() else f"it saved no checkpoint: delete the folder (rm -r {self.path}) to run again"))
        else:
            for path, text in self._before.items():
                if text is None:
                    path.unlink(missing_ok=True)
                else:
                    atomic_write_text(path, text)
            for parent in sorted({p.parent for p in self._before if p.parent != self.path}, reverse=True):
                try:
                    parent.rmdir()  # only if empty: e.g. the .hydra/ this claim made
                except OSError:
                    pass
            msg = (f"the run failed before writing any result; its claim on {str(self.path)!r} is released: "
                   "fix the cause and run the same command again")
        return msg

    def close(self) -> None:
        """Release the lock (the folder stays claimed by its config.json) and the log file."""
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None


def claim(folder: str | Path, config_json: str, resume: str | None = None,
          extras: FolderExtras | None = None) -> RunFolder:
    """Claim ``folder`` for one run, write its config (and ``extras``), and lock it until the run ends.

    ``config_json``: the run's resolved config as JSON text (what config.json holds). ``resume``: the
    run's ``federation.resume``; inside ``folder`` it continues that run there (its config.json is replaced).
    """
    folder = Path(folder)
    extras = extras or FolderExtras()
    folder.mkdir(parents=True, exist_ok=True)
    lock_fd = _lock(folder)
    before: dict[Path, str | None] = {}
    try:
        results = _snapshot(folder)
        config_path = folder / CLAIM
        if in_place(folder, resume):
            before[config_path] = config_path.read_text() if config_path.is_file() else None
            atomic_write_text(config_path, config_json)
        else:
            try:
                fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode())
            except FileExistsError:
                raise RunFolderError(used_message(folder)) from None
            before[config_path] = None
            with os.fdopen(fd, "w") as f:
                f.write(config_json)
        for rel, text in extras.files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            before[path] = path.read_text() if path.is_file() else None
            atomic_write_text(path, text)
        handler = None
        if extras.log_name:
            handler = logging.FileHandler(folder / extras.log_name)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            logging.getLogger().addHandler(handler)
    except BaseException:
        undo = RunFolder(folder, lock_fd, before, _snapshot(folder), None)
        undo.fail()  # remove or restore what was written
        undo.close()
        raise
    return RunFolder(folder, lock_fd, before, results, handler)
