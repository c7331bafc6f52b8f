"""Discrete choices priced with energy (lambda > 0), and exact enumeration of small edges (any lambda).

Small edges (at most `enum_max` undominated choices) are enumerated: at lambda = 0 the least-latency choice is
exact; at lambda > 0 every choice on the edge's latency-energy front stays a candidate. Edges of up to
`local_max_devices` devices get the local-search neighbourhood of their current choice (solvers/local.py), larger
edges keep their lambda-0 choice. Then coordinate descent over edges: at deadlines around the current best T,
the branch and bound of solvers/candidates.py picks the best product of the edges' candidate sets and its T;
local edges then get the neighbourhood of their new choice; a step that does not lower the exact objective
is undone and the search stops.
"""

from __future__ import annotations

import numpy as np

from solvers.candidates import EdgeCandidates, select_exact
from solvers.clock import Clock, now
from solvers.edgebatch import EdgeView
from solvers.energy import best_deadline, round_uploads
from solvers.energy_bound import EnergyBound
from solvers.enum_prune import pruned_candidates
from solvers.evaluate import evaluate
from solvers.exact import edge_candidates, minimal_covers
from solvers.greedy import Repairs, energy_weights, greedy_placement, greedy_relays
from solvers.instance import RoundProblem
from solvers.local import neighbours

COARSE_DEVICES = 16
"""Rounds of more devices select with a coarser tolerance and skip the band-priced cover once the clock has run out
(the exact objective judges each step)."""
RELAY_DEADLINES = (1.0, 4.0, 100.0)
"""Deadlines (x the current best T) at which the greedy relays of the band-priced cover are drawn (lambda > 0)."""


ENUM_MAX = 3000
"""Undominated choices an edge of at most 8 devices may have and still be enumerated (joint's `enum_max` default)."""
ENERGY_ENUM_EXTRA = 47_000
"""At lambda > 0 (enum_max left to its default), the round's pool of choices beyond ENUM_MAX: edges enumerate up to
ENUM_MAX + what is left of it (one edge up to 50,000 choices). There the alternative is the round's model, which
left 4- and 5-device edges of 10,000-36,000 choices 0.2-12 % from their bound at 2 s, where their enumeration is
exact in 0.2-0.8 CPU s (experiments/results/solver_model/s26enum/NOTES.md). A pool, not a per-edge limit, so a
round of many small edges does bounded work: an edge that overflows its limit spends its extra too (its cover search
ran that far)."""


PRUNE_MAX = 400_000
"""At lambda > 0 (the pool on), a round of one edge: its choices up to this many are bounded cheaply and only those
that can be optimal are priced (solvers/enum_prune.py), as many as the per-edge limit + pool: 5- and 6-device edges
of 150,000-365,000 choices exact in 0.4-1.0 CPU s (were 1-20 % from their bound at 2 s, s27us/NOTES.md)."""


def enum_limits(problem: RoundProblem, enum_max: int | None) -> tuple[int, int]:
    """(per-edge limit, the round's extra pool) for `small_edge_candidates`; enum_max None: the defaults above."""
    if enum_max is None:
        return ENUM_MAX, ENERGY_ENUM_EXTRA if problem.lam > 0 else 0
    return enum_max, 0


def small_edge_candidates(problem: RoundProblem, enum_max: int, max_devices: int = 8,
                          clock: Clock | None = None, extra: int = 0) -> dict[int, EdgeCandidates]:
    """Every edge with at most max_devices devices and enum_max choices (plus what is left of the round's `extra`
    pool): all its undominated choices (the edges reached before `clock` runs out; the others keep the heuristics'
    choice)."""
    out = {}
    sizes = np.bincount(problem.device_edge, minlength=problem.num_edges)
    prune = problem.lam > 0 and extra > 0 and np.count_nonzero(sizes) == 1  # solvers/enum_prune.py
    for e in np.flatnonzero((sizes > 0) & (sizes <= max_devices)):
        if clock is not None and clock.expired():
            break
        view = EdgeView.of(problem, int(e))
        limit = enum_max + extra
        try:
            c = pruned_candidates(view, problem.lam, PRUNE_MAX, limit) if prune else edge_candidates(view, limit)
        except ValueError:  # coverage or memory: leave the edge to the heuristics, which report it
            continue
        if c is None:
            extra = 0  # the cover search ran to its limit: the pool is spent
        else:
            extra -= max(c.size - enum_max, 0)
            out[int(e)] = c
    return out


