"""`joint`'s last stage: the heuristic plan is the incumbent; the round's model (solvers/model.py) improves and
certifies it within the time limit.

lambda = 0: the round separates by edge (T = max_e T_e), so the model works on one edge at a time (the latency
column model of solvers/latency_model.py, or solvers/union_model.py when relays aggregate), the slowest
first, and stops as soon as the best edge bound certifies the round's latency within `gap`: at scale only the few
edges that set T are modelled; edges above MODEL_MAX_DEVICES (relays that forward) first get plans read off the
subset LP (solvers/lp_round.py), the slowest first, within LARGE_EDGE_SHARE of the limit, the slowest one's candidates
polished by the moves of solvers/pair_moves.py, then those moves on the next slowest, and the slowest edges' LP
thresholds bisected (the round's bound). lambda > 0 couples the
edges through T, so the model takes the whole round, when it is small enough (MODEL_MAX_DEVICES); a one-edge round
with relays that forward first gets a plan read off the subset MILP (solvers/subset_plan.py), then the one MILP
with T a variable (solvers/edge_model.py). Every MILP gets the time left of the round's `time_limit_s`.
"""

from __future__ import annotations

import numpy as np

from solvers.bounds import EdgeRoutes, subset_lower_bound
from solvers.clock import FINISH_S, Clock, now
from solvers.edge_model import EdgeModel
from solvers.energy import plan_bandwidth
from solvers.energy_columns import lambda_bound
from solvers.evaluate import evaluate
from solvers.group_bound import group_applies, group_lower_bound
from solvers.instance import RoundProblem
from solvers.latency_search import search_latency
from solvers.lp_round import Polish, round_edge
from solvers.model import certify
from solvers.model_cache import ModelCache
from solvers.pair_moves import pair_moves
from solvers.parallel import restrict
from solvers.plan import STATUS_PROVEN, STATUS_TIME, STATUS_UNPROVEN, RoundPlan
from solvers.subset_plan import subset_plan
from solvers.union_columns import UnionColumns, union_refute
from solvers.union_dual import union_dual_bound
from solvers.union_scale import union_scale_bound

MODEL_MAX_DEVICES = 16
"""Largest edge (lambda = 0) or round (lambda > 0) given to the model; larger ones keep the heuristics' bound."""
MODEL_MAX_MODULES = 8
LARGE_EDGE_SHARE = 0.4
"""lambda = 0: edges of more than MODEL_MAX_DEVICES devices get the LP-rounded candidates of solvers/lp_round.py,
slowest first, until this share of time_limit_s from the round's start (a 10,000-device round stays within 2 s end
to end, experiments/solver_speed.py)."""
PAIR_MOVES_SHARE = 0.5
"""lambda = 0: after the LP-rounded candidates, the slowest edges above MODEL_MAX_DEVICES get the moves of
solvers/pair_moves.py (+0.00-0.2 CPU s a 1,000-10,000-device round), until this share of
time_limit_s."""
POLISH = True
"""lambda = 0: the slowest large edge's plan and its LP-rounded candidates each go through solvers/pair_moves.py
before they are compared."""
THRESHOLD_SHARE = 0.6
"""lambda = 0: then, until this share of time_limit_s, the THRESHOLD_EDGES slowest edges' subset LP thresholds are
bisected between the round's bound and the edge's latency (THRESHOLD_STEPS LPs from the last basis): the bound's
ladder and the LP-rounding's few steps leave them under it, and an edge below the slowest may prove more."""
THRESHOLD_STEPS = 10
LATE_MIN_S = 0.15
"""... and each of the two at least this long where the heuristics ran past their shares (at 100,000 devices they
end after 0.6 of the limit), within the limit."""
THRESHOLD_EDGES = 4
UNION_DUAL = True
"""lambda = 0, relays that aggregate: the slowest edge above MODEL_MAX_DEVICES gets solvers/union_dual.py's bound ..."""
UNION_SCALE_SHARE = 1.0
"""... first, the share of the time left for the relay-group master (solvers/union_scale.py; rounds of at most
MODEL_MAX_MODULES modules), the union LP's dual after it with the rest. A/B (CPU clock, 3 seeds): median certified gap
29.5 -> 19.0 % at 1,000 devices, 31.5 -> 19.4 % at 10,000 (experiments/results/solver_scale_gap/s25ra/NOTES.md)."""
UNION_COLUMNS_SHARE = 0.8
"""lambda = 0, relays that aggregate, edges of at most MODEL_MAX_DEVICES: share of the model's time the relay-group
master (solvers/union_columns.py) may take to refute trial latencies before the column model's search; it bisects
on with the time the search leaves. A/B at 0.5 with 3 bisection steps first: median certified gap 6.6 -> 5.6 %."""
LAMBDA_SHARE = 0.6
"""lambda > 0 on one edge: the share of the time left for the least-energy bound before the round's MILP."""
EDGE_COLUMNS_SHARE = 0.0
"""The same where the edge MILP (solvers/edge_model.py) follows: none. From one incumbent with 2 s each, the
least-energy column bound certified 60-95 % gaps on 8-12-device edges and the edge MILP 14-25 % on 8 devices
(experiments/solver_bound_parts.py); the 0.6 it had left the edge MILP too little time for its root LP."""

