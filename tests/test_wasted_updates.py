"""Updates that were sent but never counted (late, rejected by the screen, dropped by the defense) are still
charged: their device spent the upload's energy and band. The edge waits for a late upload only until the deadline.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import tiny_config
from lightning.fabric import Fabric
from test_ledger import P0, _scene

from hffm.federation.charging import wasted_hops, wasted_updates
from hffm.federation.faults import FaultsConfig
from hffm.federation.loop import run_federation, tier_policy
from hffm.federation.records import DeviceResult, FaultRecord, Plan, RoundOutcome, Route
from hffm.federation.screening import Rejection
from hffm.network import DeviceUpload, Traffic, charge_round
from hffm.network.ledger import uplink_ends
from hffm.run import make_world

FABRIC = Fabric(accelerator="cpu", devices=1)


@pytest.fixture(scope="module")
def world():
    return make_world(tiny_config())


def first_round(world, **federation):
    cfg = dataclasses.replace(tiny_config(rounds=1, local_steps=1, **federation), seed=0)
    seen = []
    run_federation(FABRIC, world, cfg, loggers=[lambda m, r, plan, outcome: seen.append((m, outcome))])
    return seen[0]


def test_a_late_uplink_is_charged_in_full_but_the_edge_stops_waiting_at_the_deadline():
    net, topo, ch, cpu = _scene()
    uploads = [DeviceUpload(0, P0, 0, 2e9)]
    end = uplink_ends(net, topo, ch, cpu, Traffic(uploads))[0]
    on_time = charge_round(net, topo, ch, cpu, Traffic(uploads))
    deadline = 0.5 * (1.0 + end)  # after device 0's compute (1 s), before its uplink ends
    late = charge_round(net, topo, ch, cpu, Traffic(uploads, late=frozenset({0}), deadline_s=deadline))
    assert late.energy_j == pytest.approx(on_time.energy_j) and late.breakdown["bytes/uplink"] == P0
    assert late.latency_s == pytest.approx(deadline) and on_time.latency_s == pytest.approx(end)
    assert late.breakdown["latency/compute"] == pytest.approx(1.0)
    assert late.breakdown["latency/uplink"] == pytest.approx(deadline - 1.0)
    early = charge_round(net, topo, ch, cpu, Traffic(uploads, late=frozenset({0}), deadline_s=0.5))  # before compute
    assert early.latency_s == pytest.approx(0.5) and early.energy_j == pytest.approx(on_time.energy_j)
    with pytest.raises(ValueError, match="deadline_s"):
        Traffic(uploads, late=frozenset({0}))


def test_late_devices_uploads_are_charged_and_the_round_ends_at_the_deadline(world):
    clean, _ = first_round(world, deadline_s=1e9)
    metrics, outcome = first_round(world, deadline_quantile=0.5)
    assert outcome.faults.late
    assert metrics["cost/bytes/uplink"] == clean["cost/bytes/uplink"]  # every upload was sent
    assert metrics["cost/energy/uplink"] == pytest.approx(clean["cost/energy/uplink"])  # same uploaders, same bands
    assert metrics["cost/latency_s"] < clean["cost/latency_s"]  # but the edges stopped waiting at the deadline


@pytest.mark.parametrize("d2d", ["none", "relay", "tree", "gossip"])
def test_rejected_updates_are_charged_as_sent(world, d2d):
    clean, _ = first_round(world, d2d=d2d)
    metrics, outcome = first_round(world, d2d=d2d, max_update_norm=1e-12)  # the screen rejects every update
    assert metrics["faults/rejected_updates"] > 0 and not outcome.routes and not outcome.transfers
    if d2d == "none":
        assert metrics["cost/bytes/uplink"] == clean["cost/bytes/uplink"]
        assert metrics["cost/energy_j"] == pytest.approx(clean["cost/energy_j"])
    elif d2d == "relay":  # relayed clients still sent theirs over D2D; each relay uploads only its own
        assert metrics["cost/bytes/d2d"] == clean["cost/bytes/d2d"]
        assert 0 < metrics["cost/bytes/uplink"] <= clean["cost/bytes/uplink"]
    else:  # every sender's first hop: a tree node's to its parent, a gossip member's own uplink
        assert metrics["cost/bytes/uplink"] + metrics["cost/bytes/d2d"] > 0


def test_rejected_updates_are_charged_in_the_star_baseline(world):
    clean, _ = first_round(world, mode="star")
    metrics, _ = first_round(world, mode="star", max_update_norm=1e-12)
    assert metrics["faults/rejected_updates"] > 0
    assert metrics["cost/bytes/backhaul"] == clean["cost/bytes/backhaul"] > 0


def test_the_wasted_updates_are_the_late_rejected_and_edge_defended_ones(world):
    policy = tier_policy(tiny_config().federation)
    shared = [m for m in world.bank.names() if policy.shared(world.bank.kind(m))]
    personal = [m for m in world.bank.names() if not policy.shared(world.bank.kind(m))]
    results = tuple(DeviceResult(d, (shared[0], *personal[:1]), {}) for d in range(4))
    outcome = RoundOutcome(
        0, results, (Route(0, (shared[0],), 0),), (), False, np.zeros(2),
        rejected=(Rejection(1, shared[0], "not finite"),), faults=FaultRecord(late=(2,), deadline_s=1.0),
        defended=(Rejection(3, shared[0], "distrusted"),),
        cloud_defended=(Rejection(0, shared[0], "far from consensus"),))  # an edge's update: not a device's send
    assert wasted_updates(world, policy, outcome) == {1: (shared[0],), 2: (shared[0],), 3: (shared[0],)}


def test_a_wasted_update_goes_as_far_as_its_first_hop():
    plan = Plan({0: ["a"], 1: ["a"], 2: ["a"], 3: ["a"]}, relay={0: 0, 1: 0, 2: 2, 3: 3}, parent={3: 2})
    routes = [Route(2, ("b",), 2)]  # device 2's other update counted: the wasted one rides on its uplink
    hops, transfers = wasted_hops({1: ("a",), 2: ("a",), 3: ("a",), 0: ("a",)}, plan, routes)
    assert hops == [Route(1, ("a",), 0), Route(2, ("a",), 2), Route(0, ("a",), 0)]
    assert [(t.src, t.dst, t.modules, t.step) for t in transfers] == [(3, 2, ("a",), 0)]


def test_dropped_devices_still_send_nothing(world):
    cfg = dataclasses.replace(tiny_config(rounds=1, local_steps=1), seed=0, faults=FaultsConfig(dropout=1.0))
    seen = []
    run_federation(FABRIC, world, cfg, loggers=[lambda m, r, plan, outcome: seen.append(m)])
    assert seen[0]["cost/bytes/uplink"] == 0 and seen[0]["cost/energy/compute"] > 0