def enumerate_latency(problem: RoundProblem, x: np.ndarray, relay: np.ndarray,
                      small: dict[int, EdgeCandidates]) -> tuple[np.ndarray, np.ndarray]:
    """lambda = 0: every enumerated edge takes its least-latency choice (exact for that edge)."""
    x, relay = x.copy(), relay.copy()
    for c in small.values():
        j = int(np.argmin(c.t_min))
        x[c.view.dev] = c.x[j]
        relay[c.view.dev] = c.view.dev[c.relay[j]]
    return x, relay


def _objective(problem: RoundProblem, x: np.ndarray, relay: np.ndarray) -> tuple[float, float]:
    """(exact T + lambda E of the choice with its best bandwidth, that T): one search over T (solvers/energy.py);
    on rounds over COARSE_DEVICES to a relative 1e-7 in T rather than 1e-10 (about 35 water-fillings instead of 55:
    at 10,000 devices 0.1 CPU s less a call; the final band, `plan_bandwidth`, keeps 1e-10)."""
    up, idx = round_uploads(problem, x, relay)
    t, b_up = best_deadline(up, problem.lam, tol=1e-7 if problem.num_devices > COARSE_DEVICES else 1e-10)
    b = np.zeros(problem.num_devices)
    b[idx] = b_up
    return evaluate(problem, x, relay, b).objective, t


def _local(view: EdgeView, x: np.ndarray, relay: np.ndarray, covers: list | None,
           compound: bool = True) -> EdgeCandidates:
    d = view.dev
    local = {int(g): k for k, g in enumerate(d)}
    xe = x[d]
    re = np.array([local[int(r)] for r in relay[d]])
    xa, ra = neighbours(view, xe, re, compound=compound and view.n <= 8, covers=covers)
    c = EdgeCandidates.of(view, np.concatenate([xe[None], xa]), np.concatenate([re[None], ra]))
    return c.subset(np.flatnonzero(c.pareto_mask(points=10) | (np.arange(c.size) == 0)))