SUBSET_PLAN_SHARE = 0.5
"""lambda > 0, one edge whose relays forward: the share of the model's time for the subset MILP's plan
(solvers/subset_plan.py) before the edge MILP."""

GROUP_SHARE = 0.8
"""lambda > 0, fixed power and frequency, one-hop relays (forwarding or aggregating), rounds of at most
MODEL_MAX_DEVICES: the share of the model's time (what the subset MILP's plan left, with relays that forward) for the
relay-group bound of solvers/group_columns.py (exact group prices by column generation) before the rest."""
GROUP_MIN_S = 1.2
"""... where the model has at least this many seconds left (after joint's round bound, which it only adds to). One
master takes 0.21-0.55 CPU s on 8-12-device edges and the objective bound 2.2-5.5 (experiments/solver_group_speed.py):
within the default 2 s limit the model has 0.1-0.4 s left, and a round bound cut short for it doubled the median
certified gap (2 s A/B: 8.99 -> 16.26 %), so with relays that forward it is off there."""
AGGREGATES_GROUP_MIN_S = 0.3
"""The same with relays that aggregate, where the group bound reaches the plan's own bound within 1 CPU s ..."""
AGGREGATES_ROUND_RESERVE_S = 1.4
"""... and joint's round bound stops this many seconds before the deadline to leave it the time (at 2 s: the round
bound at its fewest steps; A/B at 2 s on the bench's 16 edges of 8 and 12 devices at lambda > 0: median certified
gap 15.39 -> 13.27 %, 15 of 16 lower; experiments/results/solver_model/s23g/NOTES.md). 1.0 -> 1.4 once the group
bound's pricing was batched (solvers/group_batch.py): 11.89 -> 10.92 %, 10 lower, none higher; 1.8 mixed
(experiments/results/solver_model/s27gp/NOTES.md)."""
AGGREGATES_GROUP_SHARE = 0.95
"""With relays that aggregate, the relay-group bound's share of the model's time, and the least-energy column MILPs of
solvers/energy_columns.py after it are skipped: on 8-12-device edges at 2 s they got 0.05-0.1 CPU s and bounded
0.0-0.22 of the objective, under the group bound (0.6-0.77), which rises 0.05-0.2 from 0.5 to 1 CPU s."""


def within(plan: RoundPlan, gap: float) -> bool:
    return plan.lower_bound >= (1 - gap) * plan.objective


def applies(problem: RoundProblem) -> bool:
    """Whether the model can work on some part of the round (else the heuristics may take the whole time limit)."""
    p = problem
    if p.tree_aggregation or p.num_modules > MODEL_MAX_MODULES:
        return False
    if p.lam > 0:
        return p.num_devices <= MODEL_MAX_DEVICES
    size = np.bincount(p.device_edge, minlength=p.num_edges)
    return bool(np.any((size > 0) & (size <= MODEL_MAX_DEVICES)))


