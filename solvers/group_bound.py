"""The relay-group bound on the round's objective T + lambda E (lambda > 0) from the per-edge masters of
solvers/group_columns.py: masters at a few latencies, Lagrangian bounds (one pricing pass each) in between, and
`GroupEnergy`, the per-edge E_lb(T) as an `EdgeFloor` of solvers/energy_bound.py."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from solvers.clock import Clock
from solvers.group_columns import GroupBound
from solvers.group_parts import edge_parts
from solvers.instance import RoundProblem

MAX_POINTS = 64
"""Most trial latencies of the objective bound (each one pricing pass)."""
MAX_MASTERS = 8
"""Most masters (column generation runs) of the objective bound."""
NEAR = 2
"""A trial latency's Lagrangian bound takes the best of the NEAR nearest masters' multipliers."""


def group_applies(p: RoundProblem) -> bool:
    """The group bound's rounds: one-hop relays at fixed power and frequency, full-size uploads (no compression
    levels), no trees."""
    return not (p.tree_aggregation or p.has_power_frequency or p.level_factor is not None
                or p.level is not None) and p.num_modules <= 12


def group_lower_bound(p: RoundProblem, t_lb: float, upper: float, t_ref: float, e_ref: float, clock: Clock,
                      gap: float = 0.01, rtol: float = 0.002,
                      plan: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> float:
    """Certified lower bound on min T + lambda E over the round's plans (lambda > 0), from the group masters:
    t_lb <= every plan's latency, upper a plan's objective (no better plan is slower than it), t_ref and e_ref
    that plan's latency and energy (the first master's latency; the energy unit). E(T) >= sum over edges of the
    best Lagrangian bound L_e(T') at any T' >= T (E_lb never rises with T), so on a piece [t_k, t_k+1] the
    objective is at least t_k + lambda L(t_k+1): pieces are split where least, and where a piece is as fine as
    rtol a master at its right end adds its multipliers; each master starts from `plan`'s groups (placement,
    relays, bandwidth). -inf where an edge has too many subsets."""
    lam = p.lam
    edges = []
    for e in range(p.num_edges):
        parts = edge_parts(p, e)
        if parts is None:
            return -math.inf
        edges.append(GroupBound(p, e, parts))
    scale = max(e_ref / len(edges), 1e-30)

    found: list[tuple[float, list]] = []  # (latency, each edge's best multipliers there)

    def master(t: float) -> None:
        for g in edges:
            if clock.expired():
                return
            g.energy(t, scale, clock=clock, seed=None if plan is None else g.plan_groups(*plan))
        if all(g.duals for g in edges):
            found.append((t, [g.duals[-1] for g in edges]))

    def value(t: float) -> float:  # with the multipliers of the NEAR nearest masters
        near = sorted(found, key=lambda f: abs(math.log(f[0] / t)))[:NEAR]
        return max(sum(g.lagrangian(t, d) for g, d in zip(edges, ds, strict=True)) for _, ds in near)

    master(t_ref)
    if not found:
        return -math.inf
    hi = upper
    for _ in range(3):  # no plan better than upper is slower than upper - lambda E_lb(upper)
        hi = min(hi, max(upper - lam * max(value(hi), 0.0), t_lb))
    pts = sorted({t_lb, *np.geomspace(max(t_lb, 1e-12), hi, 6)[1:-1].tolist(), t_ref, hi})
    pts = [t for t in pts if t_lb <= t <= hi]
    vals = [value(t) for t in pts]

    def bound() -> tuple[float, int]:
        low = np.maximum.accumulate(np.array(vals)[::-1])[::-1]  # E(T) >= L(T') for every T' >= T
        pieces = [pts[k] + lam * low[k + 1] for k in range(len(pts) - 1)] + [upper]
        k = int(np.argmin(pieces))
        return float(pieces[k]), k

    while not clock.expired() and len(pts) < MAX_POINTS:
        got, k = bound()
        if got >= (1 - gap) * upper or k == len(pts) - 1:
            break
        t = pts[k + 1]
        if len(found) < MAX_MASTERS and all(abs(math.log(f[0] / t)) > rtol for f in found):
            master(t)  # multipliers of its own at the piece's right end
            for q in (k, k + 1, k + 2):
                if 0 <= q < len(pts):
                    vals[q] = max(vals[q], value(pts[q]))
            continue
        if pts[k + 1] <= pts[k] * (1 + rtol):
            break
        mid = math.sqrt(pts[k] * pts[k + 1])
        pts.insert(k + 1, mid)
        vals.insert(k + 1, value(mid))
    return min(bound()[0], upper)


class GroupEnergy:
    """Per edge E_lb(T) by the group columns (an `EdgeFloor` of solvers/energy_bound.py), the larger of it and
    `inner`'s (e.g. the subset LP) where both run; edges with too many subsets keep the floor."""

    def __init__(self, p: RoundProblem, inner: Any = None) -> None:
        self.p, self.inner = p, inner
        self.edges: dict[int, GroupBound | None] = {}
        self.scale: dict[int, float] = {}

    def edge(self, e: int) -> GroupBound | None:
        if e not in self.edges:
            parts = edge_parts(self.p, e)
            self.edges[e] = None if parts is None else GroupBound(self.p, e, parts)
        return self.edges[e]

    def energy_edges(self, t: float, nu_ref: np.ndarray, floor: np.ndarray, clock: Clock | None = None
                     ) -> np.ndarray:
        out = np.array(floor, dtype=float)
        if self.inner is not None:
            out = np.maximum(out, self.inner.energy_edges(t, nu_ref, floor, clock))
        for e in range(self.p.num_edges):
            if clock is not None and clock.expired():
                break
            g = self.edge(e)
            if g is None or not math.isfinite(out[e]):
                continue
            scale = self.scale.setdefault(e, max(float(out[e]), 1e-30))
            out[e] = max(out[e], g.energy(t, scale, clock=clock))
        return out
