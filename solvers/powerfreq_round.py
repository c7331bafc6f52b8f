"""Discrete choices from the bound's own LP when power and frequency are decisions (lambda > 0).

The heuristics choose placement and relays at p_max and f_max, where a D2D hop at its fixed power looks cheaper than
an upload at full power; once power is a decision the direct upload is far cheaper, and at lambda >= 5 such plans
were 40-50 % above the best (a 4-device bench edge at lambda 50: 327 against 93 for the choices below). The
subset-column LP of the latency-energy bound (solvers/subset_energy.py) prices every device's subset, direct or
relayed, at its least energy with power and frequency free, and at the latencies near the bound's optimum it is
often integral. So its columns at the latencies where t + lambda E_lb(t) is least are rounded (per device its
largest column; a route whose relay does not upload directly goes direct) into candidate choices, and the same
program with integer columns (HiGHS, at the least latency's band price) gives one more; the caller prices each
exactly (solvers/powerfreq.py) and keeps it if better. A candidate that breaks a constraint (coverage after
rounding a fractional LP) is dropped.
"""

from __future__ import annotations

import numpy as np

from solvers.check import check_plan
from solvers.clock import Clock
from solvers.evaluate import evaluate
from solvers.instance import RoundProblem
from solvers.plan import RoundPlan
from solvers.powerfreq import plan_power_frequency
from solvers.subset_energy import SubsetEnergy

PF_PRICE_STEPS = 3
"""Most bisection steps of the subset LP's band price per latency (solvers/powerfreq_price.py `price_by_slope`) in
joint's power and frequency path: 6 and 3 gave E_lb within 0.02 % of each other on 8-12-device bench edges, 3 in
0.7x the time, so the latency search gets more points."""
PF_ITERS = 24
"""Golden-section steps over T of `plan_power_frequency` there (its default 40): the same objective to 6 digits on
8-12-device bench edges in 0.65x the time."""
PF_MILP_S = 1.0
"""Most seconds of the integer subset program (`milp_choices`) per round."""
PF_MILP_SLACK = 0.01
"""It keeps the columns whose LP reduced cost is at most this part of the LP's value."""
PF_LATENCIES = 60
"""Most latencies the bound's search (solvers/energy_bound.py `tradeoff_lower_bound`, default 20) evaluates there,
the clock permitting: on 2-3-device rounds 20 left it at 0.985-0.993 of the optimum, 60 at 0.998."""


def from_lp(p: RoundProblem, sub: SubsetEnergy, best: RoundPlan, deadline: Clock, step_s: float,
            iters: int = 40) -> RoundPlan:
    """`best`, or the better plan of the integer program's choice (`milp_choices`, first: at lambda 0.05-0.5 it
    needs most of the time left) and the LP's rounded choices with their own band, power and frequency
    (solvers/powerfreq.py, `iters` steps over T), each tried while the deadline leaves `step_s` (the time one such
    step took)."""
    first = milp_choices(p, sub, best, deadline, step_s)
    seen = {(x.tobytes(), r.tobytes()) for x, r in first}
    for x, relay in first + [c for c in lp_choices(p, sub, best) if (c[0].tobytes(), c[1].tobytes()) not in seen]:
        if deadline.bounded and deadline.left() < step_s:
            break
        b, power, freq = plan_power_frequency(p, x, relay, iters=iters)
        c = evaluate(p, x, relay, b, power, freq)
        if c.objective < best.objective:
            best = best.with_(placement=x, relay=relay, bandwidth_hz=b, tx_power_w=power, cpu_hz=freq,
                              latency_s=c.latency_s, energy_j=c.energy_j, objective=c.objective)
    return best