def group_first(problem: RoundProblem, left_s: float) -> bool:
    """Rounds that get the relay-group bound (`GROUP_SHARE` > 0) with left_s seconds left for the model (at least
    GROUP_MIN_S, AGGREGATES_GROUP_MIN_S with relays that aggregate)."""
    p = problem
    least = AGGREGATES_GROUP_MIN_S if p.relay_aggregates else GROUP_MIN_S
    return (p.lam > 0 and GROUP_SHARE > 0 and left_s >= least and p.num_devices <= MODEL_MAX_DEVICES
            and group_applies(p))


def round_bound_clock(problem: RoundProblem, clock: Clock) -> Clock:
    """The deadline of joint's round bound: `clock`, or AGGREGATES_ROUND_RESERVE_S before it in rounds with relays
    that aggregate that get the relay-group bound after it."""
    if clock.bounded and problem.relay_aggregates and group_first(problem, clock.left()):
        return clock.before(AGGREGATES_ROUND_RESERVE_S)
    return clock


def edge_model_applies(problem: RoundProblem) -> bool:
    """lambda > 0 on one edge whose relays forward, fixed power and frequency: solvers/edge_model.py's MILP."""
    p = problem
    return (p.lam > 0 and p.num_edges == 1 and not p.relay_aggregates and not p.tree_aggregation
            and not p.has_power_frequency and p.num_devices <= MODEL_MAX_DEVICES
            and p.num_modules <= MODEL_MAX_MODULES)


def uses_cvxpy(problem: RoundProblem) -> bool:
    """Whether `improve` may solve the round's cvxpy model (solvers/model.py: lambda > 0 where the edge MILP does not
    apply), so that cvxpy (0.75 CPU s to import) is loaded before the round's clock (solvers/clock.py). Power and
    frequency do not count: the model works on the round at full power and speed."""
    p = problem
    if p.lam <= 0 or p.tree_aggregation or p.num_modules > MODEL_MAX_MODULES or p.num_devices > MODEL_MAX_DEVICES:
        return False
    return p.num_edges > 1 or p.relay_aggregates


def _one_edge(problem: RoundProblem, e: int, relay: np.ndarray) -> tuple[RoundProblem, np.ndarray, np.ndarray]:
    """Edge e alone: its sub-problem, its devices' indices in the whole problem, and `relay` of those devices in the
    sub-problem's indices (a relay is in its device's cluster)."""
    sub, dev = restrict(problem, np.array([e]))
    local = np.full(problem.num_devices, -1)
    local[dev] = np.arange(dev.size)
    return sub, dev, local[relay[dev]]


def _polisher(sub: RoundProblem, by: float) -> Polish:
    """solvers/pair_moves.py on the one-edge problem `sub` until `by`, as lp_round's polish."""
    return lambda x, relay: pair_moves(sub, x, relay, Clock(by))[:2]


def round_large_edges(problem: RoundProblem, plan: RoundPlan, by: float, gap: float) -> RoundPlan:
    """lambda = 0, relays that forward: the slowest edge, while it has more than MODEL_MAX_DEVICES devices, gets the
    LP-rounded candidates of solvers/lp_round.py (each edge once, until `by` or the gap is certified); a faster
    candidate replaces the edge's choice, and the LP's threshold on the edge raises the round's bound."""
    p = problem
    x, relay = plan.placement.copy(), plan.relay.copy()
    edge_t = evaluate(p, x, relay, plan.bandwidth_hz).edge_latency_s.copy()
    size = np.bincount(p.device_edge, minlength=p.num_edges)
    lower, tried, changed = plan.lower_bound, set(), False
    while now() < by:
        e = int(np.argmax(edge_t))
        if lower >= (1 - gap) * edge_t[e] or e in tried or size[e] <= MODEL_MAX_DEVICES:
            break
        tried.add(e)
        sub, dev, inc_r = _one_edge(p, e, relay)
        inc_x, inc_t = x[dev], float(edge_t[e])
        if POLISH:  # the incumbent and every LP-rounded candidate at their moves' local optimum
            inc_x, inc_r, inc_t = pair_moves(sub, inc_x, inc_r, Clock(by))
            if inc_t < edge_t[e]:
                x[dev], relay[dev], edge_t[e], changed = inc_x, dev[inc_r], inc_t, True
        got = round_edge(sub, inc_t, by, lower, (inc_x, inc_r),
                         polish=_polisher(sub, by) if POLISH else None)
        lower = max(lower, got.lower_bound)
        if got.x is not None and got.relay is not None:
            x[dev], relay[dev], edge_t[e], changed = got.x, dev[got.relay], got.latency, True
    if not changed:
        return plan.with_(lower_bound=min(max(lower, plan.lower_bound), plan.objective))
    b = plan_bandwidth(p, x, relay)
    cost = evaluate(p, x, relay, b)
    if not cost.objective < plan.objective:
        return plan.with_(lower_bound=min(lower, plan.objective))
    return plan.costed(cost, placement=x, relay=relay, bandwidth_hz=b, lower_bound=min(lower, cost.objective))


