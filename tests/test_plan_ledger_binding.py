"""The solver and the ledger price a round with one model: for the same round (no cloud step, no
downlink, which the solver does not plan), the solver's predicted latency and energy of its plan are
what the ledger charges for the round the loop ran with that plan, its uplink power and CPU frequency
included when they are decisions."""

import dataclasses

import numpy as np
import pytest
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.charging import charge_outcome, upload_ends
from hffm.federation.loop import run_federation, tier_policy
from hffm.federation.planning import POWER_FREQUENCY_SOLVERS, build_problem
from hffm.federation.traffic import eligible_modules
from hffm.run import make_world


def _weak_uplinks(cfg):  # noqa: ANN001, ANN202
    """No downlink (the solver does not plan it) and weak uplinks, so relaying pays."""
    cfg.topology.channel.charge_downlink = False
    cfg.topology.channel.device_tx_power_w = 0.001
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("d2d", ["none", "relay"])
@pytest.mark.parametrize("solver", ["joint", "greedy", "equal"])
def test_solver_prediction_equals_ledger_charge(solver, d2d):
    cfg = _weak_uplinks(tiny_config(e_agg=0, rounds=2, d2d=d2d))
    result = run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg.replace(solver={"name": solver}))
    for h in result.history:
        assert h["plan/solver_used"] == 1.0 and h["plan/fallback"] == 0.0
        assert h["cost/latency_s"] == pytest.approx(h["plan/latency_s"], rel=1e-9)
        assert h["cost/energy_j"] == pytest.approx(h["plan/energy_j"], rel=1e-9)
    if d2d == "relay" and solver == "greedy":
        assert any(h["cost/count/relayed"] > 0 for h in result.history)


@pytest.mark.slow
@pytest.mark.parametrize("d2d", ["none", "relay"])
@pytest.mark.parametrize("solver", POWER_FREQUENCY_SOLVERS)
def test_planned_power_and_frequency_prediction_equals_ledger_charge(solver, d2d):
    """With power and frequency as decisions the ledger charges the plan's own power and frequency, and the
    deadline's timeline (upload_ends) runs at them too."""
    cfg = _weak_uplinks(tiny_config(e_agg=0, rounds=1, d2d=d2d))
    cfg.solver = dataclasses.replace(cfg.solver, name=solver, lam=1.0, max_tx_power_w=0.002, cpu_scale_min=0.3)
    world = make_world(cfg)
    result = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg)
    for h in result.history:
        assert h["plan/power_frequency"] == 1.0 and h["plan/fallback"] == 0.0
        assert h["cost/latency_s"] == pytest.approx(h["plan/latency_s"], rel=1e-9)
        assert h["cost/energy_j"] == pytest.approx(h["plan/energy_j"], rel=1e-9)
    plan = result.last_plan
    parts = plan.participants
    assert np.all(plan.tx_power_w[parts] <= 0.002) and np.any(plan.tx_power_w[parts] < 0.002)  # planned, not p_max
    assert np.all(plan.cpu_hz[parts] >= 0.3 * world.cpu_hz[parts] * (1 - 1e-12))
    assert np.any(plan.cpu_hz[parts] < world.cpu_hz[parts])  # some device slowed down to save energy
    channel = world.draw_channel(np.random.default_rng(0))  # round 0's draw: the loop's first from its seed
    ends = upload_ends(world, world.topology, channel, plan, cfg.federation, tier_policy(cfg.federation),
                       frozenset(), {})
    assert max(ends.values()) == pytest.approx(result.history[0]["cost/latency_s"], rel=1e-12)
    fixed = dataclasses.replace(plan, tx_power_w=None, cpu_hz=None)
    assert max(upload_ends(world, world.topology, channel, fixed, cfg.federation, tier_policy(cfg.federation),
                           frozenset(), {}).values()) != pytest.approx(max(ends.values()), rel=1e-6)


@pytest.mark.slow
def test_power_and_frequency_decisions_lower_the_energy_charged():
    """Same run, same lambda, same largest power and frequency: letting the solver lower them cuts the energy
    the ledger charges, and the objective T + lambda E it charges does not rise."""
    lam = 1.0
    runs = {}
    for on in (False, True):
        cfg = _weak_uplinks(tiny_config(e_agg=0, rounds=2))
        cfg.solver = dataclasses.replace(cfg.solver, name="joint", lam=lam)
        if on:
            cfg.solver = dataclasses.replace(cfg.solver, max_tx_power_w=0.001, cpu_scale_min=0.3)
        runs[on] = run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg).history
    off, on = runs[False][-1], runs[True][-1]
    assert on["plan/power_frequency"] == 1.0 and off["plan/power_frequency"] == 0.0
    assert on["cost/cum_energy_j"] < 0.9 * off["cost/cum_energy_j"]
    assert (on["cost/cum_latency_s"] + lam * on["cost/cum_energy_j"]
            <= off["cost/cum_latency_s"] + lam * off["cost/cum_energy_j"])


def test_defaults_keep_the_fixed_power_and_frequency_bit_for_bit():
    """By default the instance has no power / frequency decisions, the plan carries none, and charging the
    round with the fixed values written into the plan gives exactly the logged charge."""
    cfg = _weak_uplinks(tiny_config(e_agg=0, rounds=1))
    cfg.solver = dataclasses.replace(cfg.solver, name="joint", lam=1.0)
    assert cfg.solver.options() == {"gamma": cfg.solver.gamma, "lam": 1.0}
    world = make_world(cfg)
    result = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg)
    plan, outcome = result.last_plan, result.last_outcome
    assert plan.tx_power_w is None and plan.cpu_hz is None and result.history[0]["plan/power_frequency"] == 0.0
    channel = world.draw_channel(np.random.default_rng(0))  # round 0's draw: the loop's first from its seed
    parts = plan.participants
    problem = build_problem(world, channel, parts, {d: eligible_modules(world, d) for d in parts}, cfg.federation,
                            **cfg.solver.options())
    assert not problem.has_power_frequency
    policy = tier_policy(cfg.federation)
    default = charge_outcome(world, channel, plan, outcome, cfg.federation, policy)
    assert default.as_metrics() == {k: v for k, v in result.history[0].items() if k in default.as_metrics()}
    fixed = dataclasses.replace(plan, tx_power_w=np.full(world.num_devices, world.network.channel.device_tx_power_w),
                                cpu_hz=world.cpu_hz)
    again = charge_outcome(world, channel, fixed, outcome, cfg.federation, policy)
    assert again.as_metrics() == default.as_metrics()


@pytest.mark.parametrize("d2d", ["tree", "gossip"])
def test_group_modes_give_the_band_to_the_devices_that_really_upload(d2d):
    """In tree and gossip rounds one device a group uploads: the plan's band goes to those devices only,
    and in tree mode the tree that runs is the one the solver chose."""
    cfg = tiny_config(e_agg=1, rounds=1, d2d=d2d)
    world = make_world(cfg)
    result = run_federation(Fabric(accelerator="cpu", devices=1), world, cfg.replace(solver={"name": "joint"}))
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