def energy_search(problem: RoundProblem, x: np.ndarray, relay: np.ndarray, small: dict[int, EdgeCandidates],
                  local_max_devices: int = 16, rounds: int = 30,
                  repairs: Repairs | None = None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Improve (x, relay) for T + lambda E: (x, relay, its best deadline T, a certified lower bound on the
    optimum when every edge was enumerated, else 0).

    The cap: where every edge is enumerated the search runs to the end whatever the clock (bounded work: one
    branch and bound over fixed candidate sets, and its answer is exact); elsewhere it stops when `repairs.clock`
    runs out, between rounds and inside the branch and bound over T (one step of it took 7-26 CPU s on 8-device
    edges with compound neighbourhoods before `EdgeCandidates.least`), and the round's model (solvers/improve.py)
    improves and certifies the rest. Rounds over COARSE_DEVICES skip the band-priced cover once the clock has run
    out, and select with a coarser tolerance (the exact objective judges each step)."""
    p = problem
    repairs = Repairs() if repairs is None else repairs
    clock = repairs.clock
    x, relay = x.copy(), relay.copy()
    # within a time limit the simple neighbourhoods first (compound ones cost several times more per round, and
    # more rounds of simple ones reached about the same plans: 8-device edges, unbounded, 130.9 / 187.6 in 1.7 / 2.4
    # CPU s against 130.3 / 187.6 in 3.7 CPU s); the compound ones once those stop improving
    compound = not clock.bounded
    views: list[EdgeView] = []
    cands: list[EdgeCandidates] = []
    covers: list[list[list[tuple[int, ...]]] | None] = []  # per view: minimal covers per module (None: too many)
    try:
        x_energy = greedy_placement(p, np.full(p.num_devices, np.inf), weights=energy_weights(p), repairs=repairs)
    except ValueError:  # memory blocks the energy cover somewhere: keep the lambda-0 choices there
        x_energy = x.copy()
    start = _objective(p, x, relay)
    t_now = start[1]
    relay_energy = greedy_relays(p, x_energy, np.full(p.num_devices, t_now))
    x_priced = x_energy
    sizes = np.bincount(p.device_edge, minlength=p.num_edges)
    large = [e for e in range(p.num_edges) if e not in small and sizes[e] > local_max_devices]
    cut = p.num_devices > COARSE_DEVICES
    if large and not p.has_power_frequency and not (cut and clock.expired()):  # only large edges take these
        try:  # the cover the latency-energy bound would choose (band priced), made integral
            x_priced = greedy_placement(p, np.full(p.num_devices, np.inf),
                                        weights=EnergyBound.of(p).priced_weights(t_now), repairs=repairs)
        except ValueError:
            x_priced = x_energy
    # relays for the priced cover at later deadlines too: an aggregating upload saves energy (one device's power
    # over a wider band), and a later deadline makes the greedy accept more of them
    relay_priced = [greedy_relays(p, x_priced, np.full(p.num_devices, f * t_now)) for f in RELAY_DEADLINES
                    ] if large else []
    for e in range(p.num_edges):
        if e in small:
            views.append(small[e].view)
            cands.append(small[e].pareto())
            covers.append(None)
            continue
        view = EdgeView.of(p, e)
        if view.n == 0:
            continue
        views.append(view)
        cov = None
        if view.n <= 12:
            cov = [minimal_covers(p.samples[view.dev], p.eligible[view.dev, k], view.demand[k])
                   for k in range(p.num_modules)]
            cov = cov if sum(len(c) for c in cov) <= 400 else None
        covers.append(cov)
        if view.n <= local_max_devices and not clock.expired():
            cands.append(_local(view, x, relay, cov, compound))
        else:  # its lambda-0 choice, and the least-energy cover without and with greedy relays
            d = view.dev
            local = {int(g): k for k, g in enumerate(d)}
            re = np.array([local[int(r)] for r in relay[d]])
            xe, r_e = x_energy[d], np.array([local[int(r)] for r in relay_energy[d]])
            xq, r_q = x_priced[d], [np.array([local[int(r)] for r in rp[d]]) for rp in relay_priced]
            ident = np.arange(view.n)
            cands.append(EdgeCandidates.of(view, np.stack([x[d], xe, xe, xq] + [xq] * len(r_q)),
                                           np.stack([re, ident, r_e, ident, *r_q])))
    choice = []
    moved = False
    for v, c in zip(views, cands, strict=True):  # the current choice of each edge
        if v.edge in small:
            d = v.dev
            local = {int(g): k for k, g in enumerate(d)}
            re = np.array([local[int(r)] for r in relay[d]])
            hit = np.flatnonzero((c.x == x[d]).all(axis=(1, 2)) & (c.relay == re).all(axis=1))
            if hit.size == 0:  # the lambda-0 choice was pruned as dominated: start from the fastest kept
                j = int(np.argmin(c.t_min))
                x[d], relay[d] = c.x[j], d[c.relay[j]]
                hit = np.array([j])
                moved = True
            choice.append(int(hit[0]))
        else:
            choice.append(0)
    cur, t_ref = _objective(p, x, relay) if moved else start
    exact = all(v.edge in small for v in views)
    lower = 0.0
    last = 0.0  # seconds of the last step (selection and its objective)
    for step in range(rounds):
        # the first selection always runs: it makes the plan; on rounds over COARSE_DEVICES a later one only if the
        # last one's time is left (at 10,000 devices one takes 0.35 CPU s: begun just before the deadline, it took
        # the round past 2 s)
        if step > 0 and not exact and (clock.expired() or (cut and clock.left() < last)):
            break
        began = now()
        coarse = cut and not exact  # a large round: the exact objective below judges the step anyway
        sel = select_exact(cands, p.lam, rtol=1e-3 if coarse else 1e-5, grid=9 if coarse else 17,
                           iters=20 if coarse else 36, clock=None if exact else clock)
        new = sel.choice
        if exact:  # the candidate sets are every undominated choice: the branch and bound's bound is certified
            lower = max(lower, sel.lower_bound)
        val = cur
        if new != choice:
            x2, r2 = x.copy(), relay.copy()
            for v, c, j in zip(views, cands, new, strict=True):
                x2[v.dev] = c.x[j]
                r2[v.dev] = v.dev[c.relay[j]]
            val, t2 = _objective(p, x2, r2)
        last = now() - began
        if not val < cur * (1 - 1e-12):
            if compound or clock.expired() or exact:
                break
            compound = True  # the simple neighbourhoods are spent: the compound ones around the same choice
        else:
            x, relay, cur, t_ref, choice = x2, r2, val, t2, new
        if clock.expired() and not exact:
            break
        for k, v in enumerate(views):  # local edges: a fresh neighbourhood around the new choice
            if v.edge not in small and v.n <= local_max_devices:
                cands[k] = _local(v, x, relay, covers[k], compound)
                choice[k] = 0
    return x, relay, t_ref, lower