def move_large_edges(problem: RoundProblem, plan: RoundPlan, by: float, gap: float) -> RoundPlan:
    """lambda = 0, relays that forward: the slowest edge, while it has more than MODEL_MAX_DEVICES devices and is not
    certified within `gap`, gets solvers/pair_moves.py's moves (each edge once, until `by`)."""
    p = problem
    x = plan.placement.copy()
    edge_t = evaluate(p, x, plan.relay, plan.bandwidth_hz).edge_latency_s.copy()
    size = np.bincount(p.device_edge, minlength=p.num_edges)
    tried: set[int] = set()
    while now() < by:
        e = int(np.argmax(edge_t))
        if plan.lower_bound >= (1 - gap) * edge_t[e] or e in tried or size[e] <= MODEL_MAX_DEVICES:
            break
        tried.add(e)
        sub, dev, sub_relay = _one_edge(p, e, plan.relay)
        got_x, _, got_t = pair_moves(sub, x[dev], sub_relay, Clock(by))
        if got_t < edge_t[e]:
            x[dev], edge_t[e] = got_x, got_t
    if not tried or np.array_equal(x, plan.placement):
        return plan
    b = plan_bandwidth(p, x, plan.relay)
    cost = evaluate(p, x, plan.relay, b)
    if not cost.objective < plan.objective:
        return plan
    return plan.costed(cost, placement=x, bandwidth_hz=b, lower_bound=min(plan.lower_bound, cost.objective))


def bisect_slowest(problem: RoundProblem, plan: RoundPlan, by: float, steps: int = THRESHOLD_STEPS,
                   edges: int = THRESHOLD_EDGES) -> RoundPlan:
    """lambda = 0: the `edges` slowest edges above MODEL_MAX_DEVICES, slowest first, each prove by their subset LP
    (solvers/bounds.py) the largest latency they can between the round's bound and their own latency: no plan
    finishes an edge by a latency its LP refutes, so the round's latency is at least it."""
    p = problem
    edge_t = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    size = np.bincount(p.device_edge, minlength=p.num_edges)
    lower = plan.lower_bound
    for e in np.argsort(-edge_t)[:edges].tolist():
        if now() >= by or edge_t[e] <= lower:
            break
        if size[e] <= MODEL_MAX_DEVICES:
            continue
        route, demand = EdgeRoutes.of(p, e, [0]), p.coverage_demand()[e]
        lo, hi = lower, float(edge_t[e])
        if not route.impossible(lo * (1 + 1e-6), demand):  # its LP proves no more than the bound has
            continue
        for _ in range(steps):
            if now() >= by:
                break
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if route.impossible(mid, demand) else (lo, mid)
        lower = max(lower, lo)
    return plan.with_(lower_bound=min(lower, plan.objective))


