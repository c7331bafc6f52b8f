"""The fast paths give the same plans: edges in a worker pool vs one process, and either JSON layout of the
instance and of the plan (solvers/parallel.py, solvers/instance_io.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from solvers import RoundPlan, RoundProblem, check_plan, random_instance, solve
from solvers.__main__ import main
from solvers.parallel import edge_chunks, resolve_workers, restrict


def _same(a: RoundPlan, b: RoundPlan) -> None:
    assert np.array_equal(a.placement, b.placement) and np.array_equal(a.relay, b.relay)
    assert np.array_equal(a.bandwidth_hz, b.bandwidth_hz)  # bit for bit, not approximately
    assert (a.latency_s, a.energy_j, a.objective, a.lower_bound) == (b.latency_s, b.energy_j, b.objective,
                                                                     b.lower_bound)


@pytest.mark.slow
@pytest.mark.parametrize("aggregates", [False, True])
def test_parallel_edges_give_the_serial_plan(aggregates):
    """Edges of 3 to 30 devices (enumerated, local search, price heuristics): 1, 2 and 3 processes agree."""
    p = random_instance(240, 14, 5, seed=5, relay_aggregates=aggregates, relay_capacity=3 if aggregates else None)
    p = restrict(p, np.arange(p.num_edges))[0]  # restrict keeps everything when given every edge
    serial = solve(p, "joint", workers=1, budget="work")  # work, not time: the same bound whatever the load
    assert not serial.fallback and check_plan(p, serial) == [] and serial.lower_bound > 0
    for workers in (2, 3):
        _same(serial, solve(p, "joint", workers=workers, budget="work"))


@pytest.mark.slow
def test_parallel_with_power_frequency_decisions_at_lambda_0():
    p = random_instance(120, 6, 4, seed=2)
    p = RoundProblem(**{**{f: getattr(p, f) for f in p.__dataclass_fields__}, "p_max": 1.5 * p.tx_power_w,
                        "f_min": 0.5 * p.cpu_hz, "f_max": 1.2 * p.cpu_hz})
    _same(solve(p, "joint", workers=1, budget="work"), solve(p, "joint", workers=2, budget="work"))


def test_workers_option_is_checked_and_chunks_cover_every_edge():
    p = random_instance(60, 5, 3, seed=1)
    assert resolve_workers(p, None) == 1 and resolve_workers(p, 8) == 5
    with pytest.raises(ValueError, match="workers"):
        solve(p, "joint", workers=0)
    chunks = edge_chunks(p, 3)
    assert np.array_equal(np.concatenate(chunks), np.arange(5)) and len(chunks) == 3


def test_both_instance_layouts_give_the_same_problem_and_plan(tmp_path):
    p = random_instance(80, 4, 4, seed=7, relay_capacity=2)
    plans = []
    for layout in ("columns", "records"):
        p.save(tmp_path / f"{layout}.json", layout=layout)
        q = RoundProblem.load(tmp_path / f"{layout}.json")
        assert q.to_dict() == p.to_dict() and q.to_dict("records") == p.to_dict("records")
        plans.append(solve(q, "joint", budget="work"))  # the same work whatever the load
    _same(*plans)
    data = json.loads((tmp_path / "columns.json").read_text())
    assert isinstance(data["devices"], dict) and isinstance(data["devices"]["cpu_hz"], list)


@pytest.mark.slow
def test_both_plan_layouts_read_back_and_the_cli_writes_columns(tmp_path):
    p = random_instance(40, 4, 3, seed=3)
    plan = solve(p, "joint")
    for layout in ("columns", "records"):
        plan.save(tmp_path / "plan.json", p, layout=layout)
        back = RoundPlan.load(tmp_path / "plan.json", p)
        assert np.array_equal(back.placement, plan.placement) and np.array_equal(back.relay, plan.relay)
        assert np.array_equal(back.bandwidth_hz, plan.bandwidth_hz) and check_plan(p, back) == []
    p.save(tmp_path / "i.json", layout="records")
    assert main(["solve", str(tmp_path / "i.json"), "-o", str(tmp_path / "cli.json"), "--workers", "2"]) == 0
    data = json.loads((tmp_path / "cli.json").read_text())
    assert data["layout"] == "columns" and len(data["relay"]) == p.num_devices
    assert main(["solve", str(tmp_path / "i.json"), "-o", str(tmp_path / "cli.json"), "--workers", "0"]) == 2
