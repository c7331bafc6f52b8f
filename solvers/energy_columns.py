"""lambda > 0, one edge: a lower bound on T + lambda E from column MILPs of the least energy at trial latencies.

E_lb(T): the least energy of any plan finishing by T (one edge). Columns as in solvers/latency_model.py; per uploader
j a band share B_j (sum <= 1) at least the bands its members need by T (their sum when relays forward: R^-1 is
superadditive; any one member's when they aggregate). Energy = compute + D2D (a number per column) + upload
p_j U_j / R_j(B_j): with forwarded payloads the sum over j's columns of p_j P_c phi_j(B_j), phi = 1 / R convex
decreasing, each under-estimated by v_c P_c (a_k + s_k B_j) >= P_c (a_k v_c + s_k B_j) (a tangent; at v_c = 0 the
right side is <= 0); with aggregating relays the same per module of the union. HiGHS's dual bound is valid at any
time limit. E_lb is nonincreasing in T, so on [T_k, T_(k+1)] the objective is at least T_k + lambda E_lb(T_(k+1)):
`lambda_bound` = min over a grid of such pieces (and lambda E_lb(T_0) below the grid), capped by the incumbent.
"""

from __future__ import annotations

import math

import numpy as np

from solvers.clock import now
from solvers.column_milp import INF, Extra, Row, choice_rows, run_milp
from solvers.evaluate import LN2, uplink_rate
from solvers.instance import RoundProblem
from solvers.latency_model import EdgeColumns

SHARES = (1.0, 0.5, 0.25, 0.12, 0.06, 0.03, 0.015)
"""Band shares where the upload energy per bit is tangent-cut."""


def tangent(a_snr: np.ndarray | float, bw: float, share: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Tangent (a, s) of phi(B) = 1 / R(B x bw) (s per bit; R with a = a_snr) at share B: phi >= a + s B for every
    B > 0 (phi is convex), so a row built on it under-estimates the upload time. Elementwise over arrays."""
    a_snr, share = np.asarray(a_snr, dtype=float), np.asarray(share, dtype=float)
    b = share * bw
    r = uplink_rate(b, a_snr)
    dr = (np.log1p(a_snr / b) - (a_snr / b) / (1 + a_snr / b)) / LN2  # R'(b)
    s = -dr * bw / r ** 2
    return 1.0 / r - s * share, s


class EnergyModel:
    """One edge's least-energy MILP at a trial latency."""

    def __init__(self, p: RoundProblem) -> None:
        self.p = p
        c = self.c = EdgeColumns.of(p)
        self.fixed = c.fixed_energy(p)
        self.bw = float(p.edge_bandwidth_hz[0])

    def cut(self, share: float, j: int) -> tuple[float, float]:
        """Tangent (a, s) of phi_j(B) = 1 / R_j(B x B_e) (s per bit) at share B: phi >= a + s B."""
        a, s = tangent(float(self.p.snr_hz[j]), self.bw, share)
        return float(a), float(s)

    def energy_lb(self, t: float, deadline: float, escale: float) -> float:
        """A lower bound on the least energy (J) of plans finishing by t; inf if none does; 0 if out of time."""
        p, c = self.p, self.c
        left = deadline - now()
        if left <= 0.02:
            return 0.0
        cost = c.cost(t, dominate=False)
        usable = np.isfinite(cost) & (cost <= 1 + 1e-9)
        k = c.dev.size
        extra = Extra(k)
        rows: list[Row] = choice_rows(p, c, extra)
        shares: list[int] = []
        for j in range(p.num_devices):
            mine = np.flatnonzero(usable & (c.up == j))
            if mine.size == 0:
                continue
            bj = extra.add(0.0, 1.0)
            shares.append(bj)
            pj = float(p.tx_power_w[j]) / escale
            cuts = [self.cut(s, j) for s in SHARES]
            if c.union_bits is None:
                rows.append(({bj: 1.0, **{int(x): -float(cost[x]) for x in mine}}, 0.0, INF))
                for i in np.unique(c.dev[mine]):
                    of_i = mine[c.dev[mine] == i]
                    e = extra.add(1.0)
                    for x in of_i:
                        for a, s in cuts:
                            w = pj * float(c.pay[x])
                            rows.append(({e: 1.0, int(x): -w * a, bj: -w * s}, 0.0, INF))
            else:
                for i in np.unique(c.dev[mine]):
                    of_i = mine[c.dev[mine] == i]
                    rows.append(({bj: 1.0, **{int(x): -float(cost[x]) for x in of_i}}, 0.0, INF))
                for m in np.flatnonzero(c.mask[mine].any(axis=0)):
                    u = extra.add(0.0, 1.0)
                    for i in np.unique(c.dev[mine]):
                        has = mine[(c.dev[mine] == i) & (c.mask[mine, m] > 0)]
                        if has.size:
                            rows.append(({u: 1.0, **{int(x): -1.0 for x in has}}, 0.0, INF))
                    e = extra.add(1.0)
                    w = pj * float(c.union_bits[m])
                    for a, s in cuts:
                        rows.append(({e: 1.0, u: -w * a, bj: -w * s}, 0.0, INF))
        if shares:
            rows.append(({b: 1.0 for b in shares}, -INF, 1.0))
        status, _, bound = run_milp(rows, self.fixed / escale, usable, extra, left, 1e-4, INF)
        if status == "infeasible":
            return math.inf
        return max(bound, 0.0) * escale


def lambda_bound(p: RoundProblem, upper: float, deadline: float, gap: float = 0.01, start: int = 4,
                 min_width: float = 1e-4) -> float:
    """A certified lower bound on min T + lambda E of the one-edge problem p whose incumbent scores `upper`: T in
    pieces [T_k, T_(k+1)] of [0.05, 1] x upper (no plan better than the incumbent has T > upper), each bounded by
    T_k + lambda E_lb(T_(k+1)); the piece with the least bound is halved (geometrically) until the bound is within
    `gap` of the incumbent, the pieces are narrower than min_width (relative), or time runs out."""
    lam = p.lam
    model = EnergyModel(p)
    escale = max(upper / max(lam, 1e-300), 1e-300)
    grid = list(upper * np.geomspace(0.05, 1.0, start + 1))
    energy = [model.energy_lb(float(t), deadline, escale) for t in grid]
    below = lam * energy[0]  # T in [0, T_0]
    pieces = [(grid[k] + lam * energy[k + 1], grid[k], grid[k + 1], energy[k + 1]) for k in range(start)]
    while now() < deadline:
        pieces.sort()
        value, lo, hi, e_hi = pieces[0]
        if min(value, below) >= (1 - gap) * upper or hi / lo - 1 < min_width:
            break
        mid = math.sqrt(lo * hi)
        e_mid = model.energy_lb(mid, deadline, escale)
        pieces[0] = (lo + lam * e_mid, lo, mid, e_mid)
        pieces.append((mid + lam * e_hi, mid, hi, e_hi))
    return float(min(upper, below, min(v for v, *_ in pieces)))
