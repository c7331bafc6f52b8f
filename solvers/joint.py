"""Joint placement, relay and bandwidth: price-guided decomposition around the exact convex bandwidth step.

For a target latency T_e of edge e, device i's *price* is the least bandwidth it needs to finish by T_e,
h_i(T) = R_i^-1(U_i / (T - start_i)), and T_e is achievable iff sum_i h_i(T) <= B_e (this is the convex
bandwidth step's optimality condition). So at fixed T the discrete choices should minimize the total price:
  1. placement: per module, cover the demand with the devices of least marginal price per sample (a
     fractional-knapsack cover, the LP relaxation's greedy solution), then prune to a minimal cover;
  2. relays: accept D2D pairs (i -> j) in order of price saved h_i + h_j - h_j(with i's payload, later start);
  3. bandwidth: the exact convex step (bisection) gives the new T_e.
Repeat with the new T_e (prices sharpen as T_e drops), keep each edge's best; small edges are then enumerated
exactly and mid-size ones improved by local search with exact evaluations (solvers/tradeoff.py, local.py).
With lambda > 0 the choices are re-priced with energy (solvers/tradeoff.py) and the bandwidth is the exact
T + lambda E step (solvers/energy.py); power / frequency decisions go through solvers/powerfreq.py. The plan
carries a certified lower bound (solvers/bounds.py). See solvers/README.md for the math and the benchmark.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from solvers.bandwidth import ConvexBandwidth, minmax_bandwidth
from solvers.bounds import round_lower_bound
from solvers.clock import FINISH_S, HEURISTIC_ALONE, HEURISTIC_SHARE, Clock, load_libraries, now, under_budget
from solvers.energy import edge_latency, plan_bandwidth, round_uploads
from solvers.evaluate import evaluate, round_timeline, uplink_rate
from solvers.fields import check_budget, check_limits
from solvers.greedy import Repairs, greedy_placement, greedy_relays
from solvers.improve import (
    STATUS_PROVEN,
    STATUS_UNPROVEN,
    applies,
    edge_model_applies,
    improve,
    round_bound_clock,
    uses_cvxpy,
    within,
)
from solvers.instance import RoundProblem
from solvers.joint_levels import with_levels
from solvers.joint_powerfreq import PF_HEURISTIC_SHARE, with_power_frequency
from solvers.local import local_search
from solvers.model_cache import ModelCache, check_cache
from solvers.parallel import EdgeChoice, map_edges, resolve_workers
from solvers.plan import RoundPlan
from solvers.relay_sweep import sweep_relays
from solvers.tradeoff import energy_search, enum_limits, enumerate_latency, small_edge_candidates
from solvers.union_build import grouped_plans


def joint_solve(problem: RoundProblem, iterations: int = 4, local_max_devices: int = 16,
                local_rounds: int = 40, bandwidth: str = "auto", time_budget_s: float | None = None,
                enum_max: int | None = None, bound: bool = True, workers: int | None = None,
                time_limit_s: float = 2.0, gap: float = 0.01, cache: ModelCache | None = None,
                budget: str = "time") -> RoundPlan:
    """Joint plan (see module doc). bandwidth: "auto" (exact: bisection at lambda = 0, the water-filling over a
    1-D search of T at lambda > 0), "bisection" (same), "cvxpy" (the conic program, a cross-check).
    Edges of at most 8 devices and enum_max undominated choices are enumerated (0 turns that off; None: 3,000,
    and at lambda > 0 a round-wide pool of 47,000 more, solvers/tradeoff.py ENERGY_ENUM_EXTRA).
    bound: compute the plan's certified lower_bound (solvers/bounds.py; else 0).
    workers: processes over independent edges at lambda = 0 (solvers/parallel.py; None: 2 on large instances,
    else 1); the plan is the same for any value. A time budget keeps to one process (it is per process).

    time_limit_s, gap: the round's model (solvers/model.py via solvers/improve.py) improves and certifies the
    heuristic plan until lower_bound >= (1 - gap) objective (status "optimal") or the round has run time_limit_s
    seconds (status "time_limit"); "not_proven" where the model does not apply and the heuristics' bound is looser.
    The model needs `bound` (0 turns it off: time_limit_s=0). The heuristics get HEURISTIC_SHARE of time_limit_s
    (HEURISTIC_ALONE where the model cannot work on the round: solvers/clock.py) and stop early when it is spent
    (time_limit_s=0: unbounded, deterministic); time_budget_s, when given, bounds them further.
    cache: a solvers.ModelCache the caller keeps across rounds, so a round of the same structure re-solves the
    compiled model (None: compile each time).
    budget: what time_limit_s and time_budget_s count (solvers/clock.py): "time", wall-clock seconds (the plan
    depends on the machine and its load), or "work", deterministic work units calibrated to about a CPU second each
    on the reference machine (the same instance gives the same plan: the engine's default).

    Raises CoverageError when coverage cannot be met within memory (solvers.solve turns it into a fallback).
    """
    if bandwidth not in ("auto", "bisection", "cvxpy"):
        raise ValueError(f"bandwidth: must be auto, bisection or cvxpy, got {bandwidth!r}")
    check_limits(time_limit_s, gap)
    check_budget(budget)
    cache = check_cache(cache)
    with under_budget(budget):
        return _joint(problem, iterations, local_max_devices, local_rounds, bandwidth, time_budget_s, enum_max,
                      bound, workers, time_limit_s, gap, cache)


def _joint(problem: RoundProblem, iterations: int, local_max_devices: int, local_rounds: int, bandwidth: str,
           time_budget_s: float | None, enum_max: int | None, bound: bool, workers: int | None, time_limit_s: float,
           gap: float, cache: ModelCache | None) -> RoundPlan:
    """joint_solve within its budget (the clock `now` reads: wall or work)."""
    # before the clock: a process's first solve imported them inside it (0.55 s under load, cvxpy 0.7 s)
    # (not for model_gate.py's model: it runs on few rounds, and imports cvxpy within its own share)
    load_libraries(cvxpy=bandwidth == "cvxpy" or (bound and time_limit_s > 0 and uses_cvxpy(problem)))
    t0, wall = now(), time.perf_counter()  # t0 for the deadlines (solvers/clock.py), wall for solve_seconds
    opts: dict[str, Any] = dict(iterations=iterations, local_max_devices=local_max_devices, local_rounds=local_rounds,
                                bandwidth=bandwidth, time_budget_s=time_budget_s, enum_max=enum_max, bound=bound,
                                workers=workers)
    if problem.offers_levels:
        return with_levels(problem, joint_solve, time_limit_s=time_limit_s, gap=gap, **opts)
    share = HEURISTIC_SHARE if applies(problem) else HEURISTIC_ALONE
    if problem.has_power_frequency and problem.lam > 0:
        share = PF_HEURISTIC_SHARE
    elif edge_model_applies(problem) and problem.num_devices >= ONEHOP_HEURISTIC_MIN_DEVICES:
        share = ONEHOP_HEURISTIC_SHARE
    opts["deadline"] = Clock.start(time_limit_s, t0)  # the round's: what the certified bound may use at lambda > 0
    opts["clock"] = opts["deadline"].share(share).within(time_budget_s)
    if problem.has_power_frequency:
        plan = with_power_frequency(problem, _solve_fixed, (time_limit_s, gap), cache, **opts)
        proven = bound and within(plan, gap)
        return plan.with_(status=STATUS_PROVEN if proven else STATUS_UNPROVEN, solve_seconds=time.perf_counter() - wall)
    plan = _heuristic(problem, **opts)
    if not bound or bandwidth == "cvxpy":
        return plan
    if time_limit_s <= 0:
        return plan.with_(status=STATUS_PROVEN if within(plan, gap) else STATUS_UNPROVEN)
    plan = improve(problem, plan, time_limit_s, gap, t0, cache)
    return plan.with_(solve_seconds=time.perf_counter() - wall)


def _heuristic(problem: RoundProblem, iterations: int, local_max_devices: int, local_rounds: int, bandwidth: str,
               time_budget_s: float | None, enum_max: int | None, bound: bool, workers: int | None,
               clock: Clock, deadline: Clock) -> RoundPlan:
    """The heuristic plan (today's joint solver): the model's incumbent, within `clock`."""
    resolve_workers(problem, workers)  # a bad value raises before any work
    if problem.has_power_frequency:
        return with_power_frequency(problem, _solve_fixed, iterations=iterations, local_max_devices=local_max_devices,
                                    local_rounds=local_rounds, bandwidth=bandwidth, time_budget_s=time_budget_s,
                                    enum_max=enum_max, bound=bound, workers=workers, clock=clock, deadline=deadline)
    return _solve_fixed(problem, iterations=iterations, local_max_devices=local_max_devices,
                        local_rounds=local_rounds, bandwidth=bandwidth, time_budget_s=time_budget_s,
                        enum_max=enum_max, bound=bound, workers=workers, clock=clock, deadline=deadline)


def _solve_fixed(problem: RoundProblem, iterations: int, local_max_devices: int, local_rounds: int, bandwidth: str,
                 time_budget_s: float | None, enum_max: int | None, bound: bool, workers: int | None,
                 clock: Clock, deadline: Clock | None = None) -> RoundPlan:
    """Fixed power and frequency: the price-guided choices, enumeration, local search, the exact band (the
    heuristic steps stop early when `clock` runs out; at lambda > 0 the certified bound takes fewer steps once the
    round's `deadline` has passed)."""
    n_workers = resolve_workers(problem, workers)
    t0 = time.perf_counter()
    p = problem
    opts: dict[str, Any] = dict(iterations=iterations, local_max_devices=local_max_devices, local_rounds=local_rounds,
                                enum_max=enum_max, clock=clock)
    if p.lam == 0 and bandwidth != "cvxpy":  # the round separates by edge
        part = map_edges(p, latency_choice, 1 if time_budget_s is not None else n_workers, **opts)
        if UNION_BUILD and p.relay_aggregates:
            part = _grouped(p, part, local_max_devices, clock)
        cost = evaluate(p, part.x, part.relay, part.bandwidth_hz)
        lower = float(round_lower_bound(p, part.edge_latency, part.known)) if bound else 0.0
        return RoundPlan(placement=part.x, relay=part.relay, bandwidth_hz=part.bandwidth_hz,
                         latency_s=cost.latency_s, energy_j=cost.energy_j, objective=cost.objective, solver="joint",
                         status="solved", solve_seconds=time.perf_counter() - t0,
                         lower_bound=min(lower, cost.objective))
    repairs = Repairs(clock)
    best_x, best_r, small = _choose(p, repairs=repairs, **opts)
    hint, exact_lb = None, 0.0
    t_fast = None
    if p.lam > 0:
        if bound:  # the latency-first choices' edge latencies: where the latency bound's LP ladder starts (below)
            t_fast = edge_latency(p, [(best_x, best_r)])[0]
        best_x, best_r, hint, exact_lb = energy_search(p, best_x, best_r, small, local_max_devices=local_max_devices,
                                                       repairs=repairs)
        sizes = np.bincount(p.device_edge, minlength=p.num_edges)
        large = [e for e in np.argsort(-sizes).tolist() if e not in small and sizes[e] > local_max_devices]
        if RELAY_SEARCH and large and hint is not None:  # its first rounds run past the clock (below)
            best_r, _ = sweep_relays(p, best_x, best_r, hint, large, clock.share(RELAY_SEARCH_SHARE),
                                     min_rounds=SWEEP_MIN_ROUNDS)
    status = "optimal"
    if bandwidth == "cvxpy":
        tl = round_timeline(p, best_x, best_r)
        b, _, status = ConvexBandwidth().solve(p, tl.start, tl.bits, tl.uploader)
    else:
        b = plan_bandwidth(p, best_x, best_r, hint=hint)
    cost = evaluate(p, best_x, best_r, b)
    lower = 0.0
    if bound:
        t_known = edge_latency(p, [(best_x, best_r)])[0]  # the lambda-0 latency of each edge's final choice
        if t_fast is not None:  # both are achievable; the energy search's choices are slower (at 1,000 devices and
            # lambda 0.5 three times): from them the 16 LPs of the subset bound went down its ladder for 0.8 CPU s
            t_known = np.minimum(t_known, t_fast)
        lower = exact_lb  # every edge enumerated: the branch and bound's certificate; else the general bound
        if lower < (1 - 1e-4) * cost.objective:
            clock_lb = None if deadline is None else round_bound_clock(p, deadline.before(FINISH_S))  # the plan's check
            lower = float(max(round_lower_bound(p, t_known, _known(p, small), upper=cost.objective,
                                                clock=clock_lb), exact_lb))
    return RoundPlan(placement=best_x, relay=best_r, bandwidth_hz=b, latency_s=cost.latency_s,
                     energy_j=cost.energy_j, objective=cost.objective, solver="joint",
                     status="solved" if status == "optimal" else status,
                     solve_seconds=time.perf_counter() - t0, lower_bound=min(lower, cost.objective))


def _grouped(p: RoundProblem, part: EdgeChoice, local_max_devices: int, clock: Clock) -> EdgeChoice:
    """lambda = 0, relays that aggregate: the edges above local_max_devices near the round's latency get plans built
    group by group (solvers/union_build.py), kept where faster (on the whole round: the edges it takes depend on
    the round's latency, so the plan does not depend on how map_edges split the round)."""
    size = np.bincount(p.device_edge, minlength=p.num_edges)
    x, relay, t = grouped_plans(p, part.x, part.relay, part.edge_latency, size > local_max_devices, clock=clock)
    if np.array_equal(relay, part.relay) and np.array_equal(x, part.x):
        return part
    return _edge_choice(p, x, relay, part.known)


def _known(p: RoundProblem, small: dict) -> np.ndarray:
    """[E] the exact least latency of each enumerated edge (a hair below, for the bound), 0 elsewhere. An edge
    enumerated with pruning (solvers/enum_prune.py) gives the least over the choices that can be optimal: the
    optimum's latency is at least that, all the bound needs."""
    known = np.zeros(p.num_edges)
    for e, c in small.items():
        known[e] = float(c.t_min.min()) * (1 - 1e-9)
    return known


def latency_choice(problem: RoundProblem, **opts: Any) -> EdgeChoice:
    """lambda = 0: the choices of every edge, their exact min-max band and latency (per edge separable: what
    solvers/parallel.py runs on chunks of edges)."""
    p = problem
    x, relay, small = _choose(p, **opts, repairs=Repairs(opts["clock"]))
    return _edge_choice(p, x, relay, _known(p, small))


def _edge_choice(p: RoundProblem, x: np.ndarray, relay: np.ndarray, known: np.ndarray) -> EdgeChoice:
    """lambda = 0: these choices with every edge's exact min-max band and latency."""
    up, idx = round_uploads(p, x, relay)
    t_edge, b_up = minmax_bandwidth(up.group, up.start, up.bits, up.a, up.budget)
    b = np.zeros(p.num_devices)
    b[idx] = b_up
    return EdgeChoice(x=x, relay=relay, bandwidth_hz=b, edge_latency=t_edge, known=known)


ONEHOP_HEURISTIC_SHARE = 0.6
"""lambda > 0, one edge whose relays forward (solvers/improve.py `edge_model_applies`), at least
ONEHOP_HEURISTIC_MIN_DEVICES devices: the heuristics' share of time_limit_s (HEURISTIC_SHARE elsewhere). At 2 s the
plan was the weak side there: unclocked (2.4-9 CPU s) the heuristics found plans up to 43 % cheaper than within 1 CPU
s on 8- and 12-device edges. A/B at 2 s, CPU clock, 16 bench edges: median certified gap 15.9 -> 10.1 %, plans 4.6 %
cheaper on average (0.7: 15.4 -> 13.4 %, but two edges' bounds lost 3-9 points and one ran 2.36 CPU s);
experiments/results/solver_model/s25oh/NOTES.md."""
ONEHOP_HEURISTIC_MIN_DEVICES = 6
"""Smaller edges are enumerated (the plan is the optimum): their time stays with the bound."""
RELAY_SEARCH = True
"""lambda > 0: relay moves on the edges the energy search gives no local search (solvers/relay_sweep.py)."""
RELAY_SEARCH_SHARE = 0.6
"""The part of the heuristics' time left that the relay moves may take (the certified bound comes after)."""
SWEEP_MIN_ROUNDS = 2
"""Rounds of relay moves that run whatever the clock says: at 10,000 devices the energy search's first selection
spends the heuristics' clock, and two rounds (about 0.03 CPU s there) take most of what the moves gain."""
LATENCY_LOCAL_SHARE = 0.3
"""lambda > 0: the part of the heuristics' time left that the lambda-0 local search may take (the energy search,
solvers/tradeoff.py, which chooses the plan, gets the rest; given all of it, the local search left the energy
search nothing on 8-device edges: 42-67 against 28-55 for the uncut search, experiments/solver_edge_diagnosis.py)."""
MIN_PRICE_STEPS = 3
"""Price steps (placement, relays, band) that run whatever the clock says (of `iterations`)."""
UNION_BUILD = True
"""lambda = 0, relays that aggregate: edges above local_max_devices also get plans built group by group
(solvers/union_build.py), kept where faster."""


def _choose(p: RoundProblem, iterations: int, local_max_devices: int, local_rounds: int, enum_max: int | None,
            clock: Clock, repairs: Repairs) -> tuple[np.ndarray, np.ndarray, dict]:
    """Placement and relays by prices (steps 1-3, `iterations` times), then enumeration of small edges and local
    search on mid-size ones: (x, relay, the enumerated edges' candidates). Once `clock` has run out, the steps left
    are skipped, but the first MIN_PRICE_STEPS price steps always run: they make the plan (at 100,000 devices one
    step alone left it 52 % slower than three, which cost 1.6x the time of one)."""
    n = p.num_devices
    # Start from the prices of the full placement at equal shares: every smaller placement is feasible there.
    full = p.eligible.copy()
    tl = round_timeline(p, full, np.arange(n))
    cnt = np.bincount(p.device_edge[tl.uploader], minlength=p.num_edges)
    share = p.edge_bandwidth_hz[p.device_edge] / np.maximum(cnt[p.device_edge], 1)
    fin = np.where(tl.uploader, tl.start + tl.bits / np.maximum(uplink_rate(share, p.snr_hz), 1e-300), 0.0)
    t_edge = np.zeros(p.num_edges)
    np.maximum.at(t_edge, p.device_edge, fin)
    best_t = np.full(p.num_edges, np.inf)
    best_x = np.zeros_like(full)
    best_r = np.arange(n)
    for step in range(iterations):
        t_dev = t_edge[p.device_edge]
        x = greedy_placement(p, t_dev, repairs=repairs)
        relays = (greedy_relays(p, x, t_dev), np.arange(n))
        for relay, t_new in zip(relays, edge_latency(p, [(x, r) for r in relays]), strict=True):
            better = t_new < best_t
            if better.any():
                rows = better[p.device_edge]
                best_x[rows] = x[rows]
                best_r[rows] = relay[rows]
                best_t = np.where(better, t_new, best_t)
        t_edge = np.where(np.isfinite(best_t), best_t, t_edge)
        if step + 1 >= MIN_PRICE_STEPS and clock.expired():
            break
    limit, extra = enum_limits(p, enum_max)
    small = small_edge_candidates(p, limit, extra=extra) if limit > 0 else {}  # bounded work: never cut
    best_x, best_r = enumerate_latency(p, best_x, best_r, small)
    if local_rounds > 0 and not clock.expired():
        # at lambda > 0 this latency search only seeds the energy search: it gets a part of the clock, not all
        local_clock = clock.share(LATENCY_LOCAL_SHARE) if p.lam > 0 else clock
        best_x, best_r = local_search(p, best_x, best_r, max_devices=local_max_devices, rounds=local_rounds,
                                      skip=frozenset(small), clock=local_clock)
    return best_x, best_r, small
