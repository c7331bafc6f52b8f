"""Smoke test of experiments/paper_table.py at --quick sizes (2 edges x 2 devices, 2 rounds, 1 seed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_experiment


def load_script():
    return load_experiment("paper_table")


@pytest.mark.slow
def test_quick_sweep_writes_table_plot_and_json(tmp_path: Path) -> None:
    pt = load_script()
    out = tmp_path / "pt"
    results = pt.main(["--quick", "--seeds", "0", "--rounds", "2", "--presets", "default,prototype",
                       "--out", str(out), "--set", "federation.lr=0.003"])
    for name in ("results.json", "table.md", "accuracy_vs_cost.png", "accuracy_vs_cost_default.png",
                 "accuracy_vs_cost_prototype.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["overrides"][-1] == "federation.lr=0.003"
    table = (out / "table.md").read_text()
    for preset in ("default", "prototype"):
        assert f"## Preset `{preset}`" in table
        assert set(saved["runs"][preset]) == set(pt.METHODS)
        for method, runs in saved["runs"][preset].items():
            assert len(runs) == 1 and len(runs[0]["history"]) == 2
            row = results["table"][preset][method]
            assert row["latency_s"]["mean"] > 0 and row["energy_j"]["mean"] > 0
            assert 0 <= row["accuracy"]["mean"] <= 1
    for label in pt.METHODS.values():
        assert table.count(f"| {label} |") == 2, label  # one row per method and preset
    assert table.count("**PASS**") + table.count("**FAIL**") == 2 * 12
    # The prototype preset charges its fixed 6 MB model: star = 0.1 s + 48 Mbit / 4 Mbit/s per round.
    assert results["table"]["prototype"]["star"]["latency_s"]["mean"] == pytest.approx(12.1)
    # Same seed, same training: the methods without D2D learn the same under both presets.
    for method in ("star", "edge_only", "hffm"):
        acc = [results["table"][p][method]["accuracy"]["mean"] for p in ("default", "prototype")]
        assert acc[0] == pytest.approx(acc[1])
    # A rerun reuses the cached runs (same overrides) and gives the same table.
    again = pt.main(["--quick", "--seeds", "0", "--rounds", "2", "--presets", "default,prototype",
                     "--out", str(out), "--set", "federation.lr=0.003"])
    assert again["table"] == results["table"]


def test_bad_arguments_fail_naming_the_flag() -> None:
    pt = load_script()
    with pytest.raises(SystemExit):
        pt.parse_args(["--presets", "nope"])
    with pytest.raises(SystemExit):
        pt.parse_args(["--methods", "star,fedprox"])
    with pytest.raises(SystemExit, match="--seeds"):
        pt.parse_args(["--seeds", "0,x"])
    with pytest.raises(ValueError, match="preset"):
        pt.compose_config("star", "nope", 0, 2, [])


def test_compare_reports_each_change_and_the_largest():
    compare = load_experiment("paper_table_compare").compare

    def table(acc: float) -> dict:
        cell = {"accuracy": {"mean": acc}, "edge_accuracy": {"mean": 0.4}, "latency_s": {"mean": 1.0},
                "energy_j": {"mean": 2.0}}
        run = {"overrides": ["seed=0", "(engine abc at 1234567)"], "seed": 0, "history": [{"accuracy": acc}]}
        return {"command": "c", "settings": {"seeds": [0]}, "table": {"default": {"star": cell}},
                "runs": {"default": {"star": [run]}}}

    md = compare(table(0.420), table(0.413), ["screen", "robust"])
    assert "| star | 42.00 | 41.30 | -0.70 | 40.00 | 40.00 | +0.00 |" in md
    assert "Largest accuracy change: -0.70 points (default, star); 1 of 1 cells" in md and "1234567" in md
    assert "| 2 | +0 | 0: -0.70 |" in md  # the change seed by seed, last
