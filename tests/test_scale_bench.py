"""Smoke test of experiments/scale_bench.py: one tiny measurement (4 devices, 3 rounds) and its tables."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import load_experiment

pytestmark = pytest.mark.slow  # every test measures a real (tiny) benchmark run: seconds


@pytest.fixture(scope="module")
def bench():
    return load_experiment("scale_bench")


@pytest.fixture(scope="module")
def result(bench):
    threads = torch.get_num_threads()
    try:
        return bench.measure(4, rounds=3, local_steps=2, batch_size=8)
    finally:
        torch.set_num_threads(threads)  # measure() sets one thread; leave the session as it was


def test_times_and_memory_are_sane(result):
    assert result["devices"] == 4 and result["edges"] == 1 and result["rounds"] == 3
    assert len(result["round_s"]) == 3 and all(s > 0 for s in result["round_s"])
    assert result["round_s_median_steady"] == result["round_s"][1]  # rounds 2..R-1 of R = 3
    assert result["eval_s"] > 0 and result["build_s"] > 0
    assert result["min_train_samples"] >= 2
    assert 0 < result["rss_start_mb"] <= result["peak_rss_mb"]
    assert len(result["rss_after_round_mb"]) == 3
    assert result["peak_rss_mb"] >= max(result["rss_after_round_mb"])
    assert result["peak_rss_mb"] >= result["peak_build_mb"] >= result["rss_world_mb"]
    assert result["data_bytes"] > 0 and result["round_update_bytes"] > 0
    assert result["engine"]
    assert 0 < result["topology_s"] < result["build_s"] and result["channel_s"] > 0
    links = result["d2d_links"]
    assert result["channel_bytes"] == 8 * (4 + 2 * links)  # uplink gains, then a gain and a rate per link
    assert result["topology_bytes"] >= 8 * (2 * 1 + 2 * 4 + 4 + 2 * links + links)  # positions, owners, links
    # one restricted copy of the global test set per evaluated (modalities, tasks) combination
    assert result["eval_views"] >= 1 and result["eval_view_bytes"] > 0 and result["global_test_bytes"] > 0


def test_no_eval_and_participation(bench):
    threads = torch.get_num_threads()
    try:
        r = bench.measure(4, rounds=1, local_steps=1, batch_size=4, participation=0.5, evaluate=False)
    finally:
        torch.set_num_threads(threads)
    assert r["participation"] == 0.5 and r["evaluated"] is False and r["eval_s"] is None
    assert "eval_views" not in r and len(r["round_s"]) == 1


def test_state_holds_modules_not_the_trunk(bench, result):
    # Independent recount from a fresh bank: every tensor of the bank outside the trunk is a federated
    # module (the native text encoder has no frozen backbone), the trunk's are the rest.
    from hffm.run import make_world

    world = make_world(bench.bench_config(4, 3))
    sd = world.bank.state_dict()
    module_bytes = sum(v.numel() * v.element_size() for k, v in sd.items() if not k.startswith("trunk."))
    trunk_bytes = sum(v.numel() * v.element_size() for k, v in sd.items() if k.startswith("trunk."))
    assert result["bank_module_bytes"] == module_bytes
    assert result["trunk_bytes"] == trunk_bytes > 0
    groups = result["state_groups"]
    assert groups == result["edges"] == 1
    assert result["state_group_bytes"] == groups * module_bytes
    assert result["state_cloud_bytes"] == module_bytes
    assert result["state_personal_bytes"] == 0  # default policy keeps nothing personal
    assert result["state_bytes"] == result["state_expected_bytes"] == (groups + 1) * module_bytes
    assert result["trunk_in_state"] is False
    assert result["state_shares_trunk_storage"] is False
    assert result["trunk_objects_in_process"] >= 1  # this pytest process also holds the fresh world's bank
    assert result["group_module_names_equal_bank"] is True


def test_tables_are_written(bench, result, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "n4_tiny.json").write_text(json.dumps(result | {"command": "cmd --devices 4"}))
    rows = bench.write_tables(tmp_path)
    assert [r["devices"] for r in rows] == [4]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["meta"]["machine"] == bench.MACHINE and saved["meta"]["commands"] == ["cmd --devices 4"]
    md = (tmp_path / "results.md").read_text()
    assert "| tiny | 4 | 1 |" in md and "`cmd --devices 4`" in md


def test_layout_and_bad_input(bench):
    assert bench.layout(10) == (1, 10, 5000.0)
    edges, per_edge, area = bench.layout(1000)
    assert (edges, per_edge) == (100, 10) and math.isclose(area, 5000.0 * math.sqrt(10))
    with pytest.raises(ValueError, match="devices=15"):
        bench.layout(15)
    with pytest.raises(ValueError, match="--model 'huge'"):
        bench.model_config("huge")
    assert bench.model_config("tiny").width == 32
