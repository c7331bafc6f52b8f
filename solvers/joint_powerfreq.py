"""`joint` with uplink power and CPU frequency as decisions: discrete choices at p_max and f_max, then power,
frequency and band for T + lambda E (solvers/powerfreq.py), the latency-energy bound with them priced as decisions,
and the bound LP's own choices (solvers/powerfreq_round.py)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from solvers.bounds import SUBSET_CLOCKED_DEVICES, energy_lower_bound, subset_lower_bound
from solvers.check import check_plan
from solvers.clock import Clock, now
from solvers.energy import edge_latency
from solvers.energy_bound import tradeoff_lower_bound
from solvers.evaluate import evaluate
from solvers.improve import improve
from solvers.instance import RoundProblem
from solvers.model import certify
from solvers.model_cache import ModelCache
from solvers.model_gate import model_seconds
from solvers.plan import RoundPlan
from solvers.powerfreq import plan_power_frequency
from solvers.powerfreq_buckets import bucket_bound
from solvers.powerfreq_moves import plan_moves
from solvers.powerfreq_round import PF_ITERS, PF_LATENCIES, PF_PRICE_STEPS, from_lp
from solvers.subset_energy import SubsetEnergy

PF_BOUND_SHARE = 0.6
"""Power and frequency at lambda > 0: the part of the time left after the heuristics that the certified bound takes
(the latency-energy bound with the subset LP, solvers/energy_bound.py) before the fixed-power model improves the
choices: the bound given 1 s instead of the ~0.01 s it had once the model had spent the clock lifts 12-device edges
at lambda 0.5 from a 55 % to a 33 % gap."""
PF_HEURISTIC_SHARE = 0.25
"""Power and frequency at lambda > 0: the heuristics' part of the time limit. They choose at p_max and f_max, which
the bound's LP (priced with power and frequency free) beats at lambda >= 5 (solvers/powerfreq_round.py), so the bound
and its LP's choices get the time."""
PF_BUCKET_SHARE = 0.7
"""Power and frequency at lambda > 0, a relay group in the bound's LP and the gap not yet proven: the part of the time
left (less PF_RESERVE) that the bound with upload-start buckets takes (solvers/powerfreq_buckets.py) before the
model."""
PF_BUCKET_MIN_S = 0.2
"""Least seconds of that share for the buckets to start (and no less than the plain bound's search took): its search
runs two latencies whatever the clock (with the bucketed LP's build, 0.1-0.3 CPU s on 8 devices), so a smaller share
only ran past the round's end."""
PF_BUCKET_REACH = 0.03
"""Nor where the gap is above this: the buckets lifted the bound by 0.9 points at most on the bench's edges (4 devices
lambda 0.05: 1.11 -> 0.20 %; 8 devices: 4.06 -> 3.15 %, 1.19 -> 1.07 %); a larger gap is a weak plan (under load,
8-device edges at 30 %), whose time the model needs."""
PF_MOVES_PASS = 1.0
"""x the power / frequency step's measured time: what the first pass of the one-device moves
(solvers/powerfreq_moves.py, all priced in one batched screen) is taken to cost (0.5-0.85 of a step on 8-12-device
bench edges); they start only where the clock leaves that, after the buckets, in the time the fixed-power model
would get (it had none left on 8-12-device bench edges)."""
PF_BUCKET_GAP = 0.01
"""The gap below which the buckets are not tried where joint has no model limits (its default `solver.gap`)."""
MODEL_MILPS = 8
"""Most MILPs of the round's model (each refines its cuts at the last one's answer; 2-3 certified 4-device rounds)."""
PF_RESERVE = 1.5
"""x the measured time of the power / frequency step on the heuristics' choices, kept at the end for the same step
on the model's choices (0.3 CPU s on 12 devices: it ran past the deadline when the model took all of it)."""


