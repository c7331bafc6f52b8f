"""`joint` on tree instances: the search's plan (solvers/tree.py) is the incumbent; the tree MILP
(solvers/tree_model.py) improves and certifies it within the time limit.

lambda = 0: edges are independent (T = max_e T_e), so the slowest edge is modelled first, one MILP per root
(the root fixed makes c_r and the shortest-path inequalities exact), roots in the order of their cheap bound
(solvers/tree_bound.py), each with the cutoff (1 - 0.9 gap) x the incumbent: "infeasible" proves the root cannot
beat it; a root whose cheap bound is already above the cutoff is never modelled. The edge's bound is the least over
its roots (the MILP's dual bound where it ran, the cheap bound elsewhere). On one edge at lambda > 0 the same per
root with T + lambda E; several edges at lambda > 0 share T and go into one MILP with free roots (up to
MODEL_MAX_DEVICES devices in all). Edges enumerated by the search are exact already and are not modelled.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from solvers.clock import load_libraries, now, under_budget
from solvers.edgebatch import EdgeView
from solvers.fields import check_budget, check_limits
from solvers.instance import RoundProblem
from solvers.model_cache import ModelCache, check_cache
from solvers.model_gate import model_seconds
from solvers.model_tree import certify_tree
from solvers.plan import STATUS_PROVEN, STATUS_TIME, STATUS_UNPROVEN, RoundPlan
from solvers.tree import TreeEdges, is_tree, spt_trees, tree_cost, tree_search
from solvers.tree_bound import threshold_value
from solvers.tree_energy import EdgeParts, edge_parts, flat_pairs, root_values
from solvers.tree_lagrange import coupled_latency, coupled_root, ladder_value, latency_columns
from solvers.tree_model import build

MODEL_MAX_DEVICES = 16
"""Largest edge (lambda = 0, or one edge) or round (lambda > 0, several edges) given to the tree MILP."""
SEARCH_SHARE = 0.5
"""Part of time_limit_s after which the search stops descending (the model gets the rest)."""
COUPLE_SHARE = 0.3
"""Part of the time left at most for coupling the ladder's devices (solvers/tree_lagrange.py) before the MILP."""
INTEGER_SHARE = 0.5
"""Part of the time left after that at most for the coupled latency with integer columns (one MILP test per step)."""
LP_SHARE = 0.3
"""Part of the time left at most for the per-root LPs (lambda > 0, several roots below the cutoff) before the MILPs."""
FIRST_SHARE = 0.8
"""Where the LPs ran: part of the time left for the first root's MILP; the rest to the others, least bound first."""


class _Edge:
    """One edge's incumbent (x, parent local), its exact cost, and its certified pairs."""

    def __init__(
        self,
        view: EdgeView,
        plan: RoundPlan,
        pairs: tuple[np.ndarray, np.ndarray],
        exact: bool,
        ladder: list[tuple[np.ndarray, np.ndarray]] | None,
    ) -> None:
        self.view, self.exact, self.ladder = view, exact, ladder
        self.x = plan.placement[view.dev].copy()
        assert plan.parent is not None
        local = np.full(view.problem.num_devices, -1)
        local[view.dev] = np.arange(view.n)
        self.parent = local[plan.parent[view.dev]]
        f, e = tree_cost(view, self.x[None], self.parent[None])
        self.finish, self.energy = float(f[0]), float(e[0])
        self.pairs = pairs

    def value(self, lam: float) -> float:
        return self.finish + lam * self.energy

    @functools.cached_property
    def parts(self) -> EdgeParts | None:
        """solvers/tree_energy.py `edge_parts` (None above its size): the coupled ladder's and the MILP's covers'."""
        return edge_parts(self.view)

    @functools.cached_property
    def spt(self) -> np.ndarray:
        """[n, n] the shortest-path tree to each root (solvers/tree.py `spt_trees`): one Dijkstra an edge."""
        return spt_trees(self.view)

    def offer(self, x: np.ndarray, parent: np.ndarray, lam: float) -> bool:
        """Take (x, parent) if it is a feasible tree that costs less (exactly, by tree_cost)."""
        v = self.view
        if not (is_tree(v.rate, parent, v.problem.relay_capacity) and v.feasible(x[None])[0]):
            return False
        f, e = tree_cost(v, x[None], parent[None])
        if float(f[0] + lam * e[0]) < self.value(lam) * (1 - 1e-12):
            self.x, self.parent, self.finish, self.energy = x, parent, float(f[0]), float(e[0])
            return True
        return False


