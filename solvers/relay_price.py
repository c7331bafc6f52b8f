"""The price of a relayed bit in the subset-column LP (solvers/subset_energy.py), split by the relay's own payload.

A relay j that uploads its own O bits and R relayed bits spends at least phi_B(O + R) (plus its D2D and compute),
phi_B(U) = min over 0 <= b <= B_e of p U / R(b) + nu b: concave in U (a minimum of functions linear in U), so on
[O, O + L] it lies above its chord, and for every R <= L

    phi_B(O + R) >= phi_B(O) + R s(O, L),   s(O, L) = (phi_B(O + L) - phi_B(O)) / L,

s falling in O and in L. The LP charges j's own column at most phi_B(O) and each bit relayed to it s(P, L) with
P >= O and L >= R, which stays below j's whole upload (relay groups of several routes too: every route of a group
gets an L at least the group's whole relayed payload, so their secants add up below the chord).

Each route via j exists once per *class* of j's own column: 0 the empty column (j trains nothing: P = 0, the
average phi_B(L) / L), 1..B buckets of j's non-empty columns by payload (B = `RELAY_CLASSES`; P = the bucket's
largest payload), each with its pair row against j's columns of that class (solvers/route_lp.py). L is the least
of: j's in-neighbours' largest payloads with the route's sender's own bits in place of its largest (`rin`), and
what j's upload can still carry by T after its own bits, R_j(B_e) (T - start) - O, the start after its own
column's compute and after the route's arrival (each taken at the class's most favourable column, so it holds for
all of them). A route whose bits cannot fit (L below its own payload) cannot be used by T. Every bit pays at least
the floor p_j / R_j(B_e) (b_j <= B_e) and the slope of phi_B at P + L (`slope_at`). Before (2aff94a-215f4f2) P was
j's whole eligible payload and L all its in-neighbours' eligible payloads, without the band cap or the time.
"""

from __future__ import annotations

import numpy as np

from solvers.evaluate import LN2, uplink_rate
from solvers.upload_table import concave_energy

RELAY_CLASSES = 1
"""Payload buckets of a relay's non-empty columns (each route via it is split once per bucket, and once for its
empty column); 1: one bucket (the secant from its largest payload). More classes lift the unclocked bound (8-device
edges, lambda 5: 0.916 -> 0.922 -> 0.940 of the plan with 1, 2-4, 8 classes) but the larger LP (x1.3-2.7 CPU s)
left the 2 s round less: at 4 classes the A/B on 8-12 devices certified less than at 1 on the 8-device lambda 5-50
edges (experiments/results/solver_model/s18c/)."""


def payload_classes(dev: np.ndarray, pay: np.ndarray, hubs: np.ndarray, classes: int) -> np.ndarray:
    """[K] each column's class at its device as a relay: 0 an empty column, 1..classes its payload bucket (equal
    counts of the relay's distinct non-zero payloads, smallest first); 1 for devices no link enters."""
    out = np.ones(dev.size, dtype=np.int64)
    out[pay <= 0] = 0
    if classes <= 1:  # one bucket: every non-empty column is class 1
        return out
    for j in hubs:
        mine = np.flatnonzero((dev == j) & (pay > 0))
        if mine.size == 0:
            continue
        values, inv = np.unique(pay[mine], return_inverse=True)
        out[mine] = 1 + (inv * max(classes, 1)) // values.size
    return out


