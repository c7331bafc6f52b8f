"""Read numpy arrays out of an old pandas pickle without running anything from the file.

A pickle names callables (``GLOBAL module name``) and asks the loader to call them (``REDUCE``,
``BUILD``): loading one with ``pickle.load`` runs whatever code the file names. ``InertUnpickler``
resolves every global, whatever its name, to an :class:`InertGlobal` that only records the name;
calling one returns an :class:`Inert` record of the call, and ``BUILD`` stores the state on it. No
module is imported, no function from the file is called, so a malicious file yields inert records.

:func:`array_of` then turns the records of a pickled ``numpy.ndarray`` back into an array by
reading its dtype, shape and raw bytes: only fixed-size little-endian numeric dtypes and lists of
strings (object arrays of column names) are accepted.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

NUMERIC_DTYPES = ("f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1")
"""Dtypes :func:`array_of` rebuilds from raw bytes (little-endian or byte-order free)."""


class SafePickleError(ValueError):
    """The file is not laid out as expected; the message names what was found."""


class Inert:
    """The record of a call the pickle asked for: the callable's name, its arguments, its BUILD state."""

    def __init__(self, name: str, args: tuple[Any, ...]) -> None:
        self.name = name
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:  # BUILD: keep the state, run nothing
        self.state = state

    def __repr__(self) -> str:
        return f"Inert({self.name})"


class InertGlobal:
    """Stands for any global the pickle names; calling it records the call."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Inert:
        return Inert(self.name, args)

    def __repr__(self) -> str:
        return f"InertGlobal({self.name})"


class InertUnpickler(pickle.Unpickler):
    """An unpickler whose every global is inert (see the module docstring)."""

    def find_class(self, module: str, name: str) -> InertGlobal:  # noqa: D401 - the pickle API's hook
        return InertGlobal(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise SafePickleError(f"persistent id {pid!r}: this loader accepts no external references")


def inert_load(data: bytes) -> Any:
    """The object tree of a pickle with every global call replaced by an :class:`Inert` record."""
    try:
        return InertUnpickler(io.BytesIO(data)).load()
    except SafePickleError:
        raise
    except Exception as exc:  # a truncated or corrupt file: say so rather than leak an opcode error
        raise SafePickleError(f"not a readable pickle: {type(exc).__name__}: {exc}") from None


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise SafePickleError(what)


def _raw_bytes(raw: Any) -> bytes:
    """Array bytes: plain bytes, or a Python 2 str pickled as ``_codecs.encode(text, 'latin1')``."""
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    ok = (isinstance(raw, Inert) and raw.name == "_codecs.encode" and len(raw.args) == 2
          and isinstance(raw.args[0], str) and raw.args[1] == "latin1")
    _need(ok, f"array data: expected bytes or _codecs.encode(str, 'latin1'), got {raw!r}")
    return raw.args[0].encode("latin1")


def array_of(record: Any) -> np.ndarray:
    """The ndarray a ``numpy.core.multiarray._reconstruct`` record stands for (numeric or list of str)."""
    _need(isinstance(record, Inert) and record.name.endswith("multiarray._reconstruct"),
          f"expected a pickled numpy array, got {record!r}")
    state = record.state
    _need(isinstance(state, tuple) and len(state) == 5, f"numpy array state: expected 5 fields, got {state!r:.80}")
    _, shape, dtype, fortran, raw = state
    _need(isinstance(shape, tuple) and all(isinstance(s, int) and s >= 0 for s in shape),
          f"numpy array shape: {shape!r}")
    _need(isinstance(dtype, Inert) and dtype.name.endswith("numpy.dtype") and bool(dtype.args)
          and isinstance(dtype.args[0], str), f"numpy dtype: {dtype!r}")
    code = dtype.args[0]
    if code == "O8":  # an object array pickles its items as a list: accept strings only
        _need(isinstance(raw, list) and all(isinstance(x, str) for x in raw), "object array: only strings accepted")
        return np.array(raw, dtype=object).reshape(shape)
    _need(code in NUMERIC_DTYPES, f"numpy dtype {code!r}: only {NUMERIC_DTYPES} are read")
    order = dtype.state[1] if isinstance(dtype.state, tuple) and len(dtype.state) > 1 else "<"
    _need(order in ("<", "|", "="), f"numpy dtype {code!r}: byte order {order!r}, only little-endian is read")
    data = _raw_bytes(raw)
    dt = np.dtype("<" + code if code != "b1" else "?")
    count = int(np.prod(shape)) if shape else 1
    _need(len(data) == count * dt.itemsize, f"numpy array: {len(data)} bytes for shape {shape} of {code}")
    out = np.frombuffer(data, dtype=dt).reshape(shape, order="F" if fortran else "C")
    return out.copy()
