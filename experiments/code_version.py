"""The code a result was made with, for experiments' caches: a cached run is reused only when made by the same code.

``code_hash()`` digests every source and config file the runs execute (hffm/, solvers/, conf/, the experiment
scripts), committed or not, so an edit anywhere makes every cached run stale; the commit is recorded beside it
for people, not used as the key (it misses uncommitted edits).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("hffm", "solvers", "conf", "experiments")
SUFFIXES = (".py", ".yaml")
CODE_PATHS = ("hffm", "solvers", "conf", "experiments", ":(exclude)experiments/results", ":(exclude)*.md")
"""The code as pathspecs for ``commit``: a run whose script writes its results files (or a README edited while it
runs) is not marked dirty; an edit to the code is."""


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """sha256 over (path, bytes) of every .py and .yaml under SOURCES, in sorted order."""
    digest = hashlib.sha256()
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and "results" not in path.relative_to(ROOT).parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def commit(paths: tuple[str, ...] = ()) -> str:
    """HEAD's commit (with '+dirty' when tracked files changed: only those under ``paths`` when given, so a script
    that rewrites its own results file between rows stays clean), or 'unknown' outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                                *paths], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
