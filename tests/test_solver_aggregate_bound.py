"""The aggregating-relay latency bound with relay groups' later start (solvers/aggregate_bound.py): never refutes a
latency the exact optimum (exact_solve) reaches, on seeded small edges of both D2D densities and with relay capacity."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import aggregating_edge

from solvers import random_instance
from solvers.aggregate_bound import AggregateLP
from solvers.bounds import EdgeRoutes
from solvers.evaluate import evaluate
from solvers.exact import exact_solve
from solvers.instance import RoundProblem


def threshold(p: RoundProblem, upper: float, steps: int = 10) -> tuple[float, AggregateLP]:
    """The largest trial latency in [0, upper] the LP refutes (bisection), and the LP."""
    r = EdgeRoutes.of(p, 0, [0])
    lp = AggregateLP(p, 0, r.dev, r.mbits, r.pay, r.ready[:r.dev.size])
    lo, hi = 0.0, upper
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if lp.impossible(mid) else (lo, mid)
    return lo, lp


@pytest.mark.parametrize(("n", "seed", "dense", "cap"),
                         [(4, 0, True, None), (4, 1, False, None), (5, 2, True, None), (5, 3, False, None),
                          (5, 4, True, 1), pytest.param(6, 5, True, None, marks=pytest.mark.slow),
                          (6, 6, False, None), (4, 7, True, 2)])
def test_never_refutes_the_optimum(n: int, seed: int, dense: bool, cap: int | None) -> None:
    p = aggregating_edge(n, seed, dense, cap)
    ex = exact_solve(p)
    t_opt = float(evaluate(p, ex.placement, ex.relay, ex.bandwidth_hz).edge_latency_s[0])
    lo, lp = threshold(p, t_opt * (1 + 1e-7))
    assert not lp.impossible(t_opt * (1 + 1e-7))  # the optimum's latency is never refuted
    assert lo <= t_opt
    assert lo > 0.3 * t_opt  # and it proves something


def test_round_bound_valid_and_above_the_route_lp() -> None:
    """aggregate_lower_bound on a 2-edge round: at most the exact optimum, at least the known bound it starts from."""
    from solvers.aggregate_bound import aggregate_lower_bound

    p = dataclasses.replace(random_instance(8, 2, 3, 7400, relay_aggregates=True, d2d_neighbours=3), relay_capacity=None)
    ex = exact_solve(p)
    t = evaluate(p, ex.placement, ex.relay, ex.bandwidth_hz).edge_latency_s
    lb = aggregate_lower_bound(p, t, known=0.2 * t.max(), steps=8, edges=2, low=0.2)
    assert 0.2 * t.max() <= lb <= ex.objective * (1 + 1e-9)
    with pytest.raises(ValueError, match="relay_aggregates"):
        aggregate_lower_bound(dataclasses.replace(p, relay_aggregates=False), t)
