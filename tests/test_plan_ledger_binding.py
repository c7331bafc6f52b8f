"""The solver and the ledger price a round with one model: for the same round (no cloud step, no
downlink, which the solver does not plan), the solver's predicted latency and energy of its plan are
what the ledger charges for the round the loop ran with that plan."""

import pytest
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.loop import run_federation
from hffm.run import make_world


@pytest.mark.parametrize("d2d", ["none", "relay"])
@pytest.mark.parametrize("solver", ["joint", "greedy", "equal"])
def test_solver_prediction_equals_ledger_charge(solver, d2d):
    cfg = tiny_config(e_agg=0, rounds=2, d2d=d2d)
    cfg.topology.channel.charge_downlink = False
    cfg.topology.channel.device_tx_power_w = 0.001  # weak uplinks: relaying pays, so relays are exercised
    result = run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg.federation, solver=solver)
    for h in result.history:
        assert h["plan/solver_used"] == 1.0 and h["plan/fallback"] == 0.0
        assert h["cost/latency_s"] == pytest.approx(h["plan/latency_s"], rel=1e-9)
        assert h["cost/energy_j"] == pytest.approx(h["plan/energy_j"], rel=1e-9)
    if d2d == "relay" and solver == "greedy":
        assert any(h["cost/count/relayed"] > 0 for h in result.history)


@pytest.mark.parametrize("d2d", ["tree", "gossip"])
def test_group_modes_give_the_band_to_the_devices_that_really_upload(d2d):
    """In tree and gossip rounds one device a group uploads: the plan's band goes to those devices only,
    and in tree mode the tree that runs is the one the solver chose."""
    cfg = tiny_config(e_agg=1, rounds=1, d2d=d2d)
    world = make_world(cfg)
    result = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg.federation, solver="joint")
    plan, outcome = result.last_plan, result.last_outcome
    uploaders = {r.device for r in outcome.routes if r.modules}
    assert set(plan.bandwidth_hz.nonzero()[0]) == uploaders
    budget = world.network.channel.edge_bandwidth_hz
    for e in range(world.topology.num_edges):
        in_edge = [r for r in uploaders if world.topology.device_edge[r] == e]
        assert sum(plan.bandwidth_hz[r] for r in in_edge) == pytest.approx(budget)
    last = result.history[-1]
    if d2d == "tree":
        assert uploaders == {d for d, p in plan.parent.items() if d == p}  # the solver's roots upload
        assert outcome.relay_links() == sorted((d, p) for d, p in plan.parent.items() if d != p)
        assert last["plan/tree_links"] == len(outcome.relay_links()) > 0
    else:
        assert last["plan/group_bandwidth"] == 1.0