def _per_root(edge: _Edge, lam: float, deadline: float, gap: float) -> bool:
    """Model one edge root by root (objective T_e + lam E_e); its pairs become per-root bounds: (T bound, E bound)
    at lambda = 0, (T + lam E bound, 0) at lambda > 0 (one edge only). Roots in the order of their cheap bound, each
    with the time left (the first usually finds the plan, after which the others are cut off at once: giving roots
    turns of doubling slices was measured slower, 14.4 against 12.5 at 10 s on a 12-device edge). HiGHS gets the
    root's cheap bound as T's lower bound, and stops at 0.8 gap (what certifying needs). False if the model does
    not take the edge (a device with too many subsets); running out of time leaves the other roots at their cheap
    bound. At lambda > 0, where several roots lie below the cutoff, each root's LP (solvers/tree_model.py `relax`,
    0.01-0.06 CPU s on 12 devices) comes first: it raises the root's bound (where no MILP reaches it) and skips its
    MILP where it reaches the cutoff. The first MILP is the cheap bound's (ordered by the LPs, the plan's root ran
    later and found less: branch tr26-lp), with FIRST_SHARE of the time left; then the others, least bound first
    (the edge's bound is the least over its roots)."""
    v = edge.view
    t_lb, e_lb = edge.pairs[0].copy(), edge.pairs[1]
    cheap = t_lb + lam * e_lb
    if edge.ladder is not None:  # T + lam E_lb(T) per root (solvers/tree_energy.py): orders, skips, bounds roots
        cheap = np.maximum(cheap, root_values(edge.ladder, lam))
    if edge.ladder is not None or lam == 0:
        _couple(edge, cheap, t_lb, e_lb, lam, now() + COUPLE_SHARE * (deadline - now()), gap, deadline)
    model = None
    lower = cheap.copy()
    order = np.argsort(cheap, kind="stable")  # the MILPs' order (by the LPs: the plan's root ran later, tr26-lp)
    below = [int(r) for r in order if cheap[r] < (1 - 0.9 * gap) * edge.value(lam)]
    if lam > 0 and edge.parts is not None and len(below) > 1:  # several roots below the cutoff: their LPs first
        until = now() + LP_SHARE * (deadline - now())
        for r in below:
            if now() >= until:
                break
            if model is None:
                model = build([v], max(edge.value(lam), 1e-300), [edge.parts])
                if model is None:
                    return False
            cutoff = (1 - 0.9 * gap) * edge.value(lam)
            lower[r] = max(lower[r], model.relax([r], cutoff, until - now(), float(t_lb[r]), float(lam * e_lb[r])))
    todo, ranked = [int(r) for r in order], len(below) > 1 and lam > 0 and edge.parts is not None
    first = True
    while todo:
        r = todo.pop(0)
        cutoff = (1 - 0.9 * gap) * edge.value(lam)
        if not cheap[r] < cutoff:
            if ranked and not first:
                continue
            break  # the rest are above the cutoff too
        if not lower[r] < cutoff:
            continue  # its LP reached the cutoff
        if deadline - now() <= 0.02:
            break
        if model is None:  # built where a root needs it (its covers only at lambda > 0)
            model = build([v], max(edge.value(lam), 1e-300), [edge.parts if lam > 0 else None])
            if model is None:
                return False
        left = deadline - now()
        if left <= 0.02:
            break
        others = ranked and any(cheap[q] < cutoff and lower[q] < cutoff for q in todo)
        kind, low, sol = model.solve(
            [r],
            cutoff,
            left * (FIRST_SHARE if first and others else 1.0),
            0.8 * gap,
            float(t_lb[r]),
            float(lam * e_lb[r]),
        )
        if sol is not None:
            edge.offer(*sol[0], lam)
        lower[r] = max(lower[r], low)
        if first and others:  # then the least bound first: the edge's bound is the least over its roots
            todo.sort(key=lambda q: lower[q])
        first = False
    edge.pairs = (lower, np.zeros_like(lower)) if lam > 0 else (lower, e_lb)
    edge.ladder = None  # folded into lower
    return True


