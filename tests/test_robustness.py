"""Smoke test of experiments/robustness.py at --quick sizes (2 edges x 2 devices, 2 rules, 2 attacks, 1-2 rounds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_experiment


def load_script():
    return load_experiment("robustness")


@pytest.mark.slow
def test_quick_sweep_writes_the_table_and_nan_never_reaches_the_state(tmp_path: Path) -> None:
    rb = load_script()
    out = tmp_path / "rb"
    got = rb.main(["--quick", "--out", str(out)])
    saved = json.loads((out / "results.json").read_text())["runs"]
    assert set(saved) == {"robust_mean_clean", "robust_median_clean", "robust_mean_ipm_25", "robust_mean_nan_25",
                          "robust_median_ipm_25", "robust_median_nan_25", "tree_mean_clean", "tree_mean_scenario"}
    assert all(r["state_finite"] for r in saved.values())
    for rule in ("mean", "median"):
        assert saved[f"robust_{rule}_nan_25"]["final"]["faults/cum_rejected_updates"] > 0
        assert saved[f"robust_{rule}_ipm_25"]["final"]["faults/cum_rejected_updates"] == 0  # small: no screen hit
    assert saved["tree_mean_scenario"]["faults_total"]["faults/dropped"] > 0
    for name, run in saved.items():  # the share of each side's updates the defense accepted
        shares = run["acceptance"]
        assert 0 <= shares["honest_accepted"] <= 1, name
        assert (shares["attacker_accepted"] is None) == ("ipm" not in name and "nan" not in name), name
    assert all(r["code"] == saved["robust_mean_clean"]["code"] for r in saved.values())  # keyed by the code
    assert "| robust | median |" in got["table"] and (out / "table.md").read_text() == got["table"]
    again = rb.main(["--quick", "--out", str(out)])  # a rerun reuses every cached run
    assert again["records"] == got["records"]


def test_norms_mode_reports_every_shared_modules_honest_update_norm(tmp_path: Path) -> None:
    found = load_script().main(["--quick", "--norms", "--out", str(tmp_path)])["norms"]
    assert "adapter/0" in found and all(0 < lo <= hi < 10 for lo, hi in found.values())
