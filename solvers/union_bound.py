"""The latency bound's LP when relays aggregate (`relay_aggregates`): relayed payloads are charged at their relay.

An aggregating relay j uploads the union of its group's modules, so a relayed subset may add nothing to j's payload
and no per-route price is both valid and positive (solvers/bounds.py used to price such routes at 0: on relay-heavy
edges every device could then "relay" for free and the LP proved nothing). What stays valid is the maximum: the
union holds every member's subset and j starts after every member's payload has arrived, so j's band at latency T is
at least R_j^-1(P_i / (T - a_i)) for each member i (own subset: a_j = its compute time; relayed: compute + D2D hop).
So per uploader j a variable y_j >= sum over member i's routes to j of w_r x_r (one row per member: a device takes at
most one route), and the edge's band is at least sum_j y_j. With "at most one route per device" and coverage, the LP
min sum_j y_j > B_e proves that no plan finishes by T (its integer points include every plan's routes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solvers.highs import highs_lp, require_bare_highs, run_lp


def union_band(
    dev: np.ndarray,
    mbits: np.ndarray,
    samples: np.ndarray,
    demand: np.ndarray,
    route_col: np.ndarray,
    route_up: np.ndarray,
    w: np.ndarray,
) -> tuple[str, float]:
    """(optimal | infeasible | other, least sum_j y_j) over routes r (column route_col[r], uploader route_up[r],
    band w[r]; inf: the route cannot finish in time): at most one route per device, samples per module >= demand,
    y_j >= sum of member i's routes to j of w_r x_r for every (i, j), 0 <= x <= 1."""
    highspy, bare = require_bare_highs("the union bound LP")
    lp, _ = union_lp(highspy, dev, mbits, samples, demand, route_col, route_up, w)
    if lp is None:
        return "optimal", 0.0
    h = run_lp(bare, lp)
    status = h.getModelStatus()
    kind = {highspy.HighsModelStatus.kOptimal: "optimal", highspy.HighsModelStatus.kInfeasible: "infeasible"}.get(
        status, "other"
    )
    return kind, float(h.getInfo().objective_function_value)


def union_lp(highspy: Any, dev: np.ndarray, mbits: np.ndarray, samples: np.ndarray, demand: np.ndarray,
             route_col: np.ndarray, route_up: np.ndarray, w: np.ndarray) -> tuple[Any, tuple]:
    """The LP of `union_band` (None when no module is needed) and its row layout: (device rows, the needed
    modules' mask (their rows follow), each route's pair row index after those (-1: no route of its (device,
    uploader) pair is in the LP), each pair's uploader); solvers/union_dual.py reads its duals."""
    ok = np.isfinite(w)
    col, up, wr = route_col[ok], route_up[ok], w[ok]
    need = demand > 0
    if not need.any():
        return None, ()
    scale = demand[need].max()
    rdev = dev[col]
    devs, d_local = np.unique(rdev, return_inverse=True)
    ups, u_local = np.unique(up, return_inverse=True)
    span = int(max(dev.max(initial=0), route_up.max(initial=0))) + 1
    keys, pair_id = (
        np.unique(rdev * span + up, return_inverse=True) if col.size else (np.zeros(0, dtype=np.int64),) * 2
    )
    npair = int(pair_id.max()) + 1 if col.size else 0
    pair_up = np.zeros(npair, dtype=np.int64)
    pair_up[pair_id] = u_local
    nr, nu, nd, nm = col.size, ups.size, devs.size, int(need.sum())
    cov = mbits[col][:, need] * (samples[rdev] / scale)[:, None]  # [routes, modules needed]
    ci, mj = np.nonzero(cov)
    # rows: devices (<= 1), coverage (>= demand), pairs (sum w x - y <= 0); columns: routes, then y per uploader
    r = np.concatenate([d_local, nd + mj, nd + nm + pair_id, nd + nm + np.arange(npair)])
    c = np.concatenate([np.arange(nr), ci, np.arange(nr), nr + pair_up])
    v = np.concatenate([np.ones(nr), cov[ci, mj], wr, -np.ones(npair)])
    order = np.lexsort((r, c))
    r, c, v = r[order], c[order], v[order]
    n = nr + nu
    inf = highspy.kHighsInf
    lp = highs_lp(highspy, np.concatenate([np.zeros(nr), np.ones(nu)]), np.zeros(n),
                  np.concatenate([np.ones(nr), np.full(nu, inf)]),
                  np.concatenate([np.full(nd, -inf), demand[need] / scale * (1 - 1e-9), np.full(npair, -inf)]),
                  np.concatenate([np.ones(nd), np.full(nm, inf), np.zeros(npair)]),
                  np.concatenate([[0], np.cumsum(np.bincount(c, minlength=n))]).astype(np.int32), r.astype(np.int32), v)
    every = dev[route_col] * span + route_up  # each route's pair, also those left out here
    at = np.minimum(np.searchsorted(keys, every), max(keys.size - 1, 0))
    pair_of_route = np.where(keys.size > 0, np.where(keys[at] == every, at, -1), -1) if keys.size else np.full(
        route_col.size, -1)
    return lp, (nd, need, pair_of_route, pair_up)