def lp_choices(p: RoundProblem, sub: SubsetEnergy, plan: RoundPlan, top: int = 2) -> list[tuple[np.ndarray,
                                                                                                   np.ndarray]]:
    """Up to `top` (placement, relay) pairs, new and valid, from the LP's columns at the latencies where
    t + lambda sum_e E_e(t) is least among those every LP-priced edge was solved at; edges without an LP keep
    `plan`'s choices."""
    edges = [e for e in range(p.num_edges) if sub.solutions.get(e)]
    if not edges:
        return []
    common = set.intersection(*(set(sub.solutions[e]) for e in edges))
    ts = sorted(common, key=lambda t: t + p.lam * sum(sub.solutions[e][t][0] for e in edges))
    out: list[tuple[np.ndarray, np.ndarray]] = []
    seen = {(plan.placement.tobytes(), plan.relay.tobytes())}
    for t in ts:
        if len(out) >= top:
            break
        x, relay = plan.placement.copy(), plan.relay.copy()
        for e in edges:
            _round_edge(sub, e, sub.solutions[e][t][1], x, relay)
        key = (x.tobytes(), relay.tobytes())
        if key in seen:
            continue
        seen.add(key)
        trial = plan.with_(placement=x, relay=relay, bandwidth_hz=np.where(relay == np.arange(p.num_devices),
                                                                           1.0, 0.0))
        if not check_plan(p, trial, check_cost=False):
            out.append((x, relay))
    return out


def milp_choices(p: RoundProblem, sub: SubsetEnergy, plan: RoundPlan, deadline: Clock,
                 reserve_s: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The subset program with integer columns at the least latency's band price (HiGHS, within PF_MILP_S and what
    the deadline leaves after `reserve_s`), its choice where new and valid: the LP's largest columns can
    break its coupling (a 12-device bench edge at lambda 0.05: 16.25 from the LP's roundings, 15.96 from this)."""
    edges = [e for e in range(p.num_edges) if sub.tangents.get(e)]
    if not edges:
        return []
    common = set.intersection(*(set(sub.tangents[e]) for e in edges))
    if not common:
        return []
    t = min(common, key=lambda t: t + p.lam * sum(sub.tangents[e][t][3] for e in edges))
    x, relay = plan.placement.copy(), plan.relay.copy()
    for e in edges:
        limit = PF_MILP_S if not deadline.bounded else min(PF_MILP_S, deadline.left() - reserve_s)
        if limit <= 0:
            return []
        ee = sub.edge(e)
        assert ee is not None
        col = ee.lp.integer(sub.tangents[e][t][1], limit / len(edges), slack=PF_MILP_SLACK)
        if col is None:
            return []
        _round_edge(sub, e, col, x, relay)
    if (x.tobytes(), relay.tobytes()) == (plan.placement.tobytes(), plan.relay.tobytes()):
        return []
    trial = plan.with_(placement=x, relay=relay, bandwidth_hz=np.where(relay == np.arange(p.num_devices), 1.0, 0.0))
    return [] if check_plan(p, trial, check_cost=False) else [(x, relay)]


def _round_edge(sub: SubsetEnergy, e: int, col: np.ndarray, x: np.ndarray, relay: np.ndarray) -> None:
    """Edge e's devices take their largest LP column (in place): its modules, and its relay for a route."""
    ee = sub.edge(e)
    assert ee is not None
    k = ee.dev.size
    owner = np.concatenate([ee.dev, ee.dev[ee.lcol]])
    dst = np.concatenate([ee.dev, ee.ldst])
    mods = np.concatenate([ee.mbits, ee.mbits[ee.lcol]]).astype(bool)
    members = np.unique(ee.dev)
    x[members] = False
    relay[members] = members
    for i in members:
        mine = np.flatnonzero(owner == i)
        c = mine[int(np.argmax(col[mine]))]
        if col[c] <= 1e-9:
            continue
        x[i] = mods[c]
        if c >= k:
            relay[i] = dst[c]
    moved = members[relay[members] != members]
    bad = moved[relay[relay[moved]] != relay[moved]]  # its relay is relayed itself: one hop, so it goes direct
    relay[bad] = bad
