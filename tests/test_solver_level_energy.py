"""The joint level model at lambda > 0 (solvers/level_energy.py through solvers/level_model.py): placement, relays
and levels together for T + lambda E + mu D, checked against brute force over every placement x relay map x level
vector with the exact T + lambda E bandwidth (solvers/candidates.py's branch and bound over the deadline)."""

import dataclasses
import itertools
import math

import numpy as np
import pytest
from conftest import LEVEL_DISTORTION, LEVEL_FACTOR, LEVEL_NAMES, offer_levels

from solvers import RoundProblem, solve
from solvers.candidates import EdgeCandidates
from solvers.check import check_plan
from solvers.edgebatch import EdgeView
from solvers.exact import edge_placements, relay_maps
from solvers.generate import random_instance
from solvers.level_energy import least_cost
from solvers.level_model import LevelColumns, applies, refusal

NAMES = LEVEL_NAMES
FACTOR = np.array(LEVEL_FACTOR)
DISTORTION = np.array(LEVEL_DISTORTION)


def _offer(p: RoundProblem, budget: float | None, penalty: float = 0.0) -> RoundProblem:
    return offer_levels(p, budget, penalty)


def _edge_groups(p: RoundProblem, e: int) -> dict[float, EdgeCandidates]:
    """Edge e's every (placement, relay map, level vector of its senders), grouped by the summed distortion."""
    view = EdgeView.of(p, e)
    n = view.n
    pl = edge_placements(view)
    maps = np.array(relay_maps(view.rate, p.relay_capacity), dtype=int)
    xs, rs, fs, ds = [], [], [], []
    for x in pl:
        senders = np.flatnonzero((x.astype(float) @ p.module_bytes) > 0)
        for lv in itertools.product(range(len(NAMES)), repeat=senders.size):
            level = np.zeros(n, dtype=int)
            level[senders] = lv
            for relay in maps:
                xs.append(x)
                rs.append(relay)
                fs.append(FACTOR[level])
                ds.append(round(float(DISTORTION[level].sum()), 12))
    cands = EdgeCandidates.of(view, np.array(xs), np.array(rs), np.array(fs))
    dist = np.array(ds)
    return {d: cands.subset(dist == d).pareto() for d in np.unique(dist)}


def _combos(p: RoundProblem, groups: list[dict[float, EdgeCandidates]]) -> list[tuple[float, list[tuple[int, float]]]]:
    """Every choice of one distortion total per edge within the budget: (summed distortion, [(edge, total)])."""
    budget = math.inf if p.distortion_budget is None else p.distortion_budget
    return [(sum(combo), list(enumerate(combo))) for combo in itertools.product(*(sorted(g) for g in groups))
            if sum(combo) <= budget + 1e-12]


def _least(groups: list[dict[float, EdgeCandidates]], ts: np.ndarray) -> dict[tuple[int, float], np.ndarray]:
    """[P] the least energy of each (edge, distortion total) at every deadline ts (inf: none finishes)."""
    return {(e, d): c.energy(ts).min(axis=1) for e, g in enumerate(groups) for d, c in g.items()}


def _brute(p: RoundProblem, groups: list[dict[float, EdgeCandidates]], rounds: int = 60) -> tuple[float, float]:
    """(lower, upper) on min over T and one (placement, relays, levels) per edge of T + lambda E + mu D with D
    within the budget: the least value at tested deadlines (achieved) and the least of T_k + G(T_(k+1)) over the
    pieces between them (energies never grow with T), refined until they meet."""
    combos = _combos(p, groups)
    t0 = max(min(float(c.t_min.min()) for c in g.values()) for g in groups)  # no plan is faster
    ts = np.geomspace(t0, 100 * t0, 200)
    known: dict[float, float] = {}  # deadline -> G at it
    for _ in range(rounds):
        new = np.array([t for t in ts.tolist() if t not in known])
        if new.size:
            least = _least(groups, new)
            gn = np.min([p.lam * sum(least[k] for k in ks) + p.distortion_penalty * d for d, ks in combos], axis=0)
            known.update(zip(new.tolist(), gn.tolist(), strict=True))
        g = np.array([known[t] for t in ts.tolist()])
        val = ts + g
        upper = float(val.min())
        if ts[-1] < upper:  # the grid must reach the best value found: every better plan is faster
            ts = np.unique(np.concatenate([ts, np.geomspace(ts[-1], upper, 50)]))
            continue
        keep = ts <= upper  # (no plan slower than the best value found is better)
        ts, g = ts[keep], g[keep]
        pieces = ts[:-1] + g[1:]
        lower = float(min(pieces.min(initial=math.inf), ts[-1], upper))
        if lower >= upper * (1 - 1e-9):
            return lower, upper
        open_ = np.flatnonzero(pieces < upper * (1 - 1e-9))
        ts = np.unique(np.concatenate([ts, 0.5 * (ts[open_] + ts[open_ + 1])]))
    return lower, upper


def _brute_g(p: RoundProblem, groups: list[dict[float, EdgeCandidates]], t: float) -> float:
    """G(t): the least lambda E + mu D of plans whose every edge finishes by t (inf: none)."""
    least = _least(groups, np.array([t]))
    return min(p.lam * sum(float(least[k][0]) for k in ks) + p.distortion_penalty * d for d, ks in _combos(p, groups))