def with_power_frequency(problem: RoundProblem, solve_fixed: Callable[..., RoundPlan],
                         limits: tuple[float, float] | None = None, cache: ModelCache | None = None,
                         **opts: Any) -> RoundPlan:  # solve_fixed: joint's fixed-power solve; opts: its keywords
    """Power and frequency as decisions: discrete choices at p_max and f_max (the latency-optimal values, and
    how the energy search prices them; improved by the model within limits = (time_limit_s, gap) when given), then
    bandwidth, power and frequency for T + lambda E (solvers/powerfreq.py); the better of that and the max-power
    plan is kept. At lambda = 0 the max-power plan's bound holds (more power and speed never slow a round). At
    lambda > 0 the fixed-power bound does not hold (less power spends less): the bound is the latency-energy bound
    with power and frequency priced as decisions, computed before the model (PF_BOUND_SHARE), and the model stops
    early enough for the power / frequency step on its choices (PF_RESERVE)."""
    t0, wall = now(), time.perf_counter()
    p = problem
    bound = opts.get("bound", True)
    deadline: Clock = opts.get("deadline") or Clock()
    base = dataclasses.replace(p, tx_power_w=p.power_max, cpu_hz=p.freq_max, p_max=None, f_min=None, f_max=None)
    plan = solve_fixed(base, **{**opts, "bound": bound and p.lam == 0})
    model = limits is not None and limits[0] > 0 and bool(bound) and opts.get("bandwidth") != "cvxpy"
    if p.lam == 0:  # full power and speed: the fixed plan and its bound are the answer
        if model:
            assert limits is not None
            plan = improve(base, plan, limits[0], limits[1], t0, cache)
        best = _power_frequency_options(p, plan, decide=False)
        return best.with_(lower_bound=min(plan.lower_bound, best.objective), solve_seconds=time.perf_counter() - wall)
    tic = now()
    best = _power_frequency_options(p, plan)
    step_s = now() - tic
    lower = plan.lower_bound
    # the round's cvxpy model with power and frequency as decisions, where it pays (solvers/model_gate.py): it keeps
    # its seconds from the bound's share and takes the place of the fixed-power model below
    model_s = model_seconds(p, deadline.left() - PF_RESERVE * step_s) if model else 0.0
    if bound:  # T from the round at full power and speed, E priced for decisions
        x, r = plan.placement, plan.relay
        t_lb = subset_lower_bound(base, edge_latency(base, [(x, r)])[0])
        clock = deadline.before(model_s).share(PF_BOUND_SHARE) if model else deadline
        # minimal covers on small rounds; not the band row: within PF_BOUND_SHARE its LPs (passed again per solve)
        # left fewer pieces (215f4f2, 8-12 devices, lambda 0.05-50: median gap 57.0 -> 66.4 %,
        # experiments/results/solver_model/s18a/ab_band_row_power-frequency.json)
        subset = SubsetEnergy(p, covers=p.num_devices <= SUBSET_CLOCKED_DEVICES, steps=PF_PRICE_STEPS)
        plain_s = now()
        lower = max(t_lb + p.lam * energy_lower_bound(p),
                    tradeoff_lower_bound(p, t_lb, best.objective, PF_LATENCIES, clock=clock, subset=subset,
                                         cap=True, tangents_on=True))
        plain_s = now() - plain_s
        if clock.bounded:  # its fewest steps too (0.01 s): a search the clock cuts short can end below them
            lower = max(lower, tradeoff_lower_bound(p, t_lb, best.objective, clock=Clock(0.0), subset=subset,
                                                    cap=True, tangents_on=True))
        best = from_lp(p, subset, best, deadline, step_s, PF_ITERS)  # the LP's choices (powerfreq_round.py)
        target = limits[1] if limits is not None else PF_BUCKET_GAP
        near = (1 - PF_BUCKET_REACH) * best.objective <= lower < (1 - target) * best.objective
        if near and p.d2d_src.size:  # relay groups' shared starts (buckets)
            left = (deadline.before(PF_RESERVE * step_s + model_s) if model else deadline).share(PF_BUCKET_SHARE)
            if left.left() >= max(PF_BUCKET_MIN_S, plain_s):
                lower = max(lower, bucket_bound(p, subset, plan.relay, t_lb, best.objective, PF_LATENCIES, left))
        if lower < (1 - target) * best.objective:  # one device's relay or module at a time (powerfreq_moves.py)
            moves = deadline.before(model_s) if model else deadline
            best = plan_moves(p, best, moves, lambda c: _power_frequency_options(p, c), step_s, PF_MOVES_PASS * step_s)
    if model_s > 0:
        assert limits is not None
        if lower < (1 - limits[1]) * best.objective:
            best, lower = _round_model(p, best, lower, deadline.end - PF_RESERVE * step_s, limits[1], cache)
    elif model:
        assert limits is not None
        end = deadline.end - PF_RESERVE * step_s if deadline.bounded else t0 + limits[0]
        better = improve(base, plan, end - t0, limits[1], t0, cache)
        if not (np.array_equal(better.placement, plan.placement) and np.array_equal(better.relay, plan.relay)):
            # new choices: power and frequency for them if the step still fits the clock, else max power and speed
            got = _power_frequency_options(p, better, decide=deadline.left() >= step_s)
            best = got if got.objective < best.objective else best
    return best.with_(lower_bound=min(lower, best.objective), solve_seconds=time.perf_counter() - wall)


def _round_model(p: RoundProblem, best: RoundPlan, lower: float, end: float, gap: float,
                 cache: ModelCache | None) -> tuple[RoundPlan, float]:
    """The round's cvxpy model with power and frequency as decisions (solvers/model.py) from `best` until `end` or
    max(its bound, `lower`) certifies `gap`: (the better plan, kept only where solvers/check.py passes it, and the
    larger bound). Its bound is valid for the round: the MILP relaxes every plan no worse than the incumbent."""
    got = certify(p, best.placement, best.relay, end, gap, max_milps=MODEL_MILPS, cache=cache, lower0=lower)
    lower = max(lower, got.lower_bound)
    if got.objective < best.objective and got.band is not None:
        cost = evaluate(p, got.x, got.relay, got.band, got.power, got.freq)
        cand = best.with_(placement=got.x, relay=got.relay, bandwidth_hz=got.band, tx_power_w=got.power,
                          cpu_hz=got.freq, latency_s=cost.latency_s, energy_j=cost.energy_j, objective=cost.objective)
        if cand.objective < best.objective and not check_plan(p, cand):
            best = cand
    return best, lower


def _power_frequency_options(p: RoundProblem, plan: RoundPlan, decide: bool = True) -> RoundPlan:
    """The fixed-power `plan`'s choices with the better of max power and speed (its band) and, if `decide`, the
    power, frequency and band of solvers/powerfreq.py for T + lambda E."""
    x, r = plan.placement, plan.relay
    options = [(plan.bandwidth_hz, p.power_max, p.freq_max)]
    if decide:
        options.append(plan_power_frequency(p, x, r, iters=PF_ITERS))
    costs = [evaluate(p, x, r, *o) for o in options]
    j = int(np.argmin([c.objective for c in costs]))
    b, pw, fr = options[j]
    return plan.with_(bandwidth_hz=b, tx_power_w=pw, cpu_hz=fr, latency_s=costs[j].latency_s,
                      energy_j=costs[j].energy_j, objective=costs[j].objective)
