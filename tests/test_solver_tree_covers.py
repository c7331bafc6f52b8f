"""solvers/tree_model.py per root: the cover columns (a minimal cover per module joined to the root by a Steiner
arborescence) and the ready-time big-M taken from the cutoff. Against every enumerated plan of seeded 4-5-device
edges, with and without relay_capacity: the fixed-root MILP's optimum is the root's best plan (tight), its bound
with a cutoff and floors never passes it (nor does its LP's, `relax`, the per-root skip test of solvers/tree_improve.py),
and the LP relaxation stays below it while the cover rows lift it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import solvers.tree_model as tm
from solvers import random_instance
from solvers.edgebatch import EdgeView
from solvers.exact import placements_upto
from solvers.tree import all_trees, tree_cost
from solvers.tree_bound import edge_root_bounds
from solvers.tree_model import build

CASES = [(4, 0, None, 3), (4, 2, 1, 3), (5, 1, None, 3), (5, 4, 2, 3)]


def _edge(n: int, seed: int, lam: float, cap: int | None, links: int) -> tuple[EdgeView, np.ndarray]:
    """The edge and, per root, the least T + lam E over every enumerated plan rooted there (inf: none)."""
    p = random_instance(n, 1, 3, seed=seed, lam=lam, d2d_neighbours=min(n - 2, links))
    v = EdgeView.of(dataclasses.replace(p, tree_aggregation=True, relay_capacity=cap), 0)
    trees, pls = all_trees(v.rate, capacity=cap), placements_upto(v, 5000)
    assert trees is not None and pls is not None and len(trees) and len(pls)
    a, b = np.divmod(np.arange(len(pls) * len(trees)), len(trees))
    fin, en = tree_cost(v, pls[a], trees[b])
    roots = np.argmax(trees[b] == np.arange(n), axis=1)
    value = fin + lam * en
    return v, np.array([float(value[roots == r].min()) if (roots == r).any() else np.inf for r in range(n)])


def _lp(view: EdgeView, scale: float, root: int) -> float:
    """The fixed-root model's LP relaxation, in seconds."""
    model = build([view], scale)
    assert model is not None
    h = model.highs
    import highspy

    h.changeColsIntegrality(
        h.getNumCol(),
        np.arange(h.getNumCol(), dtype=np.int32),
        np.full(h.getNumCol(), highspy.HighsVarType.kContinuous),
    )
    model.solve([root], np.inf, 30.0, 1e-9)
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return float(h.getInfo().objective_function_value) * scale  # an LP: no MIP dual bound


@pytest.mark.parametrize("lam", [0.05, 0.5, 5.0, 50.0])
def test_fixed_root_model_is_the_roots_best_plan_and_its_bounds_stay_below(lam, monkeypatch):
    lifted, relaxed = 0, []
    for n, seed, cap, links in CASES:
        v, best = _edge(n, seed, lam, cap, links)
        scale = float(np.max(best[np.isfinite(best)])) * 1.2  # every root's plans below it
        model = build([v], scale)
        assert model is not None and model.covers  # lambda > 0: the cover rows are there
        t_lb, e_lb = edge_root_bounds(v)
        for r in np.flatnonzero(np.isfinite(best)):
            kind, low, sol = model.solve([int(r)], np.inf, 30.0, 1e-9)
            assert kind == "optimal" and low <= best[r] * (1 + 1e-9)
            assert low == pytest.approx(best[r], rel=2e-5)  # tight: the root's best plan (HiGHS's tolerances)
            assert sol is not None
            f, e = tree_cost(v, sol[0][0][None], sol[0][1][None])
            assert float(f[0] + lam * e[0]) == pytest.approx(best[r], rel=2e-5)
            for cut in (0.97, 1.0005):  # a cutoff below and just above the root's best; the floors joint gives
                kind, low, _ = model.solve(
                    [int(r)], cut * best[r], 30.0, 0.008, floor=float(t_lb[r]), energy_floor=float(lam * e_lb[r])
                )
                assert kind in ("optimal", "infeasible") and low <= best[r] * (1 + 1e-9), (n, seed, r, cut, kind)
                lp = model.relax([int(r)], cut * best[r], 30.0, float(t_lb[r]), float(lam * e_lb[r]))
                assert 0 < lp <= min(cut, 1.0) * best[r] * (1 + 1e-9), (n, seed, r, cut, lp)
                relaxed.append((lp / (cut * best[r]), cut))
            kind, low, _ = model.solve([int(r)], np.inf, 30.0, 1e-9)  # the relaxation left the integers whole
            assert kind == "optimal" and low == pytest.approx(best[r], rel=2e-5)
            if lam < 5:  # the LP comparison where energy weighs
                continue
            with_covers = _lp(v, scale, int(r))
            assert with_covers <= best[r] * (1 + 1e-9)
            assert model.relax([int(r)], np.inf, 30.0) == pytest.approx(with_covers, rel=1e-6)
            monkeypatch.setattr(tm, "COVER_ENERGY", False)
            plain = _lp(v, scale, int(r))
            monkeypatch.setattr(tm, "COVER_ENERGY", True)
            assert with_covers >= plain * (1 - 1e-9)
            lifted += with_covers > plain * (1 + 1e-6)
    assert lifted > 0 or lam < 5  # where energy weighs, the cover rows lift the LP somewhere
    proved = [q for q, cut in relaxed if cut < 1 and q >= 1 - 1e-9]  # the LP alone proves the cutoff (tight)
    assert proved and min(q for q, _ in relaxed) < 0.95  # and stays well below it elsewhere


def test_several_edges_with_free_roots_stay_below_the_reference():
    """Two edges share T, roots free: the covers' least cost over the roots keeps the round's bound valid."""
    from solvers.reference import reference_trees

    for seed in (0, 3):
        p = dataclasses.replace(random_instance(8, 2, 3, seed=seed, lam=5.0), tree_aggregation=True)
        ref = reference_trees(p).objective
        views = [EdgeView.of(p, e) for e in range(2)]
        model = build(views, 1.2 * ref)
        assert model is not None and len(model.covers) == 2
        kind, low, _ = model.solve([None, None], np.inf, 30.0, 1e-9)
        assert kind == "optimal" and low <= ref * (1 + 1e-9) and low == pytest.approx(ref, rel=2e-5)
