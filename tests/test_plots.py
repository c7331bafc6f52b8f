"""Run plots from a hand-made history and a small drawn topology: every file is a real, non-empty PNG."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hffm.federation.records import RoundOutcome, Route
from hffm.network.config import TopologyConfig
from hffm.network.topology import make_topology
from hffm.plots import (
    eval_tasks,
    link_kinds,
    plot_accuracy_vs_cost,
    plot_costs_per_round,
    plot_learning_curves,
    plot_topology,
    save_run_plots,
)

PNG = b"\x89PNG\r\n\x1a\n"
KINDS = ("compute", "uplink", "d2d", "backhaul", "downlink")


def history(rounds: int = 4, eval_every: int = 1, scale: float = 1.0) -> list[dict[str, float]]:
    """Rounds shaped like the loop's metrics: costs per link kind and tier, evaluation every few rounds."""
    rows, cum_t, cum_e = [], 0.0, 0.0
    for t in range(1, rounds + 1):
        lat = {k: scale * 0.1 * (i + 1) for i, k in enumerate(KINDS)}
        energy = {k: scale * 0.2 * (i + 1) for i, k in enumerate(KINDS)}
        cum_t += sum(lat.values())
        cum_e += sum(energy.values())
        row = {"round": float(t), "train/loss": 2.0 / t, "train/object/loss": 2.0 / t, "train/snr/loss": 1.0 / t,
               "cost/latency_s": sum(lat.values()), "cost/energy_j": sum(energy.values()),
               "cost/cum_latency_s": cum_t, "cost/cum_energy_j": cum_e,
               "cost/energy/device": 1.0, "cost/energy/edge": 1.0, "cost/energy/cloud": 1.0,
               "cost/bytes/uplink": 1e5}
        row |= {f"cost/latency/{k}": v for k, v in lat.items()} | {f"cost/energy/{k}": v for k, v in energy.items()}
        if t % eval_every == 0 or t == rounds:
            acc = 0.2 + 0.1 * t
            row |= {"accuracy": acc, "global/object/acc": acc, "device/object/acc": acc + 0.05,
                    "edge/object/acc": acc, "edge/object/acc@image": acc, "global/snr/mae": 1.0 / t,
                    "device/snr/mae": 1.1 / t}
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def topology():
    return make_topology(TopologyConfig(num_edges=3, devices_per_edge=3), np.random.default_rng(0))


def is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG)


@pytest.fixture(scope="module")
def world():
    from conftest import tiny_config

    from hffm.run import make_world

    return make_world(tiny_config())


def test_chance_levels_and_units_come_from_the_data(world):
    from hffm.plots import task_chance_and_units

    chance, units = task_chance_and_units(world)
    assert chance == {"object": pytest.approx(1 / 6), "color": pytest.approx(1 / 4), "modulation": pytest.approx(1 / 4)}
    assert units == {"snr": ("dB", pytest.approx(12.5))}  # the benchmark maps -5..20 dB onto -1..1


@pytest.mark.slow
def test_save_run_plots_writes_every_plot(tmp_path, world):
    paths = save_run_plots(history(eval_every=2), world, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(["learning_curves.png", "train_loss.png", "cost_per_round.png", "cost_cumulative.png",
                            "accuracy_vs_cost.png", "topology.png"])
    assert all(p.parent == tmp_path / "plots" and is_png(p) for p in paths)


def test_eval_tasks_picks_headline_metric_per_task():
    assert eval_tasks(history()) == {"object": "acc", "snr": "mae"}


def test_tier_keys_are_not_stacked_withlink_kinds(tmp_path):
    """cost/energy/<tier> splits the same energy again: stacking it would double the bars."""
    assert link_kinds(history(), "energy") == sorted(KINDS)
    assert plot_costs_per_round(history(), tmp_path / "c.png") is not None


def test_plots_with_nothing_to_draw_are_skipped(tmp_path):
    evaluated = ("accuracy", "global/", "edge/", "device/")
    no_eval = [{k: v for k, v in r.items() if not k.startswith(evaluated)} for r in history()]
    assert plot_learning_curves(no_eval, tmp_path / "l.png") is None
    assert not (tmp_path / "l.png").exists()
    with pytest.raises(ValueError, match="history is empty"):
        save_run_plots([], SimpleNamespace(topology=None), tmp_path)


def test_accuracy_vs_cost_several_methods(tmp_path):
    out = plot_accuracy_vs_cost({"hffm": history(), "star": history(scale=3.0)}, tmp_path / "cmp.png")
    assert out is not None and is_png(out)
    with pytest.raises(TypeError, match="dict of method name"):
        plot_accuracy_vs_cost([history()], tmp_path / "bad.png")


def test_topology_with_relays(tmp_path, topology):
    cluster = [int(d) for d in topology.cluster(0)]
    relay = {d: d for d in range(topology.num_devices)}
    relay[cluster[0]] = cluster[1]
    routes = tuple(Route(d, ("head/object",), r) for d, r in relay.items())
    outcome = RoundOutcome(0, (), routes, (), False, np.zeros(topology.num_edges))
    assert outcome.relay_links() == [(cluster[0], cluster[1])]
    plain = plot_topology(topology, path=tmp_path / "plain.png")
    relayed = plot_topology(topology, outcome, path=tmp_path / "relayed.png")
    assert is_png(plain) and is_png(relayed)
    assert plain.read_bytes() != relayed.read_bytes()
    with pytest.raises(TypeError, match="path="):
        plot_topology(topology, tmp_path / "oops.png")
