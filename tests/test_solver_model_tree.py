"""solvers/model_tree.py: the aggregation-tree round as one cvxpy model (flow arborescence) -- exact at a fixed tree,
a valid bound and the optimum against the exact tree reference, and the worked example (a per-device energy budget)
on trees."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from solvers import check_plan, random_instance
from solvers.edgebatch import EdgeView
from solvers.model_tree import build, certify_tree, load, tree_round_cost, valid_tree
from solvers.reference import reference_trees
from solvers.tree import tree_cost
from solvers.tree_rules import tree_equal_plan


def _tree(n, e, modules, seed, lam=0.0, **kw):
    return dataclasses.replace(random_instance(n, e, modules, seed=seed, lam=lam, **kw), tree_aggregation=True)


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_model_at_a_fixed_tree_costs_what_tree_cost_does(lam):
    p = _tree(6, 2, 3, 1, lam)
    ref = reference_trees(p)
    x, parent = ref.placement, ref.parent
    want = tree_round_cost(p, x, parent)
    assert want == pytest.approx(ref.objective, rel=1e-9)

    def fix(var, par):
        on = (parent[p.d2d_src] == p.d2d_dst).astype(float)
        return [var["x"] == x.astype(float), var["z"] == (parent == np.arange(p.num_devices)).astype(float),
                var["y"] == on]

    m = build(p, [fix])
    load(m, p, want)
    m.problem.solve(solver="HIGHS")
    assert m.problem.value * want == pytest.approx(want, rel=1e-6)
    energy = sum(float(tree_cost(v, x[v.dev][None], np.searchsorted(v.dev, parent[v.dev])[None])[1][0])
                 for v in (EdgeView.of(p, e) for e in range(p.num_edges)))
    assert float(np.sum(m.var["device_energy_j"].value)) == pytest.approx(energy, rel=1e-6)


def _check(p):
    ref = reference_trees(p)
    inc = tree_equal_plan(p)  # the fixed rule: the model has the tree and the placement to find
    c = certify_tree(p, inc.placement, inc.parent, time.perf_counter() + 60.0, gap=0.001)
    assert c.lower_bound <= ref.objective * (1 + 1e-6)  # valid
    assert c.objective == pytest.approx(tree_round_cost(p, c.x, c.relay), rel=1e-12)
    assert c.objective >= ref.objective * (1 - 1e-9) and c.objective <= ref.objective * 1.001
    assert c.proven and c.lower_bound >= 0.999 * c.objective


def test_tree_model_finds_and_certifies_the_reference_optimum():
    _check(_tree(4, 1, 3, 0, 0.5))


@pytest.mark.slow
@pytest.mark.parametrize("n,e,modules,seed,cap", [(4, 1, 3, 1, None), (5, 1, 3, 0, 2), (5, 1, 3, 1, 2),
                                                  (6, 2, 3, 0, None), (5, 1, 4, 1, None)])
@pytest.mark.parametrize("lam", [0.0, 0.5, 5.0])
def test_tree_model_against_the_reference_on_a_seeded_suite(n, e, modules, seed, cap, lam):
    _check(_tree(n, e, modules, seed, lam, relay_capacity=cap))


def test_energy_budget_on_trees():
    """solvers/README.md's worked example on a tree round: the model's tree keeps every device within its budget."""
    p = _tree(5, 1, 3, 0)
    inc = tree_equal_plan(p)
    free = certify_tree(p, inc.placement, inc.parent, time.perf_counter() + 60.0)
    used = _tree_device_energy(p, free.x, free.relay)
    budget = np.full(p.num_devices, 3.0 * used.max())  # room for any device to become the root
    worst = int(np.argmax(used))
    budget[worst] = 0.7 * used[worst]  # the unconstrained optimum breaks this budget

    def energy_budget(var, par):
        return [var["device_energy_j"] <= budget]

    c = certify_tree(p, free.x, free.relay, time.perf_counter() + 60.0, extra=[energy_budget])
    got = _tree_device_energy(p, c.x, c.relay)
    assert np.all(got <= budget * (1 + 1e-6)) and c.objective >= free.objective * (1 - 1e-9)
    plan = dataclasses.replace(inc, placement=c.x, parent=c.relay, relay=c.relay)
    assert not [m for m in check_plan(p, plan) if "placement" in m or "parent" in m]


def _tree_device_energy(p, x, parent) -> np.ndarray:
    """Each device's energy in a tree plan: compute, its send of its subtree's union to its parent, the root's upload."""
    from solvers.evaluate import uplink_rate

    n = p.num_devices
    union = x.copy()
    for _ in range(n):
        for i in range(n):
            if parent[i] != i:
                union[parent[i]] |= union[i]
    bits = 8.0 * (union.astype(float) @ p.module_bytes)
    e = p.kappa * p.samples * (x.astype(float) @ p.module_cycles) * p.cpu_hz ** 2
    for i in range(n):
        if parent[i] != i:
            e[i] += p.d2d_power_w[i] * bits[i] / p.link_rate(np.array([i]), np.array([parent[i]]))[0]
        else:
            rate = uplink_rate(p.edge_bandwidth_hz[p.device_edge[i]], p.snr_hz[i])
            e[i] += p.tx_power_w[i] * bits[i] / rate
    return e


def test_answers_of_a_stopped_milp_are_checked():
    """A MILP stopped before any feasible answer leaves junk in the variables (all zeros, every device a root):
    certify_tree keeps only a placement that covers and one tree per edge."""
    p = _tree(5, 1, 3, 0)
    ref = reference_trees(p)
    assert valid_tree(p, ref.placement, ref.parent)
    assert not valid_tree(p, np.zeros_like(ref.placement), ref.parent)  # covers nothing
    assert not valid_tree(p, ref.placement, np.arange(p.num_devices))  # five roots