def _couple(
    edge: _Edge,
    cheap: np.ndarray,
    t_lb: np.ndarray,
    e_lb: np.ndarray,
    lam: float,
    until: float,
    gap: float,
    deadline: float,
) -> None:
    """Raise t_lb[r] and cheap[r] (in place) with each device's modules coupled (solvers/tree_lagrange.py): the
    coupled latency, and where the edge has a ladder the ladder from it and the coupled ladder; roots in the order of
    their bound while it is below the cutoff, until `until`. Then the coupled latency with integer columns, roots in
    their new order, for INTEGER_SHARE of the time left to `deadline`."""
    ladder, cols = edge.ladder, latency_columns(edge.view)
    parts = edge.parts if ladder is not None else None
    if cols is None or (ladder is not None and parts is None):
        return
    for r in (int(k) for k in np.argsort(cheap, kind="stable")):
        cutoff = (1 - 0.9 * gap) * edge.value(lam)
        if not cheap[r] < cutoff or now() >= until:
            break
        if ladder is None or parts is None:  # lambda = 0: cheap is T's bound
            t_lb[r] = cheap[r] = max(cheap[r], coupled_latency(edge.view, cols, r, float(t_lb[r]), cutoff))
            continue
        t_lb[r], value = coupled_root(
            edge.view, parts, cols, r, ladder[r], float(t_lb[r]), float(e_lb[r]), lam, edge.value(lam)
        )
        cheap[r] = max(cheap[r], value)
    whole = now() + INTEGER_SHARE * (deadline - now())
    for r in (int(k) for k in np.argsort(cheap, kind="stable")):  # the integer test, roots in their new order
        cutoff = (1 - 0.9 * gap) * edge.value(lam)
        if not cheap[r] < cutoff or now() >= whole:
            break
        t = coupled_latency(
            edge.view,
            cols,
            r,
            float(t_lb[r]),
            cutoff - lam * float(e_lb[r]),
            whole,
            functools.partial(_try_pick, edge, r, lam),
        )
        t_lb[r] = max(t_lb[r], t)
        cheap[r] = max(
            cheap[r], t + lam * float(e_lb[r]) if ladder is None else ladder_value(ladder[r], t, float(e_lb[r]), lam)
        )


def _try_pick(edge: _Edge, r: int, lam: float, x: np.ndarray) -> None:
    """Offer an integer pick of the coupled latency as a plan: its placement on the shortest-path tree to r."""
    parent = edge.spt[r]
    if (parent >= 0).all():
        edge.offer(x, parent, lam)


def tree_joint(
    problem: RoundProblem,
    enum_max: int = 200_000,
    workers: int | None = None,
    time_limit_s: float = 2.0,
    gap: float = 0.01,
    budget: str = "time",
    cache: ModelCache | None = None,
) -> RoundPlan:
    """Placement, tree and root per edge: exact on edges small enough to enumerate, else shortest-path trees and
    local search, then the tree MILP improves and certifies the plan until lower_bound >= (1 - gap) objective
    (status "optimal") or time_limit_s from the start (status "time_limit"; "not_proven" where an edge is too large
    for the model; 0 = the search alone). `workers` is accepted for a uniform call with the one-hop joint solver and
    checked there; the trees are planned in one process (the plan is the same for any value). budget: "time" or
    "work", what time_limit_s counts (solvers/clock.py; joint_solve). Where it pays (solvers/model_gate.py) the
    round's cvxpy tree model (solvers/model_tree.py) goes on from the plan; cache: its compiled programs kept
    across rounds (a solvers.ModelCache; None: compile each time)."""
    check_limits(time_limit_s, gap)
    check_budget(budget)
    cache = check_cache(cache)
    # before the clock (solvers/clock.py); not cvxpy: model_gate.py's model imports it within its own share
    load_libraries(tree=True)
    with under_budget(budget):
        return _tree_joint(problem, enum_max, time_limit_s, gap, cache)


