"""Real offline wandb runs, read back from disk.

wandb 0.31 offline writes no files/config.yaml or files/wandb-summary.json (those come from a sync);
everything it logged is in the run's ``run-*.wandb`` transaction log (LevelDB-log framing around
protobuf ``Record`` messages, the format ``wandb sync`` reads), which ``read_records`` decodes here,
plus the media files it copied under ``files/media``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config

from hffm.federation.records import Plan, RoundOutcome, Route
from hffm.logging.wandb_logger import WandbLogger

BLOCK = 32768


def read_records(path: Path) -> list:
    """Every Record in a .wandb file: 7-byte header, then chunks (crc32, length, type) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # too little room for a chunk header: the block is padded
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk ends a record
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def offline_run(out_dir: Path) -> Path:
    runs = sorted((out_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0]


def put(target: dict, item) -> None:
    """Store a summary/history item: a plain key, or a path of keys into a nested value (an image's fields)."""
    *parents, last = [item.key] if item.key else list(item.nested_key)
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = json.loads(item.value_json)


def run_contents(run_dir: Path) -> dict:
    """config (nested dict), summary (flat, last value), history (list of flat rows), metric definitions."""
    # wandb's service may still be flushing the log when finish() returns on a busy machine: wait for it.
    deadline = time.monotonic() + 60
    while True:
        try:
            records = read_records(next(run_dir.glob("run-*.wandb")))
        except Exception:  # a log still being written: header or last record incomplete
            if time.monotonic() > deadline:
                raise
            records = []
        kinds = [r.WhichOneof("record_type") for r in records]
        if kinds.count("exit") == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert kinds.count("exit") == 1, "the run was not finished"
    config, summary, history, metrics = {}, {}, [], {}
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind == "run":
            config = {i.key: json.loads(i.value_json) for i in r.run.config.update}
        elif kind == "summary":
            for i in r.summary.update:
                put(summary, i)
        elif kind == "history":
            row: dict = {}
            for i in r.history.item:
                put(row, i)
            history.append(row)
        elif kind == "metric":
            metrics[r.metric.name or r.metric.glob_name] = r.metric.step_metric
    return {"config": config, "summary": summary, "history": history, "metrics": metrics}


@pytest.mark.slow
def test_offline_run_through_train(tmp_path, monkeypatch):
    from hffm.run import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = tiny_config(rounds=2, local_steps=2)
    cfg.logger.kind = "wandb"
    cfg.logger.tags = ["unit-test"]
    cfg.plots = True
    out = tmp_path / "run"
    result = train(cfg, out)
    final = result.history[-1]

    run_dir = offline_run(out)
    got = run_contents(run_dir)
    assert got["config"]["name"] == cfg.name
    assert got["config"]["model"]["width"] == 32
    assert got["config"]["federation"]["rounds"] == 2
    assert got["config"]["topology"]["num_edges"] == 2
    assert got["config"]["logger"]["tags"] == ["unit-test"]

    summary = got["summary"]
    assert summary["final/accuracy"] == pytest.approx(final["accuracy"])
    assert summary["final/cum_latency_s"] == pytest.approx(final["cost/cum_latency_s"])
    assert summary["final/cum_energy_j"] == pytest.approx(final["cost/cum_energy_j"])
    assert summary["final/cum_latency_s"] == pytest.approx(sum(r["cost/latency_s"] for r in result.history))

    rounds = [h for h in got["history"] if "accuracy" in h]
    assert [h["round"] for h in rounds] == [1.0, 2.0]
    assert rounds[-1]["vs_latency/accuracy"] == pytest.approx(final["accuracy"])
    assert got["metrics"]["vs_latency/*"] == "cost/cum_latency_s"
    assert got["metrics"]["vs_energy/*"] == "cost/cum_energy_j"
    assert got["metrics"]["*"] == "round"

    media = run_dir / "files" / "media"
    maps = list((media / "images" / "plan").glob("topology_*.png"))
    assert len(maps) == 1, "no relays in this run: one map on the first round only"
    plot_names = {p.name.rsplit("_", 2)[0] for p in (media / "images" / "plots").glob("*.png")}
    assert {"learning_curves", "cost_per_round", "cost_cumulative", "accuracy_vs_cost", "topology"} <= plot_names
    assert all(p.stat().st_size > 1000 for p in (media / "images").rglob("*.png"))
    tables = sorted((media / "table" / "plan").glob("devices_*.table.json"))
    assert len(tables) == 2, "first and last round"
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["device", "edge", "relay", "bandwidth_hz", "num_modules", "modules"]
    assert len(table["data"]) == 4


def plans(n: int) -> list[tuple[Plan, RoundOutcome]]:
    """Five rounds: no relay, no relay, 0 -> 1, 0 -> 1 again, none; solver bandwidth every round."""
    relay_at = {3: {0: 1}, 4: {0: 1}}
    out = []
    for t in range(1, 6):
        relay = {d: relay_at.get(t, {}).get(d, d) for d in range(n)}
        bandwidth = np.where(np.array([relay[d] == d for d in range(n)]), 0.5e6 * t, 0.0)
        placement = {d: ["head/object", "expert/0"] if d % 2 else ["head/object"] for d in range(n)}
        routes = tuple(Route(d, tuple(placement[d]), relay[d]) for d in range(n))
        outcome = RoundOutcome(t - 1, (), routes, (), False, np.zeros(1))
        out.append((Plan(placement, relay, bandwidth, info={"solver_used": 1.0}), outcome))
    return out


@pytest.fixture(scope="module")
def world():
    from hffm.run import make_world

    return make_world(tiny_config())


def test_plan_summary_tables_and_maps(tmp_path, monkeypatch, world):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = dataclasses.replace(tiny_config(rounds=5), name="plan-test")
    logger = WandbLogger(cfg, tmp_path, world, table_every=3)
    n = world.num_devices
    for t, (plan, outcome) in enumerate(plans(n), start=1):
        metrics = {"round": float(t), "accuracy": 0.1 * t, "cost/cum_latency_s": 2.0 * t, "cost/cum_energy_j": 3.0 * t}
        logger(metrics, t, plan, outcome)
    logger.finish([metrics])
    run_dir = offline_run(tmp_path)
    got = run_contents(run_dir)

    by_round = {h["round"]: h for h in got["history"]}
    assert by_round[1.0]["plan/placed/head"] == n and by_round[1.0]["plan/placed/expert"] == n // 2
    assert [by_round[t]["plan/relayed_devices"] for t in (1.0, 2.0, 3.0, 4.0, 5.0)] == [0, 0, 1, 1, 0]
    hist = by_round[3.0]["plan/bandwidth_share"]
    assert hist["_type"] == "histogram" and sum(hist["values"]) == n
    assert max(hist["bins"]) == pytest.approx(1.5e6 / world.network.channel.edge_bandwidth_hz)

    # maps on the first round and whenever the relay links change (rounds 1, 3, 5), not every round
    maps = [h for h in got["history"] if "plan/topology" in h]
    assert [h["round"] for h in maps] == [1.0, 3.0, 5.0]
    assert len(list((run_dir / "files" / "media" / "images" / "plan").glob("topology_*.png"))) == 3
    assert sorted(p.name for p in (tmp_path / "plots" / "relays").glob("*.png")) == [
        "topology_round_0001.png", "topology_round_0003.png", "topology_round_0005.png"]

    # tables on the first round, every table_every rounds, and the last round
    assert [h["round"] for h in got["history"] if "plan/devices" in h] == [1.0, 3.0, 5.0]
    table = json.loads(sorted((run_dir / "files" / "media" / "table" / "plan").glob("*.table.json"))[1].read_text())
    assert [row[:3] for row in table["data"] if row[0] == 0] == [[0, int(world.topology.device_edge[0]), 1]]
    assert got["summary"]["final/accuracy"] == pytest.approx(0.5)
    assert got["summary"]["accuracy"] == {"max": pytest.approx(0.5), "last": pytest.approx(0.5)}


def test_disabled_mode_writes_nothing(tmp_path, monkeypatch, world):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = tiny_config()
    cfg.logger.mode = "disabled"
    logger = WandbLogger(cfg, tmp_path, world)
    assert not logger.enabled
    for t, (plan, outcome) in enumerate(plans(world.num_devices), start=1):
        logger({"round": float(t), "accuracy": 0.5}, t, plan, outcome)
    logger.log_images([])
    logger.finish([{"round": 5.0, "accuracy": 0.5}])
    assert not (tmp_path / "wandb").exists()
    assert not (tmp_path / "plots").exists(), "no topology maps are drawn for a disabled run"


def test_env_mode_wins_over_config(tmp_path, monkeypatch, world):
    """A CI job's WANDB_MODE=disabled must hold even where the config says offline."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = tiny_config()
    cfg.logger.mode = "offline"
    logger = WandbLogger(cfg, tmp_path, world)
    logger.finish()
    assert not logger.enabled and not (tmp_path / "wandb").exists()


def test_bad_table_every(tmp_path, world):
    with pytest.raises(ValueError, match="table_every"):
        WandbLogger(tiny_config(), tmp_path, world, table_every=-1)