def band_energy(u: np.ndarray, pw: np.ndarray, a: np.ndarray, nu: float, band: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds on phi_B(u) = min over 0 <= b <= band of pw u / R(b) + nu b, elementwise: the lower
    the larger of the unconstrained minimum (certified table) and `at_band`; the upper the cost at a feasible b (the
    table's minimizer, capped at the band)."""
    rb = uplink_rate(np.full(np.shape(a), band), a)
    lo, s_up = concave_energy(pw * u / a, nu * a)
    lo = np.maximum(lo, at_band(u, pw, a, nu, band, rb))
    if nu <= 0:  # no band charge: the whole band is best
        return lo, pw * u / rb
    b = np.minimum(a * s_up, band)
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(u > 0, pw * u / uplink_rate(b, a) + nu * b, 0.0)
    return np.where(u > 0, lo, 0.0), up


def at_band(
    u: np.ndarray, pw: np.ndarray, a: np.ndarray, nu: float, band: float, rb: np.ndarray, dr: np.ndarray | None = None
) -> np.ndarray:
    """A lower bound on phi_B(u) from the whole band (rb = R(band), dr = R'(band) or None): g(b) = pw u / R(b) + nu b
    is convex in b (1 / R convex, R concave and positive), so on [0, band] g >= g(band) - max(g'(band), 0) band:
    g(band) itself where the band binds (g'(band) <= 0), which the table's unconstrained minimum and pw u / rb alone
    miss by up to nu band; else pw u / rb (1 + band R'(band) / rb), at least pw u / rb."""
    lead = pw * u / rb
    if nu <= 0:
        return lead
    if dr is None:
        dr = band_slope(a, band)
    binds = nu * rb * rb <= pw * u * dr  # g'(band) = nu - pw u R'(band) / rb^2 <= 0
    return np.where(binds, lead + nu * band, lead * (1.0 + band * dr / rb))


def band_slope(a: np.ndarray, band: float) -> np.ndarray:
    """R'(band) = log2(1 + x) - x / ((1 + x) ln 2), x = a / band (> 0: R increases)."""
    x = a / band
    return (np.log1p(x) - x / (1.0 + x)) / LN2


def relayed_price(
    bits: np.ndarray, top: np.ndarray, room: np.ndarray, pw: np.ndarray, a: np.ndarray, nu: float, band: float
) -> np.ndarray:
    """[L] a lower bound on the energy per relayed bit of each route: the secant s(top, room) of phi_B at its relay
    (module doc; top: the largest own payload of the route's class, room: the most relayed bits, >= the route's
    own `bits`), at least the floor pw / R(band); inf where room < bits (the route's bits cannot fit by T)."""
    top, pw, a = np.broadcast_arrays(top, pw, a)
    # the floor, R(band), R'(band) and phi_B(top) depend on the relay and class alone: once per run of equal (top, pw,
    # a) (the routes of a (link, class) come in a run, solvers/subset_energy.py `routes`), the same values elementwise
    run = np.flatnonzero(np.concatenate([[True], (top[1:] != top[:-1]) | (pw[1:] != pw[:-1]) | (a[1:] != a[:-1])]))
    length = np.diff(np.append(run, top.size))
    rb_run = uplink_rate(np.full(run.size, band), a[run])
    floor = np.repeat(pw[run] / rb_run, length)
    fits = room >= bits * (1 - 1e-9)
    span = np.where(fits, np.maximum(room, bits), 1.0)
    span = np.where(span > 0, span, 1.0)
    u = top + span  # > 0
    # band_energy's lower bound at u and slope_at(u) from one table look-up (the same values as calling each)
    lo, s_up = concave_energy(pw * u / a, nu * a)
    dr = np.repeat(band_slope(a[run], band), length) if nu > 0 else None
    hi = np.maximum(lo, at_band(u, pw, a, nu, band, np.repeat(rb_run, length), dr))
    at = np.repeat(band_energy(top[run], pw[run], a[run], nu, band)[1], length)
    secant = np.maximum((hi - at) / span, 0.0)
    slope = pw / uplink_rate(np.minimum(a * s_up, band), a)
    return np.where(fits, np.maximum.reduce([secant, slope, floor]), np.inf)


def slope_at(u: np.ndarray, pw: np.ndarray, a: np.ndarray, nu: float, band: float) -> np.ndarray:
    """A lower bound on the slope of phi_B at u, so on every secant of phi_B that ends at u (concave): the active
    piece's p / R(b*), b* <= min(a s_up, band) (the table's upper bound on the minimizer). Unlike the difference
    of two table values it keeps its precision where the span is small beside the payload."""
    _, s_up = concave_energy(pw * u / a, nu * a)  # nu = 0: s_up inf, the whole band
    return pw / uplink_rate(np.minimum(a * s_up, band), a)


def level_chord(
    lo: np.ndarray, hi: np.ndarray, top: np.ndarray, pw: np.ndarray, a: np.ndarray, nu: float, band: float
) -> tuple[np.ndarray, np.ndarray]:
    """(slope, intercept) of a line below g(R) = phi_B(top + R) - phi_B(top) for R in the load level [lo, hi], and so
    below phi_B(O + R) - phi_B(O) for every own payload O <= top (increments of a concave function shrink): the
    chord of g on the level anchored at its left end, intercept + slope R = g_lo(lo) + slope (R - lo), with g_lo(lo)
    <= g(lo) (table bounds) and slope <= the true chord's (the table's chord, the slope at top + hi and the floor
    p / R(B_e) are each at most it). Level [0, hi]: intercept 0 (g(0) = 0). Where hi <= lo: (inf, inf)."""
    wide = hi > lo * (1 + 1e-12)
    span = np.where(wide, hi - lo, 1.0)
    hi_lo, _ = band_energy(top + np.where(wide, hi, lo + 1.0), pw, a, nu, band)
    at_lo_lo, at_lo_up = band_energy(top + lo, pw, a, nu, band)
    _, at_top = band_energy(top, pw, a, nu, band)
    floor = pw / uplink_rate(np.full(np.shape(a), band), a)
    slope = np.maximum.reduce([(hi_lo - at_lo_up) / span, slope_at(top + hi, pw, a, nu, band), floor])
    g_lo = np.maximum(at_lo_lo - at_top, lo * slope_at(top + lo, pw, a, nu, band))  # g(lo) >= both (concave g)
    intercept = np.where(lo > 0, np.maximum(g_lo - slope * lo, 0.0), 0.0)  # g(lo) - slope lo >= 0: concave, g(0) = 0
    return np.where(wide, slope, np.inf), np.where(wide, intercept, np.inf)
