"""Package attributes loaded on first use: ``import hffm`` and a config error never import the training stack."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, table: Mapping[str, tuple[str, str]], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name] = (module, attribute)`` on first use and keeps it in the
    package's ``namespace`` (so the import happens once)."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = table[name]
        value = getattr(importlib.import_module(module), attr)
        namespace[name] = value
        return value

    return __getattr__


class LazyModule:
    """A module imported on its first attribute access.

    The config's registries (aggregation rules, codecs, optimizers, attacks) live beside the functions that use torch;
    binding ``torch = LazyModule("torch")`` there lets a config be composed and checked without torch's second-long
    import. After the first access the module's namespace is copied in, so later lookups cost a dict hit.
    """

    def __init__(self, name: str) -> None:
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__dict__["_lazy_name"])
        self.__dict__.update(vars(module))
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_lazy_name']!r}>"
