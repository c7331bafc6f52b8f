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
    assert set(saved) == {f"{n}_s0" for n in ("robust_mean_clean", "robust_median_clean", "robust_mean_ipm_25",
                                                "robust_mean_nan_25", "robust_median_ipm_25", "robust_median_nan_25",
                                                "tree_mean_clean", "tree_mean_scenario")}
    assert all(r["state_finite"] for r in saved.values())
    for rule in ("mean", "median"):
        assert saved[f"robust_{rule}_nan_25_s0"]["final"]["faults/cum_rejected_updates"] > 0
        assert saved[f"robust_{rule}_ipm_25_s0"]["final"]["faults/cum_rejected_updates"] == 0  # small: no screen hit
    assert saved["tree_mean_scenario_s0"]["faults_total"]["faults/dropped"] > 0
    for name, run in saved.items():  # the share of each side's updates the defense accepted
        shares = run["acceptance"]
        assert 0 <= shares["honest_accepted"] <= 1, name
        assert (shares["attacker_accepted"] is None) == ("ipm" not in name and "nan" not in name), name
    assert "| clean run: defense | rule | seed 0 | mean | cost vs none |" in got["table"]
    assert all(r["code"] == saved["robust_mean_clean_s0"]["code"] for r in saved.values())  # keyed by the code
    assert "| robust | median |" in got["table"] and (out / "table.md").read_text() == got["table"]
    again = rb.main(["--quick", "--out", str(out)])  # a rerun reuses every cached run
    assert again["records"] == got["records"]


def test_norms_mode_reports_every_shared_modules_honest_update_norm(tmp_path: Path) -> None:
    found = load_script().main(["--quick", "--norms", "--out", str(tmp_path)])["norms"]
    assert "adapter/0" in found and all(0 < lo <= hi < 10 for lo, hi in found.values())


def test_seeds_average_the_cells_and_clean_only_runs_no_attack(tmp_path: Path) -> None:
    rb = load_script()
    args = rb.parse(["--quick", "--clean-only", "--seeds", "0,1", "--rules", "mean", "--defenses", "robust,none"])
    runs = dict(rb.plan_runs(args))
    assert set(runs) == {f"{d}_mean_clean_s{s}" for d in ("robust", "none") for s in (0, 1)}
    assert "seed=1" in runs["none_mean_clean_s1"] and "defense=none" in runs["none_mean_clean_s1"]
    fake = {name: {"final": {"accuracy": acc}, "state_finite": True, "cpu_seconds": 1.0,
                   "acceptance": {"honest_accepted": share}}
            for name, acc, share in [("robust_mean_clean_s0", 0.40, 0.8), ("robust_mean_clean_s1", 0.44, 0.9),
                                     ("none_mean_clean_s0", 0.41, 1.0), ("none_mean_clean_s1", 0.45, 1.0)]}
    md = rb.table(fake, args)
    assert "| robust | mean | 40.0 | 44.0 | 42.0 | -1.0 | 85 % | 1.0 |" in md  # per seed, mean, cost vs none
    assert "| robust | mean | 42.0 | - | - | 85 %, 85 % | 1.0 |" in md  # the last column: CPU s a run
    attacked = rb.parse(["--quick", "--seeds", "0,1", "--rules", "mean", "--defenses", "robust", "--attacks", "ipm",
                         "--fractions", "0.2", "--no-scenario"])
    fake["robust_mean_ipm_20_s0"] = {**fake["robust_mean_clean_s0"], "final": {"accuracy": 0.37}, "cpu_seconds": 4.0}
    md = rb.table(fake, attacked)  # the attack on seed 0 alone, against seed 0's clean run, and the table says so
    assert "| robust | mean | 42.0 [2 seeds; seed 0: 40.0] | 37.0 (-3.0) | -3.0 | - | 85 %, 80 % | 2.0 |" in md
    assert "Cells made over different seeds" in md


def test_a_cached_run_is_reused_only_when_made_by_the_same_code(tmp_path: Path, monkeypatch) -> None:
    rb = load_script()
    path = tmp_path / "robust_mean_clean_s0.json"
    overrides = ["experiment=hffm", "seed=0"]
    assert rb.cached_run(path, overrides, "abc") is None  # nothing cached
    path.write_text(json.dumps({"overrides": overrides, "code": "abc", "final": {"accuracy": 0.4}}))
    assert rb.cached_run(path, overrides, "abc")["final"]["accuracy"] == 0.4
    assert rb.cached_run(path, overrides, "abd") is None  # other code: made again
    assert rb.cached_run(path, [*overrides, "defense=none"], "abc") is None  # other overrides
    path.write_text(json.dumps({"overrides": overrides, "final": {"accuracy": 0.4}}))
    assert rb.cached_run(path, overrides, "abc") is None  # a record that names no code is never reused

    cv = load_experiment("code_version")  # the key: every source and config file, not Markdown or results
    (tmp_path / "hffm").mkdir()
    (tmp_path / "hffm" / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(cv, "ROOT", tmp_path)
    first = cv.code_hash.__wrapped__()
    (tmp_path / "hffm" / "notes.md").write_text("words")
    (tmp_path / "experiments" / "results").mkdir(parents=True)
    (tmp_path / "experiments" / "results" / "r.py").write_text("y = 2\n")
    assert cv.code_hash.__wrapped__() == first
    (tmp_path / "hffm" / "a.py").write_text("x = 2\n")
    second = cv.code_hash.__wrapped__()
    assert second != first
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "c.yaml").write_text("k: 1\n")
    assert cv.code_hash.__wrapped__() not in (first, second)