def union_large_edge(problem: RoundProblem, plan: RoundPlan, by: float) -> RoundPlan:
    """lambda = 0, relays that aggregate: the slowest edge, when it has more than MODEL_MAX_DEVICES devices (the
    model's edges get their own bounds), gets the relay-group master of solvers/union_scale.py, then the union LPs'
    dual bound of solvers/union_dual.py, until `by`."""
    p = problem
    edge_t = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    e = int(np.argmax(edge_t))
    if np.sum(p.device_edge == e) <= MODEL_MAX_DEVICES or now() >= by:
        return plan
    lower = plan.lower_bound
    if UNION_SCALE_SHARE > 0 and p.num_modules <= MODEL_MAX_MODULES:
        lower = union_scale_bound(p, e, float(edge_t[e]), lower, now() + UNION_SCALE_SHARE * (by - now()))
    if now() < by:
        lower = max(lower, union_dual_bound(p, e, float(edge_t[e]), by))
    return plan.with_(lower_bound=min(lower, plan.objective))


def _group_bound(p: RoundProblem, x: np.ndarray, relay: np.ndarray, band: np.ndarray, upper: float,
                 deadline: float, gap: float) -> float:
    """The relay-group bound (solvers/group_columns.py) from the plan (x, relay, band) of objective `upper`, within
    GROUP_SHARE of the time left (AGGREGATES_GROUP_SHARE with relays that aggregate)."""
    share = AGGREGATES_GROUP_SHARE if p.relay_aggregates else GROUP_SHARE
    clock = Clock(now() + share * max(deadline - now(), 0.0))
    cost = evaluate(p, x, relay, band)
    got = group_lower_bound(p, subset_lower_bound(p, cost.edge_latency_s), min(upper, cost.objective),
                            cost.latency_s, cost.energy_j, clock, gap, plan=(x, relay, band))
    return min(got, cost.objective)


