"""Power and frequency as decisions: the subset LP's band price at one latency, and its tangents in the latency
(solvers/subset_energy.py `SubsetEnergy` calls both; solvers/energy_bound.py `tradeoff_lower_bound` uses the
second).

The price: LP(nu) - nu B_e is a valid bound on an edge's energy for every band price nu and concave in nu, with
supergradient sum_c x_c b_c - B_e (the bands the LP's columns use at their prices). The tangents: each column's least
cost is convex and decreasing in T, so with s a lower bound on its slope (solvers/powerfreq_column.py), its costs at
b lowered along c(b) + s (b - T) are below its costs at every T <= b, and the LP at them is concave in T.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from solvers.clock import Clock

if TYPE_CHECKING:
    from solvers.subset_energy import EdgeEnergy, SubsetEnergy

PRICE_RTOL = 3e-4
"""The band price search at one latency stops once the tangents at its bracket's ends leave at most this part of
the value above the best price found (`price_by_slope`)."""


def price_by_slope(sub: SubsetEnergy, ee: EdgeEnergy, e: int, t: float, start: float,
                   clock: Clock | None) -> float:
    """Power and frequency as decisions: the best LP(nu) - nu B_e over band prices nu, by the sign of its
    supergradient (the LP's columns' bands at their prices, less B_e; LP(nu) - nu B_e is concave in nu): steps
    out (doubling, on ln nu) from the price of the nearest latency searched so far (`start` at the first) until
    the sign turns, then cuts the bracket where the tangents at its ends meet (a bisection where that point is
    near an end), and stops once those tangents leave at most PRICE_RTOL of the value above the best found
    (concavity: the maximum lies under both). Every nu gives a valid bound, so a search the clock cuts short
    keeps the best so far. The knapsack's price (`start` at the first latency) can be far from this LP's: on a
    2-device round at lambda 0.5 the best was 60x above it (0.32 -> 0.96 of the optimum's energy)."""
    band = float(sub.p.edge_bandwidth_hz[e])
    best, arg = -math.inf, start
    seen = sub.nu_at.setdefault(e, {})
    if seen:  # the price of the nearest latency searched (the search over T jumps about)
        start = seen[min(seen, key=lambda s: abs(math.log(s / t)))]

    def probe(u: float) -> tuple[float, float | None]:  # (value, supergradient in J per Hz; None: no LP)
        nonlocal best, arg
        v = ee.value(t, math.exp(u), 0.0)
        if not math.isfinite(v):
            best = max(best, v)
            return v, None
        x = ee.lp.primal()
        if v > best:
            best, arg = v, math.exp(u)
            sub.solutions.setdefault(e, {})[t] = (v, x)
            sub.tangents.setdefault(e, {})[t] = (arg, ee.cost_at, ee.slope_at, v)
        return v, float(np.sum(np.where(x > 1e-12, x * ee.band_at, 0.0))) - band

    if start <= 0:
        return ee.value(t, 0.0, 0.0)
    u = math.log(start)
    v, g = probe(u)
    if g is None:
        return math.inf if v == math.inf else best
    step = 0.5 if e in sub.nu else 2.0
    ends: list[tuple[float, float, float]] = []  # (ln nu, value, supergradient) at the bracket's ends
    for _ in range(10):  # out until the sign turns
        if clock is not None and clock.expired():
            break
        nxt = u + (step if g > 0 else -step)
        v2, g2 = probe(nxt)
        if g2 is None:
            break
        if (g2 > 0) != (g > 0):
            ends = sorted([(u, v, g), (nxt, v2, g2)])
            break
        u, v, g, step = nxt, v2, g2, 2 * step
    for _ in range(sub.steps if ends else 0):
        if clock is not None and clock.expired():
            break
        (ul, hl, gl), (uh, hh, gh) = ends
        nl, nh = math.exp(ul), math.exp(uh)
        cut = (hh - hl + gl * nl - gh * nh) / (gl - gh) if gl > gh else 0.0  # where the two tangents meet
        if hl + gl * (cut - nl) - best <= PRICE_RTOL * abs(best):
            break
        mid = math.log(cut) if cut > 0 else 0.5 * (ul + uh)
        if not ul + 0.1 * (uh - ul) < mid < uh - 0.1 * (uh - ul):
            mid = 0.5 * (ul + uh)
        vm, gm = probe(mid)
        if gm is None:
            break
        ends = [(mid, vm, gm), ends[1]] if gm > 0 else [ends[0], (mid, vm, gm)]
    sub.nu[e] = arg
    seen[t] = arg
    return best


def tangent_energy(sub: SubsetEnergy, a: float, b: float) -> tuple[float, float] | None:
    """(G(b), G(a)) for a latency b that `energy_edges` evaluated and a < b, where every plan of latency
    T in [a, b] spends at least G(T) and T + lambda G(T) is concave on [a, b], so min over the piece of
    T + lambda E >= min(b + lambda G(b), a + lambda G(a)) (solvers/energy_bound.py `tradeoff_lower_bound`).
    Per edge priced by its LP at b (power and frequency as decisions): the LP with b's costs lowered along
    their tangents, c(b) + s (b - T) (s: solvers/powerfreq_column.py, a lower bound on -dc/dT, each column's
    least cost convex in T), at b's band price: below each column's cost at T, so its value is below E_lb(T)
    (the rows do not depend on T), and concave in T (a minimum of functions affine in T). Other edges: their
    E_lb(b), constant. None: b was not evaluated. Where the floor was the better at b the edge keeps it."""
    if b not in sub.at:
        return None
    out, coverable = sub.at[b]
    at_a = out.copy()
    for e, tans in sub.tangents.items():
        if b not in tans or not coverable[e] or not math.isfinite(out[e]):
            continue
        nu, cost, slope, v = tans[b]
        if v < out[e]:  # the floor was the better at b: constant on the piece
            continue
        ee = sub.edges[e]
        assert ee is not None
        status, val = ee.lp.solve(cost + slope * (b - a))
        if status == "optimal":  # G(b) = v = out[e]: the LP at b's costs
            at_a[e] = val * (1 - 1e-7) - nu * float(sub.p.edge_bandwidth_hz[e])
        # else no information: the constant E_lb(b) (the LP at b's costs was feasible, so this one is too)
    return float(np.sum(out[coverable])), float(np.sum(at_a[coverable]))
