
import numpy as np
import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.loop import run_federation
from hffm.run import make_world, train


def _fabric():
    return Fabric(accelerator="cpu", devices=1)


def _states_equal(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for name in a:
        for key in a[name]:
            if atol:
                torch.testing.assert_close(a[name][key], b[name][key], atol=atol, rtol=0)
            else:
                assert torch.equal(a[name][key], b[name][key]), (name, key)


def test_a_module_no_device_holds_is_never_changed():
    cfg = tiny_config(e_agg=0, rounds=2)
    cfg.data.partition.modality_sets = [["image"], ["text"]]  # nobody senses iq
    cfg.data.partition.task_sets = [["object"], ["color"]]
    world = make_world(cfg)
    before = world.bank.state_of(world.bank.names())
    result = run_federation(_fabric(), world, cfg)
    for group in result.state.group_states:
        for name in ("encoder/iq", "head/modulation", "head/snr", "prompt/snr"):
            for key, value in before[name].items():
                assert torch.equal(group[name][key], value), name
        changed = any(not torch.equal(group["encoder/image"][k], v) for k, v in before["encoder/image"].items())
        changed |= any(not torch.equal(group["encoder/text"][k], v) for k, v in before["encoder/text"].items())
        assert changed


def test_cloud_rounds_follow_e_agg_and_bring_edges_together():
    cfg = tiny_config(e_agg=2, rounds=4)
    world = make_world(cfg)
    result = run_federation(_fabric(), world, cfg)
    assert [h["cloud_round"] for h in result.history] == [0.0, 1.0, 0.0, 1.0]
    edges = result.state.group_states
    _states_equal(edges[0], edges[1])  # the last round was a cloud round: every edge holds the cloud's modules
    assert [h["cost/bytes/backhaul"] > 0 for h in result.history] == [False, True, False, True]


def test_edge_only_keeps_clusters_apart():
    cfg = tiny_config(e_agg=0, rounds=2)
    result = run_federation(_fabric(), make_world(cfg), cfg)
    a, b = result.state.group_states
    assert any(not torch.equal(a["adapter/0"][k], b["adapter/0"][k]) for k in a["adapter/0"])
    assert all(h["cost/bytes/backhaul"] == 0 for h in result.history)


def test_same_seed_same_numbers_and_resume_matches_an_uninterrupted_run(tmp_path):
    full_cfg = tiny_config(e_agg=2, rounds=4)
    full = run_federation(_fabric(), make_world(full_cfg), full_cfg, out_dir=tmp_path / "full")
    again = run_federation(_fabric(), make_world(full_cfg), full_cfg)
    _states_equal(full.state.group_states[0], again.state.group_states[0])

    first = full_cfg.replace(federation={"rounds": 3})
    run_federation(_fabric(), make_world(full_cfg), first, out_dir=tmp_path / "part")
    ckpt = tmp_path / "part" / "checkpoints" / "federation.pt"
    assert ckpt.is_file()
    resumed_cfg = full_cfg.replace(federation={"resume": str(ckpt)})
    resumed = run_federation(_fabric(), make_world(full_cfg), resumed_cfg)
    assert len(resumed.history) == 4
    for g in range(2):
        _states_equal(full.state.group_states[g], resumed.state.group_states[g])
    _states_equal(full.state.cloud_state, resumed.state.cloud_state)
    drop = ("time/round_s", "plan/solve_s")
    strip = lambda h: {k: v for k, v in h.items() if k not in drop}  # noqa: E731
    assert [strip(h) for h in full.history] == [strip(h) for h in resumed.history]


def test_resume_from_a_missing_checkpoint_names_the_field():
    cfg = tiny_config()
    with pytest.raises(FileNotFoundError, match="federation.resume"):
        run_federation(_fabric(), make_world(cfg), cfg.replace(federation={"resume": "/nope.pt"}))


@pytest.mark.parametrize(
    "overrides",
    [
        {"mode": "star"},
        {"mode": "local"},
        {"mode": "hierarchical", "e_agg": 0},
        {"mode": "hierarchical", "e_agg": 1, "rule": "median"},
        {"mode": "hierarchical", "e_agg": 1, "rule": "clip", "max_norm": 0.5},
    ],
)
def test_baselines_run_and_report_every_tier(overrides):
    cfg = tiny_config(rounds=1, **overrides)
    result = run_federation(_fabric(), make_world(cfg), cfg)
    last = result.history[-1]
    assert 0.0 <= last["accuracy"] <= 1.0
    assert last["cost/latency_s"] > 0 and last["cost/energy_j"] > 0
    assert ("edge/object/acc" in last) == (cfg.federation.mode != "local")
    if cfg.federation.mode == "local":
        assert last["cost/bytes/uplink"] == 0


def test_d2d_gossip_uploads_once_per_cluster():
    cfg = tiny_config(e_agg=1, rounds=1, d2d="gossip", cons_rounds=3)
    cfg.data.partition.modality_sets = [["image", "text", "iq"]]  # every device holds every module
    cfg.data.partition.task_sets = [["object", "color", "modulation", "snr"]]
    world = make_world(cfg)
    result = run_federation(_fabric(), world, cfg)
    last = result.history[-1]
    assert last["cost/bytes/d2d"] > 0
    assert last["cost/count/uploaders"] == 2  # clusters are D2D-connected: one uploader each
    plain = run_federation(_fabric(), make_world(cfg), cfg.replace(federation={"d2d": "none"}))
    assert plain.history[-1]["cost/count/uploaders"] == 4
    assert last["cost/bytes/uplink"] < plain.history[-1]["cost/bytes/uplink"]


def test_train_writes_run_outputs(tmp_path):
    cfg = tiny_config(rounds=2, checkpoint_every=1)
    cfg.logger.kind = "csv"
    train(cfg, tmp_path)
    for name in ("config.json", "metrics.csv", "metrics.json", "summary.json", "checkpoints/federation.pt"):
        assert (tmp_path / name).is_file(), name
    assert np.isfinite(float((tmp_path / "metrics.csv").read_text().splitlines()[-1].split(",")[1]))


def test_d2d_fetch_starts_a_device_from_its_neighbours_trained_personal_module():
    cfg = tiny_config(rounds=4, participation=0.5, d2d_fetch=True, d2d="relay")
    cfg.federation.policy = {"encoder": "personal", "prompt": "hierarchical", "expert": "hierarchical",
                             "adapter": "hierarchical", "head": "hierarchical"}
    cfg.data.partition.modality_sets = [["image", "text", "iq"]]
    result = run_federation(_fabric(), make_world(cfg), cfg)
    # later rounds' newcomers fetch encoders over D2D from earlier rounds' trainers; in round 1 nobody has one
    assert result.history[0]["cost/bytes/d2d"] == 0
    assert any(h["cost/bytes/d2d"] > 0 for h in result.history[1:])


def test_d2d_tree_learns_what_direct_uploads_learn_with_one_upload_per_cluster():
    cfg = tiny_config(e_agg=1, rounds=2, d2d="tree")
    tree = run_federation(_fabric(), make_world(cfg), cfg)
    plain = run_federation(_fabric(), make_world(cfg), cfg.replace(federation={"d2d": "none"}))
    _states_equal(tree.state.cloud_state, plain.state.cloud_state, atol=1e-5)
    for t, p in zip(tree.history, plain.history):
        assert t["cost/count/uploaders"] == 2 and p["cost/count/uploaders"] == 4
        assert t["cost/bytes/d2d"] > 0 and t["cost/bytes/uplink"] < p["cost/bytes/uplink"]


def test_the_round_outcome_records_the_d2d_tree_links_for_the_topology_map():
    cfg = tiny_config(e_agg=1, rounds=1, d2d="tree")
    world = make_world(cfg)
    result = run_federation(_fabric(), world, cfg)
    links = result.last_outcome.relay_links()
    assert links == sorted((d, p) for d, p in result.last_plan.parent.items() if d != p)  # the plan's tree ran
    assert len(links) == 2  # two clusters of two linked devices: one child -> root link each
    assert all(world.topology.linked(a, b) for a, b in links)