CASES = [  # seed, devices, edges, modules, budget, penalty, relays, lambda
    (1, 3, 1, 2, 0.4, 0.0, False, 0.05), (2, 3, 1, 2, 0.45, 0.0, True, 0.5), (3, 4, 2, 2, 0.4, 0.0, False, 5.0),
    (4, 4, 2, 2, 0.8, 0.0, True, 0.05), (5, 4, 1, 2, None, 0.0, False, 0.5), (6, 4, 2, 2, None, 0.5, False, 5.0),
    (7, 3, 1, 2, 0.9, 2.0, True, 0.5), (8, 5, 2, 2, 0.41, 0.0, False, 0.05), (9, 5, 2, 2, 0.41, 0.3, True, 5.0),
]


@pytest.mark.slow  # seconds: the search runs until certified (relay rounds: until its 48 trial latencies)
@pytest.mark.parametrize(("seed", "n", "edges", "modules", "budget", "penalty", "relays", "lam"), CASES)
def test_the_level_model_at_lambda_is_valid_and_certified(seed, n, edges, modules, budget, penalty, relays, lam):
    base = random_instance(n, edges, modules, seed, d2d_neighbours=2 if relays else 0)
    p = _offer(dataclasses.replace(base, lam=lam), budget, penalty)
    assert applies(p)
    groups = [_edge_groups(p, e) for e in range(p.num_edges)]
    low, opt = _brute(p, groups)
    assert low >= opt * (1 - 1e-8)
    # work, not wall time: the same plan and gap whatever the load (20 s of wall reached a 0.118 gap on seed 9 at load
    # 4-5, in the fresh-clone CI); it stops once certified
    plan = solve(p, "joint", time_limit_s=5.0, gap=0.01, budget="work")
    assert check_plan(p, plan) == []
    # the model ran, or the relaxed round's bound (minimal covers in its LPs since bf692c2) certified the warm start
    assert "joint level model" in plan.message or plan.status == "optimal"
    assert plan.lower_bound <= low * (1 + 1e-7)  # valid for the round's program over levels and energy
    assert plan.objective >= low * (1 - 1e-7)
    assert plan.objective <= opt / (1 - 0.01) * (1 + 1e-7)  # the optimum found, to the gap
    if relays:  # relay groups' bands are under-estimated (their pair excesses only): certified to 1.6-2.9 %
        assert plan.gap <= 0.05  # 0.015 on seed 9 in 5 work s
    else:
        assert plan.status == "optimal"  # certified within the gap


@pytest.mark.parametrize(("seed", "lam", "relays"), [(2, 0.5, True), (3, 5.0, False), (9, 0.05, True)])
def test_the_least_cost_bound_is_valid_at_every_trial_latency(seed, lam, relays):
    """G_lb(T) <= G(T) (the brute force's least lambda E + mu D finishing by T) from tight to loose T, and
    "infeasible" only where no plan finishes by T."""
    n, edges, modules, budget, penalty = next((c[1], c[2], c[3], c[4], c[5]) for c in CASES if c[0] == seed)
    base = random_instance(n, edges, modules, seed, d2d_neighbours=2 if relays else 0)
    p = _offer(dataclasses.replace(base, lam=lam), budget, penalty)
    groups = [_edge_groups(p, e) for e in range(p.num_edges)]
    cols = [LevelColumns.of(p, e) for e in range(p.num_edges)]
    t_min = max(min(float(c.t_min.min()) for c in g.values()) for g in groups)
    scale = _brute(p, groups)[1]
    for t in t_min * np.array([0.9, 1.0 + 1e-6, 1.1, 1.5, 3.0]):
        g = _brute_g(p, groups, t)
        budget_ = math.inf if budget is None else budget
        status, chosen, lb = least_cost(p, cols, t, 5.0, scale, budget_, math.inf)
        assert lb <= g * (1 + 1e-7) + 1e-12, (t, lb, g)
        if status == "infeasible":
            assert not math.isfinite(g)
        if math.isfinite(g):
            assert status == "solved" and lb >= g * (1 - 0.02)  # the tangents leave little below G


def test_the_least_cost_bound_is_valid_within_a_millionth_of_the_least_latency():
    """Right above T_min every binary is fixed by the root's propagation: with the feasibility jump on, HiGHS 1.16 took
    its point (B_j short of 1 by ~1.5e-5) as optimal without solving the LP over the shares, at 3 of these 12 T."""
    n, edges, modules, budget, penalty = next((c[1], c[2], c[3], c[4], c[5]) for c in CASES if c[0] == 2)
    base = random_instance(n, edges, modules, 2, d2d_neighbours=2)
    p = _offer(dataclasses.replace(base, lam=0.5), budget, penalty)
    groups = [_edge_groups(p, e) for e in range(p.num_edges)]
    cols = [LevelColumns.of(p, e) for e in range(p.num_edges)]
    t_min = max(min(float(c.t_min.min()) for c in g.values()) for g in groups)
    scale, budget_ = _brute(p, groups)[1], math.inf if budget is None else budget
    for t in t_min * (1.0 + 1e-7 * np.arange(1, 13)):
        g = _brute_g(p, groups, t)
        status, _, lb = least_cost(p, cols, t, 5.0, scale, budget_, math.inf)
        assert status == "solved" and g * (1 - 1e-3) <= lb <= g * (1 + 1e-9), (t, lb, g)


def test_relays_that_aggregate_are_refused_with_the_reason():
    p = _offer(dataclasses.replace(random_instance(4, 1, 2, 2, d2d_neighbours=2), lam=0.5, relay_aggregates=True),
               0.45)
    assert not applies(p)
    assert "aggregate" in refusal(p)
    plan = solve(p, "joint", time_limit_s=0.5)
    assert check_plan(p, plan) == []
    assert "by the joint level model" not in plan.message and "aggregate" in plan.message
