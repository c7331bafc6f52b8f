"""The loop obeys the solver's plan, and keeps training when the solver cannot give one."""

import pytest
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.loop import run_federation
from hffm.run import make_world


def _run(solver, **topology):
    cfg = tiny_config(e_agg=1, rounds=2, d2d="relay")
    for key, value in topology.items():
        setattr(cfg.topology, key, value)
    return run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg.replace(solver={"name": solver}))


def test_devices_train_only_their_placed_modules():
    result = _run("joint")
    for h in result.history:
        assert h["plan/solver_used"] == 1.0 and h["plan/fallback"] == 0.0
        assert 0.0 <= h["plan/gap"] <= 1.0  # the certified gap of the round's plan
        assert h["train/modules_trained"] == h["plan/modules_placed"]
    assert any(h["plan/modules_placed"] < h["plan/modules_eligible"] for h in result.history)


def test_the_run_keeps_one_model_cache_across_rounds(monkeypatch):
    """hffm's planner passes the run's one solvers.ModelCache to every round's solve (the real solve, recorded)."""
    import solvers

    seen = []
    real = solvers.solve

    def recording(problem, method="joint", **opts):
        seen.append(opts.get("cache"))
        return real(problem, method, **opts)

    monkeypatch.setattr(solvers, "solve", recording)
    result = _run("joint")
    assert len(seen) == len(result.history) == 2
    assert isinstance(seen[0], solvers.ModelCache) and seen[1] is seen[0]


def test_updates_take_the_planned_relays():
    # A weak uplink (1 mW) against 200 mW D2D links makes relaying worth it.
    result = _run("greedy", channel={"device_tx_power_w": 0.001})
    relayed = [h["plan/relays_used"] for h in result.history]
    assert sum(relayed) > 0
    assert [h["cost/count/relayed"] for h in result.history] == relayed
    assert all(h["cost/bytes/d2d"] > 0 for h, r in zip(result.history, relayed) if r > 0)


@pytest.mark.slow
def test_the_joint_plan_is_no_slower_on_the_uplink_than_equal_bandwidth():
    joint = _run("joint", channel={"device_tx_power_w": 0.001})
    equal = _run("equal", channel={"device_tx_power_w": 0.001})
    for j, e in zip(joint.history, equal.history):
        assert j["plan/latency_s"] <= e["plan/latency_s"] * (1 + 1e-6)


def test_an_infeasible_round_falls_back_and_training_goes_on(caplog):
    result = _run("joint", device_memory_mb=0.05)  # no device can hold enough modules for coverage
    assert len(result.history) == 2
    assert all(h["plan/fallback"] == 1.0 for h in result.history)
    assert "infeasible" in caplog.text and "coverage" in caplog.text
    assert result.history[-1]["train/modules_trained"] > 0


def test_unknown_solver_is_rejected_at_config_time():
    from hffm.config import resolve

    cfg = tiny_config()
    cfg.solver.name = "magic"
    with pytest.raises(ValueError, match="solver.name"):
        resolve(cfg)


WALL_CLOCK_METRICS = ("time/round_s", "plan/solve_s")
"""The run's own timings: reported, never fed back into a plan or the training."""



def test_joint_plans_under_the_default_work_budget_give_the_same_numbers_twice():
    """solver=joint at lambda > 0 with a budget the model uses up (solver.budget defaults to work): two runs of one
    seed log the same numbers, every plan's included."""
    runs = []
    for _ in range(2):
        cfg = tiny_config(e_agg=1, rounds=2, d2d="relay")
        cfg.topology.devices_per_edge = 4  # 2 devices an edge are solved, and proven, within any budget
        cfg = cfg.replace(solver={"name": "joint", "lam": 0.5, "time_limit_s": 0.1})
        assert cfg.solver.budget == "work"
        runs.append(run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg).history)
    strip = [[{k: v for k, v in h.items() if k not in WALL_CLOCK_METRICS} for h in run] for run in runs]
    assert strip[0] == strip[1]  # every plan, training, cost and evaluation number, bit for bit
    assert all(h["plan/solver_used"] == 1.0 for h in runs[0])
    assert all(h["plan/proven"] == 0.0 for h in runs[0])  # the budget ran out: the deadline's path was taken

