"""The joint level model (solvers/level_model.py): placement, relays and levels together at lambda = 0, checked
against brute force over every placement x relay map x level vector with the exact bandwidth step (lambda > 0:
tests/test_solver_level_energy.py)."""

import dataclasses
import itertools

import numpy as np
import pytest
from conftest import LEVEL_DISTORTION, LEVEL_FACTOR, LEVEL_NAMES, offer_levels

from solvers import RoundProblem, solve
from solvers.bandwidth import minmax_bandwidth
from solvers.check import check_plan
from solvers.edgebatch import EdgeView
from solvers.evaluate import timeline
from solvers.exact import edge_placements, relay_maps
from solvers.generate import random_instance
from solvers.level_model import LevelColumns, applies, column_count
from solvers.parallel import restrict

NAMES = LEVEL_NAMES
FACTOR = np.array(LEVEL_FACTOR)
DISTORTION = np.array(LEVEL_DISTORTION)


def _offer(p: RoundProblem, budget: float | None, penalty: float = 0.0) -> RoundProblem:
    return offer_levels(p, budget, penalty)


def _edge_front(p: RoundProblem, e: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (latency, distortion) of edge e over placements x relay maps x level vectors (exact band)."""
    view = EdgeView.of(p, e)
    d, n = view.dev, view.n
    pl = edge_placements(view)
    maps = np.array(relay_maps(view.rate, p.relay_capacity), dtype=int)
    lv = np.array(list(itertools.product(range(len(NAMES)), repeat=n)), dtype=int)
    a, b, c = (g.ravel() for g in np.meshgrid(np.arange(len(pl)), np.arange(len(maps)), np.arange(len(lv)),
                                              indexing="ij"))
    x, relay, level = pl[a], maps[b], lv[c]
    lr = view.rate[np.arange(n)[None, :], relay]
    lr = np.where(relay == np.arange(n), np.inf, lr)
    tl = timeline(x, relay, lr, p.samples[d], p.cpu_hz[d], p.module_cycles, p.module_bytes, p.relay_aggregates,
                  FACTOR[level])
    kk, jj = np.nonzero(tl.uploader)
    t, _ = minmax_bandwidth(kk, tl.start[kk, jj], tl.bits[kk, jj], p.snr_hz[d][jj],
                            np.full(len(x), p.edge_bandwidth_hz[e]), rtol=1e-11)
    sends = (x.astype(float) @ p.module_bytes) > 0
    return t, (DISTORTION[level] * sends).sum(axis=1)


def _brute(p: RoundProblem) -> float:
    """min max_e T_e + mu sum_e D_e  s.t.  sum_e D_e <= budget, over the product of the edges' choices."""
    fronts = []
    for e in range(p.num_edges):
        t, dist = _edge_front(p, e)
        pairs = np.unique(np.round(np.stack([t, dist], axis=1), 15), axis=0)
        keep = [i for i, (ti, di) in enumerate(pairs) if not np.any((pairs[:, 0] <= ti) & (pairs[:, 1] <= di)
                                                                    & ((pairs[:, 0] < ti) | (pairs[:, 1] < di)))]
        fronts.append(pairs[keep])
    budget = np.inf if p.distortion_budget is None else p.distortion_budget
    best = np.inf
    for combo in itertools.product(*fronts):
        arr = np.array(combo)
        if arr[:, 1].sum() <= budget + 1e-12:
            best = min(best, arr[:, 0].max() + p.distortion_penalty * arr[:, 1].sum())
    return best


CASES = [  # seed, devices, edges, modules, budget, penalty, relays
    (1, 3, 1, 2, 0.4, 0.0, False), (2, 4, 1, 2, 0.45, 0.0, True), (3, 4, 2, 2, 0.4, 0.0, False),
    (4, 5, 2, 2, 0.8, 0.0, True), (5, 4, 1, 3, None, 0.0, False), (6, 4, 2, 2, None, 0.5, False),
    (7, 3, 1, 2, 0.9, 2.0, True), (8, 5, 2, 2, 0.41, 0.0, False),
]


@pytest.mark.parametrize(("seed", "n", "edges", "modules", "budget", "penalty", "relays"), CASES)
def test_the_joint_level_model_is_optimal_and_its_bound_valid(seed, n, edges, modules, budget, penalty, relays):
    p = _offer(random_instance(n, edges, modules, seed, d2d_neighbours=2 if relays else 0), budget, penalty)
    assert applies(p)
    opt = _brute(p)
    plan = solve(p, "joint", time_limit_s=5.0, gap=0.01)
    assert check_plan(p, plan) == []
    # the model ran, or the relaxed round's bound (minimal covers in its LPs since bf692c2) certified the warm start
    assert "joint level model" in plan.message or plan.status == "optimal"
    assert plan.lower_bound <= opt * (1 + 1e-7)  # valid for the round's program over levels too
    assert plan.objective >= opt * (1 - 1e-7)
    assert plan.status == "optimal"  # certified within the gap: lower_bound >= 0.99 objective
    assert plan.objective <= opt / (1 - 0.01) * (1 + 1e-7)


@pytest.mark.parametrize("seed", [1, 5])
def test_the_joint_model_beats_levels_given_the_heuristic_placement(seed):
    """On these seeds the levels chosen after the full-size placement (levels.py) are not the round's optimum:
    choosing them with the placement is strictly faster."""
    n, edges, modules, budget = next((c[1], c[2], c[3], c[4]) for c in CASES if c[0] == seed)
    p = _offer(random_instance(n, edges, modules, seed, d2d_neighbours=0), budget)
    after = solve(p, "joint", time_limit_s=0)
    joint = solve(p, "joint", time_limit_s=5.0)
    assert joint.objective < 0.95 * after.objective
    assert joint.objective == pytest.approx(_brute(p), rel=1e-7)


def test_the_level_columns_shrink_payloads_and_charge_distortion():
    p = _offer(random_instance(4, 1, 2, 3, d2d_neighbours=2), 0.4)
    lc = LevelColumns.of(p, 0)
    for lv in range(len(NAMES)):
        on = (lc.level == lv) & (lc.c.pay > 0)
        assert on.any()
        assert np.allclose(lc.distortion[on], DISTORTION[lv])
        base = 8.0 * (lc.c.mask[on] @ p.module_bytes)
        assert np.allclose(lc.c.pay[on], FACTOR[lv] * base)
    twin = lc.c.twin
    assert np.array_equal(lc.level[twin], lc.level) and np.array_equal(lc.c.dev[twin], lc.c.dev)
    assert not lc.c.relayed[twin].any()


def test_the_model_stands_aside_where_it_does_not_apply():
    p = _offer(random_instance(4, 1, 2, 3), 0.4)
    assert applies(dataclasses.replace(p, lam=0.5))  # lambda > 0: solvers/level_energy.py
    assert not applies(dataclasses.replace(p, relay_aggregates=True))  # a relay's union goes at its own level
    assert not applies(_offer(random_instance(20, 1, 2, 3), 0.4))  # more than 16 devices on one edge
    plan = solve(dataclasses.replace(p, relay_aggregates=True), "joint", time_limit_s=0.3)
    assert "by the joint level model" not in plan.message
    assert "does not take relays that aggregate" in plan.message


def test_an_edge_too_large_to_model_keeps_the_incumbent_and_the_bound_stays_valid(monkeypatch):
    """Edges over MAX_COLUMNS are not modelled: they keep the incumbent's choice and count as free in the bound."""
    p = _offer(random_instance(5, 2, 2, 8), 0.41)
    sizes = [column_count(restrict(p, np.array([e]))[0], len(NAMES)) for e in range(2)]
    assert sizes[0] != sizes[1]
    monkeypatch.setattr("solvers.level_model.MAX_COLUMNS", min(sizes))  # only the smaller edge fits
    plan = solve(p, "joint", time_limit_s=5.0)
    opt = _brute(p)
    assert check_plan(p, plan) == []
    assert "joint level model" in plan.message
    assert plan.lower_bound <= opt * (1 + 1e-7) <= plan.objective * (1 + 2e-7)
