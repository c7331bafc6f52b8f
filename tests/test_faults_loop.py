"""Faults and attacks through the real round loop (tiny config): each fault does what it says, is charged by the
ledger and recorded in the round outcome; the deadline cuts exactly who the ledger's timeline says is late."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.fault_steps import round_deadline, round_faults
from hffm.federation.faults import FaultsConfig, attackers
from hffm.federation.loop import run_federation, tier_policy
from hffm.federation.records import Plan
from hffm.federation.traffic import module_cycles, samples_per_round
from hffm.network.ledger import DeviceUpload, Traffic, uplink_ends
from hffm.run import make_world

FABRIC = Fabric(accelerator="cpu", devices=1)


@pytest.fixture(scope="module")
def world():
    return make_world(tiny_config())


def run(world, faults=None, rounds=1, **federation):
    cfg = tiny_config(rounds=rounds, local_steps=1, **federation)
    cfg = dataclasses.replace(cfg, seed=0, faults=faults or cfg.faults)
    seen = []
    result = run_federation(FABRIC, world, cfg,
                            loggers=[lambda m, r, plan, outcome: seen.append((m, plan, outcome))])
    return result, seen


def sent_by(outcome) -> set[int]:
    return {r.device for r in outcome.routes} | {t.src for t in outcome.transfers}


def test_faults_off_record_nothing_and_same_seed_gives_same_faults(world):
    _, clean = run(world)
    metrics, _, outcome = clean[0]
    assert outcome.faults.silent == frozenset() and not outcome.faults.moved
    assert all(metrics[k] == 0 for k in metrics if k.startswith("faults/"))
    faults = FaultsConfig(dropout=0.5, straggler=0.5, edge_outage=0.3, attack="signflip", attack_fraction=0.25)
    a = [o.faults for _, _, o in run(world, faults, rounds=3)[1]]
    b = [o.faults for _, _, o in run(world, faults, rounds=3)[1]]
    assert a == b and any(f.drawn.dropped or f.drawn.slowdown or f.drawn.down_edges for f in a)


def test_dropped_devices_train_but_send_nothing(world):
    _, seen = run(world, FaultsConfig(dropout=0.5))
    metrics, plan, outcome = seen[0]
    dropped = outcome.faults.drawn.dropped
    assert dropped and dropped < set(plan.participants)
    assert {r.device for r in outcome.results} == set(plan.participants)  # trained (and charged compute)
    assert sent_by(outcome) == set(plan.participants) - dropped
    assert metrics["faults/dropped"] == len(dropped) and metrics["cost/count/uploads"] == len(plan.participants)
    assert metrics["cost/count/uploaders"] == len(plan.participants) - len(dropped)


def test_stragglers_compute_longer_and_are_charged_for_it(world):
    _, clean = run(world)
    _, slow = run(world, FaultsConfig(straggler=1.0, straggler_slowdown=3.0))
    (m0, _, _), (m1, plan, outcome) = clean[0], slow[0]
    assert set(outcome.faults.drawn.slowdown) == set(plan.participants) and m1["faults/slowed"] == 4
    assert m1["cost/energy/compute"] == pytest.approx(3 * m0["cost/energy/compute"])
    assert m1["cost/latency/compute"] == pytest.approx(3 * m0["cost/latency/compute"])


def test_a_failed_relay_sends_nothing_and_its_clients_upload_directly(world):
    cfg = tiny_config(d2d="relay")
    plan = Plan({0: ["a"], 1: ["a"], 2: ["a"]}, {0: 0, 1: 0, 2: 2})
    net = _plain_net(world)
    new, record = round_faults(world, net, plan, cfg.federation, FaultsConfig(relay_failure=1.0),
                               tier_policy(cfg.federation), 0, 0, (), frozenset())
    assert record.drawn.failed_relays == {0} and record.silent == {0}
    assert dict(new.relay) == {0: 0, 1: 1, 2: 2}  # device 1 falls back to a direct upload
    # through the loop (tree mode: parents are the relays): failed ones send nothing, the rest still arrive
    _, seen = run(world, FaultsConfig(relay_failure=1.0), d2d="tree")
    metrics, plan, outcome = seen[0]
    parents = outcome.faults.drawn.failed_relays
    assert len(parents) == 2  # one parent in each 2-device cluster's tree, and each failed
    assert all(p == d for d, p in plan.parent.items())  # the round's plan: their children upload directly
    assert sent_by(outcome) == set(plan.participants) - parents and metrics["faults/failed_relays"] == len(parents)


def _plain_net(world):
    from hffm.federation.fault_steps import RoundNetwork

    return RoundNetwork(np.asarray(world.topology.device_edge), world.topology,
                        world.draw_channel(np.random.default_rng(0)))


@pytest.mark.parametrize(("reattach", "d2d"), [(True, "none"), (True, "gossip"), (False, "none")])
def test_an_edge_outage_moves_or_skips_its_devices(world, reattach, d2d):
    # with gossip, both devices of the down edge move to the other edge and still gossip over their D2D link
    _, seen = run(world, FaultsConfig(edge_outage=0.5, reattach=reattach), rounds=4, d2d=d2d)
    hit = [(m, o) for m, _, o in seen if len(o.faults.drawn.down_edges) == 1]
    assert hit, "no round with exactly one edge down at this seed"
    metrics, outcome = hit[0]
    (down,) = outcome.faults.drawn.down_edges
    victims = set(np.flatnonzero(world.topology.device_edge == down).tolist())
    if reattach:
        assert dict(outcome.faults.moved) == {d: 1 - down for d in victims} and not outcome.faults.stranded
        assert victims <= sent_by(outcome) and metrics["faults/reattached"] == len(victims)
        if d2d == "gossip":
            assert any({t.src, t.dst} == victims for t in outcome.transfers)
    else:
        assert set(outcome.faults.stranded) == victims and not outcome.faults.moved
        assert not victims & {r.device for r in outcome.results} and metrics["faults/stranded"] == len(victims)


def test_the_deadline_cuts_exactly_who_the_ledger_says_is_late(world):
    cfg = tiny_config(rounds=1, local_steps=1)
    policy = tier_policy(cfg.federation)
    channel = world.draw_channel(np.random.default_rng(0))  # the loop's first draw at seed 0 (full participation)
    uploads = []
    for d in range(world.num_devices):
        trained = list(world.bank.required_modules(world.parts[d].modalities, world.parts[d].tasks))
        shared = [m for m in trained if policy.shared(world.bank.kind(m))]
        cycles = samples_per_round(world, cfg.federation, d) * sum(module_cycles(world, m) for m in trained)
        uploads.append(DeviceUpload(d, int(sum(world.module_bytes[m] for m in shared)), d, cycles))
    ends = uplink_ends(world.network, world.topology, channel, world.cpu_hz, Traffic(uploads))
    deadline = float(np.median(list(ends.values())))
    late = {d for d, end in ends.items() if end > deadline}
    assert 0 < len(late) < world.num_devices
    _, seen = run(world, None, deadline_s=deadline)
    metrics, plan, outcome = seen[0]
    assert set(outcome.faults.late) == late and metrics["faults/stragglers"] == len(late)
    assert sent_by(outcome) == set(plan.participants) - late
    assert {r.device for r in outcome.results} == set(plan.participants)  # the late ones trained (charged compute)


def test_a_deadline_quantile_cuts_the_slowest_share_of_each_round(world):
    # The same round as above, its deadline derived from its own arrivals: the quantile of the ledger's ends.
    _, fixed = run(world, None, deadline_s=1e9)
    assert not fixed[0][2].faults.late and fixed[0][0]["faults/deadline_s"] == 1e9
    _, seen = run(world, None, rounds=2, deadline_quantile=0.5)
    for metrics, plan, outcome in seen:
        late = set(outcome.faults.late)
        assert 0 < len(late) < len(plan.participants) and metrics["faults/stragglers"] == len(late)
        assert sent_by(outcome) == set(plan.participants) - late
        assert metrics["faults/deadline_s"] == outcome.faults.deadline_s
    # at the median of round 0's arrivals, a fixed deadline cuts the same devices
    _, same = run(world, None, deadline_s=seen[0][2].faults.deadline_s)
    assert same[0][2].faults.late == seen[0][2].faults.late
    _, everyone = run(world, None, deadline_quantile=1.0)
    assert not everyone[0][2].faults.late


def test_round_deadline_is_the_quantile_of_the_arrivals():
    ends = {3: 1.0, 5: 4.0, 7: 2.0, 9: 3.0}
    assert round_deadline(ends, 1.0) == 4.0 and round_deadline(ends, 0.5) == 2.5
    assert round_deadline({}, 0.9) is None


@pytest.mark.parametrize(("federation", "message"), [
    ({"deadline_quantile": 0.0}, "federation.deadline_quantile=0.0: must be in (0, 1]"),
    ({"deadline_quantile": 1.5}, "federation.deadline_quantile=1.5: must be in (0, 1]"),
    ({"deadline_quantile": 0.9, "deadline_s": 2.0}, "are both set: keep one"),
    ({"deadline_quantile": 0.9, "mode": "star", "e_agg": 1}, "deadline_quantile is set but mode=star"),
])
def test_a_bad_deadline_quantile_names_the_key(federation, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_config(**federation)


def test_a_bad_deadline_quantile_is_refused_at_compose_time():
    from hffm.config import compose
    from hffm.config_checks import ConfigError

    with pytest.raises(ConfigError, match=re.escape("federation.deadline_quantile=2.0: must be in (0, 1]")):
        compose("federation.deadline_quantile=2.0")


@pytest.mark.parametrize("attack", ["nan", "inf", "signflip"])
def test_attackers_poison_their_updates_and_the_screen_keeps_non_finite_ones_out(world, attack):
    faults = FaultsConfig(attack=attack, attack_fraction=0.25, attack_scale=5.0)
    bad = attackers(faults, world.num_devices, 0)
    clean, _ = run(world, rounds=2)
    result, seen = run(world, faults, rounds=2)
    assert all(set(o.faults.attackers) == bad for _, _, o in seen)
    for group in result.state.group_states:
        assert all(torch.isfinite(v).all() for s in group.values() for v in s.values() if v.is_floating_point())
    if attack == "signflip":
        assert result.history[-1]["faults/rejected_updates"] == 0
        moved = [not torch.equal(a, b) for s, c in zip(result.state.cloud_state.values(),
                                                         clean.state.cloud_state.values(), strict=True)
                 for a, b in zip(s.values(), c.values(), strict=True)]
        assert any(moved)  # the poison reached the (mean) aggregate
    else:
        assert {r.node for _, _, o in seen for r in o.rejected} == bad
        assert result.history[-1]["faults/cum_rejected_updates"] > 0
        assert all(math.isfinite(v) for v in result.history[-1].values())


@pytest.mark.slow
def test_hffm_train_with_nan_attackers_finishes_finite_and_says_what_it_rejected(tmp_path):
    from test_cli_sweep import TINY, hffm_train

    done = hffm_train([*TINY, "faults.attack=nan", "faults.attack_fraction=0.25", "federation.rounds=2",
                       "logger=csv", "plots=false", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rejected = int(summary["faults/cum_rejected_updates"])  # the attacker's module updates, both rounds
    assert all(math.isfinite(v) for v in summary.values()) and rejected > 0 and summary["faults/attackers"] == 1
    line = [x for x in (done.stdout + done.stderr).splitlines() if "finished demo" in x]
    assert len(line) == 1 and f"updates lost: {rejected} rejected by the screen" in line[0], line
    for key, words in (("defense/cum_dropped_updates", "dropped by the defense"), ("faults/cum_stragglers", "late"),
                       ("faults/cum_dropped", "from dropped devices")):
        assert f"{int(summary.get(key, 0))} {words}" in line[0], line  # the closing line reports every loss


def test_every_fault_at_once_with_a_d2d_tree_and_fetches(world):
    faults = FaultsConfig(dropout=0.3, straggler=0.3, relay_failure=0.5, edge_outage=0.4, attack="inf",
                          attack_fraction=0.25)
    result, seen = run(world, faults, rounds=4, d2d="tree", d2d_fetch=True, deadline_s=10.0, rule="median")
    assert any(o.faults.moved for _, _, o in seen)  # a re-attached device skips D2D (no fetch over a cut link)
    assert all(math.isfinite(v) for v in result.history[-1].values())
