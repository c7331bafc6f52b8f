"""A new D2D mode is one record (the README's recipe): a toy mode written here runs, is predicted and is timed.

The toy mode "buddy": a device that is the lowest-numbered of its D2D neighbourhood uploads; every other device hands
its update to its lowest-numbered neighbour that uploads (no solver involved). Nothing in hffm knows its name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation import d2d
from hffm.federation.aggregate import ModuleUpdate
from hffm.federation.charging import upload_ends
from hffm.federation.d2d import Exchange, Links
from hffm.federation.d2d_modes import MODES, D2DMode, Holders, Prediction, as_planned, mode_of
from hffm.federation.loop import run_federation, tier_policy
from hffm.federation.traffic import round_links
from hffm.run import make_world


def _buddies(senders: Sequence[int], adjacency: sp.csr_array | np.ndarray) -> dict[int, int]:
    graph = sp.csr_array(adjacency)
    ids = set(senders)
    near = {d: sorted({d} | {int(j) for j in graph[[d]].nonzero()[1] if int(j) in ids}) for d in senders}
    uploaders = {d for d in senders if near[d][0] == d}
    return {d: next((j for j in near[d] if j in uploaders), d) for d in senders}


def buddy_exchange(updates: Sequence[ModuleUpdate], links: Links) -> Exchange:
    relay_of = _buddies(sorted({u.node for u in updates}), links.adjacency)
    out, routes = d2d.relay(updates, relay_of, links.relay_aggregates)
    return Exchange(out, routes)


def buddy_predict(holders: Holders, links: Links) -> Prediction:
    relay_of = _buddies(sorted(holders), links.adjacency)
    routes = [d2d.Route(d, tuple(ms), relay_of[d]) for d, ms in sorted(holders.items())]
    return Prediction(routes, [], {d: (relay_of[d],) for d in holders})


BUDDY = D2DMode("buddy", buddy_exchange, buddy_predict, as_planned, uses_links=True)


@pytest.fixture
def buddy(monkeypatch):
    monkeypatch.setitem(MODES, "buddy", BUDDY)  # the recipe's register(), undone after the test
    return BUDDY


def test_an_unknown_mode_is_refused_naming_the_registered_ones():
    with pytest.raises(ValueError, match=r"federation.d2d='buddy': choose one of \['gossip', 'none', 'relay', 'tree'\]"):
        tiny_config(d2d="buddy")
    with pytest.raises(ValueError, match="federation.d2d='buddy'"):
        mode_of("buddy")


def test_a_mode_written_in_a_test_runs_a_round_predicted_and_charged_alike(buddy):
    cfg = tiny_config(e_agg=0, rounds=2, d2d="buddy", local_steps=1)
    cfg.topology.channel.charge_downlink = False
    world = make_world(cfg)
    result = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg)
    outcome, plan = result.last_outcome, result.last_plan
    relayed = [r for r in outcome.routes if r.relay != r.device]
    assert relayed, "clusters are D2D-connected: someone hands its update to a buddy"
    assert all(r.relay < r.device for r in relayed)
    assert result.history[-1]["cost/count/relayed"] == len(relayed)
    # The deadline's timeline predicts the round from the mode's own record: its last arrival is the charged latency.
    first = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg.replace(federation={"rounds": 1}))
    channel = world.draw_channel(np.random.default_rng(cfg.seed))  # round 0's draw: the loop's first from its seed
    ends = upload_ends(world, world.topology, channel, first.last_plan, cfg.federation, tier_policy(cfg.federation),
                       frozenset(), {})
    assert max(ends.values()) == pytest.approx(first.history[0]["cost/latency_s"], rel=1e-12)
    links = round_links(world.topology, channel, cfg.federation, plan)
    assert set(buddy_predict({d: ["x"] for d in range(world.num_devices)}, links).carriers) == set(
        range(world.num_devices))


def test_a_mode_with_a_deadline_and_a_solver_uses_only_its_record(buddy):
    cfg = tiny_config(e_agg=1, rounds=1, d2d="buddy", local_steps=1, deadline_s=1e6)
    cfg = cfg.replace(solver={"name": "greedy"})
    result = run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg)
    last = result.history[-1]
    assert last["plan/solver_used"] == 1.0 and last["plan/relays_used"] == 0.0  # buddy offers the solver no links
    assert last["faults/stragglers"] == 0.0  # upload_ends ran on the buddy prediction: nobody late
