"""hffm makes idle OpenMP threads sleep unless the environment chose otherwise (experiments/bench_threads.py)."""

import subprocess
import sys

import pytest

from hffm.openmp import prefer_passive_wait


@pytest.fixture
def fresh(monkeypatch):
    """As if torch were not imported yet and no policy were set."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("HFFM_KEEP_OMP_WAIT_POLICY", raising=False)
    monkeypatch.delitem(sys.modules, "torch")
    return monkeypatch


def test_passive_by_default_and_a_chosen_policy_is_kept(fresh):
    import os

    prefer_passive_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    fresh.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prefer_passive_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    fresh.delenv("OMP_WAIT_POLICY")
    fresh.setenv("HFFM_KEEP_OMP_WAIT_POLICY", "1")
    prefer_passive_wait()
    assert "OMP_WAIT_POLICY" not in os.environ


def test_too_late_once_torch_is_loaded(monkeypatch):
    import os

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("HFFM_KEEP_OMP_WAIT_POLICY", raising=False)
    import torch  # noqa: F401

    prefer_passive_wait()  # libgomp has read the environment already: setting it now would only mislead
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.slow
def test_importing_hffm_first_sets_it_before_torch_loads():
    code = "import os, sys; import hffm; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_WAIT_POLICY", "HFFM_KEEP_OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