def _tree_joint(
    problem: RoundProblem, enum_max: int, time_limit_s: float, gap: float, cache: ModelCache | None = None
) -> RoundPlan:
    """tree_joint within its budget."""
    t0, wall = now(), time.perf_counter()
    search_end = t0 + SEARCH_SHARE * time_limit_s if time_limit_s > 0 else math.inf
    plan, known = tree_search(problem, exact=False, enum_max=enum_max, deadline=search_end)
    if time_limit_s <= 0:
        proven = plan.lower_bound >= (1 - gap) * plan.objective
        return plan.with_(status=STATUS_PROVEN if proven else STATUS_UNPROVEN)
    plan = improve_trees(problem, plan, known, time_limit_s, gap, t0, cache)
    return plan.with_(solve_seconds=time.perf_counter() - wall)


def improve_trees(
    problem: RoundProblem,
    plan: RoundPlan,
    known: TreeEdges,
    time_limit_s: float,
    gap: float,
    t0: float,
    cache: ModelCache | None = None,
) -> RoundPlan:
    """The search's `plan` improved and certified by the tree MILP until gap is proven or t0 + time_limit_s; where
    the round's cvxpy tree model pays (solvers/model_gate.py) it keeps its seconds at the end (`_round_model`)."""
    p, lam = problem, problem.lam
    if plan.lower_bound >= (1 - gap) * plan.objective:
        return plan.with_(status=STATUS_PROVEN)
    end = t0 + time_limit_s
    model_s = model_seconds(p, end - now())
    deadline = end - model_s  # the per-root MILPs' (all of it where the model does not pay)
    edges = [
        _Edge(v, plan, pr, ex, lad)
        for v, pr, ex, lad in zip(known.views, known.pairs, known.enumerated, known.ladders, strict=True)
    ]
    covered, joint_lower = True, 0.0
    if lam == 0 or len(edges) == 1:
        tried: set[int] = set()
        while True:
            k = int(np.argmax([ed.value(lam) for ed in edges]))
            ed = edges[k]
            if _lower(edges, lam) >= (1 - gap) * _objective(edges, lam) or ed.exact or k in tried:
                break
            if ed.view.n > MODEL_MAX_DEVICES or now() >= deadline:
                covered &= ed.view.n <= MODEL_MAX_DEVICES
                break
            tried.add(k)
            covered &= _per_root(ed, lam, deadline, gap)
    elif sum(ed.view.n for ed in edges) <= MODEL_MAX_DEVICES and now() < deadline:
        obj = _objective(edges, lam)
        model = build([ed.view for ed in edges], obj, [ed.parts for ed in edges])
        if model is not None:
            kind, low, sol = model.solve([None] * len(edges), (1 - 0.9 * gap) * obj, deadline - now(), 0.8 * gap)
            if sol is not None:
                _offer_round(edges, sol, lam)
            if kind in ("optimal", "infeasible", "time_limit"):
                joint_lower = low
    else:
        covered = False
    if model_s > 0:
        got = _round_model(p, edges, gap, max(_lower(edges, lam), plan.lower_bound, joint_lower), end, cache)
        joint_lower = max(joint_lower, got)
        covered = True
    return _plan(p, plan, edges, gap, covered, joint_lower)