def improve(problem: RoundProblem, plan: RoundPlan, time_limit_s: float, gap: float, t0: float,
            cache: ModelCache | None = None) -> RoundPlan:
    """The heuristic `plan` improved and certified by the model until `gap` is proven or t0 + time_limit_s
    (cache: compiled programs kept across rounds)."""
    p = problem
    if within(plan, gap):
        return plan.with_(status=STATUS_PROVEN)
    if p.lam == 0 and not (p.tree_aggregation or p.has_power_frequency or p.relay_aggregates):
        plan = round_large_edges(p, plan, min(t0 + LARGE_EDGE_SHARE * time_limit_s, t0 + time_limit_s - FINISH_S),
                                 gap)
        end = t0 + time_limit_s - FINISH_S
        plan = move_large_edges(p, plan, min(max(t0 + PAIR_MOVES_SHARE * time_limit_s, now() + LATE_MIN_S), end), gap)
        if not within(plan, gap):
            plan = bisect_slowest(p, plan, min(max(t0 + THRESHOLD_SHARE * time_limit_s, now() + LATE_MIN_S), end))
        if within(plan, gap):
            return plan.with_(status=STATUS_PROVEN)
    if UNION_DUAL and p.lam == 0 and p.relay_aggregates and not (p.tree_aggregation or p.has_power_frequency):
        plan = union_large_edge(p, plan, t0 + time_limit_s - FINISH_S)
        if within(plan, gap):
            return plan.with_(status=STATUS_PROVEN)
    if p.tree_aggregation or p.has_power_frequency or p.num_modules > MODEL_MAX_MODULES:
        return plan.with_(status=STATUS_UNPROVEN)
    deadline = t0 + time_limit_s - FINISH_S  # the final band and the plan's check after the model
    if p.lam > 0 and now() >= deadline:  # no time for the model: not even its rows or the final band
        return plan.with_(status=STATUS_TIME if p.num_devices <= MODEL_MAX_DEVICES else STATUS_UNPROVEN)
    beyond = False
    x, relay = plan.placement.copy(), plan.relay.copy()
    lower = plan.lower_bound
    use_group = group_first(p, deadline - now())
    if use_group and not edge_model_applies(p):
        lower = max(lower, _group_bound(p, x, relay, plan.bandwidth_hz, plan.objective, deadline, gap))
        if lower >= (1 - gap) * plan.objective:
            return plan.with_(lower_bound=lower, status=STATUS_PROVEN)
    if p.lam == 0:
        edge_t = evaluate(p, x, relay, plan.bandwidth_hz).edge_latency_s.copy()
        size = np.bincount(p.device_edge, minlength=p.num_edges)
        done: set[int] = set()
        while lower < (1 - gap) * edge_t.max():
            e = int(np.argmax(edge_t))
            beyond = size[e] > MODEL_MAX_DEVICES  # the slowest edge is not the model's: not a matter of time
            if e in done or beyond or now() >= deadline:
                break
            sub, dev, sub_relay = _one_edge(p, e, relay)
            groups = UnionColumns(sub) if UNION_COLUMNS_SHARE > 0 and sub.relay_aggregates else None
            if groups is not None:  # relay groups as columns (solvers/union_columns.py)
                lower = union_refute(sub, float(edge_t[e]), now() + UNION_COLUMNS_SHARE * (deadline - now()), gap,
                                     groups, lower)
                if lower >= (1 - gap) * edge_t[e]:
                    done.add(e)
                    continue
            # the column model at trial latencies (solvers/latency_model.py; union_model.py when relays aggregate)
            s = search_latency(sub, x[dev], sub_relay, float(edge_t[e]), deadline, gap, lower=lower)
            got_x, got_r, got_t, got_lb = s.x, s.relay, s.latency, s.lower_bound
            done.add(e)
            if got_t < edge_t[e]:
                x[dev], relay[dev], edge_t[e] = got_x, dev[got_r], got_t
            lower = max(lower, got_lb)
            if groups is not None and lower < (1 - gap) * got_t and now() < deadline:  # got_t <= the search's upper
                lower = union_refute(sub, got_t, deadline, gap, groups, lower)  # the time left
    elif edge_model_applies(p):  # the least-energy pieces, then the MILP with T a variable (solvers/edge_model.py)
        if EDGE_COLUMNS_SHARE > 0:
            share = now() + EDGE_COLUMNS_SHARE * max(deadline - now(), 0.0)
            lower = max(lower, lambda_bound(p, plan.objective, share, gap))
        upper = plan.objective  # first a plan read off the subset MILP (solvers/subset_plan.py), kept if better
        got = subset_plan(p, plan.latency_s, now() + SUBSET_PLAN_SHARE * max(deadline - now(), 0.0))
        if got is not None and got[2] < upper:
            x, relay, upper = got
        if use_group:  # from the better of the two plans: its groups seed the masters, its objective bounds T
            lower = max(lower, _group_bound(p, x, relay, plan_bandwidth(p, x, relay), upper, deadline, gap))
        if lower < (1 - gap) * upper:
            a = EdgeModel(p).solve(x, relay, upper, deadline, gap)
            x, relay = a.x, a.relay
            lower = max(lower, a.lower_bound)
    elif p.num_devices <= MODEL_MAX_DEVICES:
        if p.num_edges == 1 and not (use_group and p.relay_aggregates):  # the least-energy column MILPs over trial
            # latencies (solvers/energy_columns.py); with relays that aggregate the group bound's (above) is higher
            share = now() + LAMBDA_SHARE * max(deadline - now(), 0.0)
            lower = max(lower, lambda_bound(p, plan.objective, share, gap))
        c = certify(p, x, relay, deadline, gap, cache=cache)
        x, relay = c.x, c.relay
        lower = max(lower, c.lower_bound)
    else:
        return plan.with_(status=STATUS_UNPROVEN)
    b = plan_bandwidth(p, x, relay)
    cost = evaluate(p, x, relay, b)
    if cost.objective > plan.objective:  # the model's choices never lose to the incumbent's
        x, relay, b, cost = plan.placement, plan.relay, plan.bandwidth_hz, evaluate(p, plan.placement, plan.relay,
                                                                                     plan.bandwidth_hz)
    lower = min(lower, cost.objective)
    proven = lower >= (1 - gap) * cost.objective
    timed_out = not beyond and now() >= deadline - 0.06
    status = STATUS_PROVEN if proven else STATUS_TIME if timed_out else STATUS_UNPROVEN
    return plan.costed(cost, placement=x, relay=relay, bandwidth_hz=b, lower_bound=lower, status=status)
