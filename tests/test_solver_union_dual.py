"""The union LP's dual bound (solvers/union_dual.py): its value at the LP's own trial latency is the LP's optimum
(strong duality), it never refutes a latency the exact optimum (exact_solve) reaches on seeded small aggregating
edges, whatever trial latency it starts from, and in `joint` it only raises a large edge's certified bound."""

from __future__ import annotations

import pytest
from conftest import aggregating_edge

import solvers.bounds as bounds
import solvers.improve as improve
from solvers import check_plan, random_instance, solve
from solvers.bounds import EdgeRoutes
from solvers.evaluate import evaluate
from solvers.exact import exact_solve
from solvers.union_bound import union_band
from solvers.union_dual import _band, _dual_value, _duals, union_dual_bound


def test_dual_value_is_the_lp_optimum() -> None:
    p = random_instance(30, 1, 4, 3, relay_aggregates=True)
    plan = solve(p, "greedy")
    r, need = EdgeRoutes.of(p, 0, [0]), p.coverage_demand()[0]
    t = 0.6 * plan.latency_s
    w = _band(p, r, t)
    status, lp = union_band(r.dev, r.mbits, p.samples, need, r.col, r.up, w)
    got = _duals(p, r, need, w, 100.0)
    assert status == "optimal" and got is not None
    value = _dual_value(p, r, need, *got)
    assert value(t) == pytest.approx(lp, rel=1e-6)
    assert value(0.9 * t) >= value(t) >= value(1.1 * t)  # nonincreasing in the trial latency


@pytest.mark.parametrize(("n", "seed", "dense", "cap"),
                         [(4, 0, True, None), (4, 1, False, None), (5, 2, True, None), (5, 3, False, None),
                          (5, 4, True, 1), (6, 6, False, None), (4, 7, True, 2)])
@pytest.mark.parametrize("trial", [0.4, 0.8])
def test_never_refutes_the_optimum(n: int, seed: int, dense: bool, cap: int | None, trial: float) -> None:
    p = aggregating_edge(n, seed, dense, cap)
    ex = exact_solve(p)
    t_opt = float(evaluate(p, ex.placement, ex.relay, ex.bandwidth_hz).edge_latency_s[0])
    lb = union_dual_bound(p, 0, 1.5 * t_opt, float("inf"), trial=trial)  # it may try latencies above the optimum
    assert lb <= t_opt * (1 + 1e-9)


def test_joint_raises_a_large_edges_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    p = random_instance(60, 2, 4, 5, relay_aggregates=True)
    monkeypatch.setattr(bounds, "UNION_MAX_ROUTES", 0)  # as on 100-device edges: the subset bound skips the union LP
    monkeypatch.setattr(improve, "UNION_DUAL", False)
    a = solve(p, "joint", budget="work", time_limit_s=1.0)
    monkeypatch.setattr(improve, "UNION_DUAL", True)
    b, c = (solve(p, "joint", budget="work", time_limit_s=1.0) for _ in range(2))
    assert check_plan(p, b) == [] and b.objective == a.objective
    assert a.lower_bound < b.lower_bound <= b.objective and b.lower_bound == c.lower_bound