def _round_model(
    p: RoundProblem, edges: list[_Edge], gap: float, lower: float, end: float, cache: ModelCache | None
) -> float:
    """The round's cvxpy tree model (solvers/model_tree.py) from the edges' incumbents until `end`, unless `lower`
    (a valid bound) certifies them already: its plan is offered to the edges (taken where every tree is feasible
    and the round's objective drops), its bound returned (valid for every plan: the MILP relaxes every plan no
    worse than the incumbent, and proves the incumbent where it finds none)."""
    obj = _objective(edges, p.lam)
    if lower >= (1 - gap) * obj or now() >= end:
        return 0.0
    x, parent = np.zeros((p.num_devices, p.num_modules), dtype=bool), np.arange(p.num_devices)
    for ed in edges:
        x[ed.view.dev], parent[ed.view.dev] = ed.x, ed.view.dev[ed.parent]
    got = certify_tree(p, x, parent, end, gap, cache=cache)
    if got.objective < obj:
        local = np.full(p.num_devices, -1)
        for ed in edges:
            local[ed.view.dev] = np.arange(ed.view.n)
        _offer_round(edges, [(got.x[ed.view.dev], local[got.relay[ed.view.dev]]) for ed in edges], p.lam)
    return got.lower_bound


def _offer_round(edges: list[_Edge], sol: list[tuple[np.ndarray, np.ndarray]], lam: float) -> None:
    """Take the round MILP's solution if every edge's tree is feasible and the round's objective drops (edges share
    T at lambda > 0)."""
    costs = []
    for ed, (x, par) in zip(edges, sol, strict=True):
        v = ed.view
        if not (is_tree(v.rate, par, v.problem.relay_capacity) and v.feasible(x[None])[0]):
            return
        f, e = tree_cost(v, x[None], par[None])
        costs.append((float(f[0]), float(e[0])))
    new = max(c[0] for c in costs) + lam * sum(c[1] for c in costs)
    if new < _objective(edges, lam) * (1 - 1e-12):
        for ed, (x, par), (f0, e0) in zip(edges, sol, costs, strict=True):
            ed.x, ed.parent, ed.finish, ed.energy = x, par, f0, e0


def _objective(edges: list[_Edge], lam: float) -> float:
    return max(ed.finish for ed in edges) + lam * sum(ed.energy for ed in edges)


def _lower(edges: list[_Edge], lam: float) -> float:
    return threshold_value(*flat_pairs([ed.pairs for ed in edges], [ed.ladder for ed in edges]), lam)


def _plan(
    p: RoundProblem, plan: RoundPlan, edges: list[_Edge], gap: float, covered: bool, joint_lower: float
) -> RoundPlan:
    """The plan of the edges' incumbents; its bound: the best of the pairs' choice, the round MILP's and the
    search's. Status: optimal (gap proven), not_proven (an edge the model does not take), else time_limit."""
    x, parent, b = (
        plan.placement.copy(),
        plan.parent.copy() if plan.parent is not None else None,
        np.zeros(p.num_devices),
    )
    assert parent is not None
    for ed in edges:
        d = ed.view.dev
        x[d] = ed.x
        parent[d] = d[ed.parent]
        b[d[int(np.flatnonzero(ed.parent == np.arange(ed.view.n))[0])]] = p.edge_bandwidth_hz[ed.view.edge]
    t, en = max(ed.finish for ed in edges), sum(ed.energy for ed in edges)
    obj = t + p.lam * en
    if obj > plan.objective:  # never worse than the incumbent (cannot happen: offers only take improvements)
        return plan
    lower = min(max(_lower(edges, p.lam), plan.lower_bound, joint_lower), obj)
    if not math.isfinite(lower):
        lower = plan.lower_bound
    proven = lower >= (1 - gap) * obj
    status = STATUS_PROVEN if proven else STATUS_TIME if covered else STATUS_UNPROVEN
    return plan.with_(
        placement=x,
        relay=parent,
        parent=parent,
        bandwidth_hz=b,
        latency_s=t,
        energy_j=en,
        objective=obj,
        lower_bound=lower,
        status=status,
    )
