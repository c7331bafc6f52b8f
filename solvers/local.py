"""Best-improvement local search per edge with exact evaluation of every neighbouring candidate.

Moves: change one device's relay (direct, or any direct neighbour when it serves nobody); for one module,
swap a covering device for a non-covering one, or add one, then prune the cover back to minimal. All
neighbours of the current choice are evaluated in one vectorized batch (solvers/edgebatch.py).
"""

from __future__ import annotations

import numpy as np

from solvers.clock import Clock
from solvers.edgebatch import EdgeView
from solvers.exact import minimal_covers
from solvers.instance import RoundProblem


def _prune(xe: np.ndarray, k: int, samples: np.ndarray, demand: float, keep: int) -> None:
    """Drop covering devices of module k (most samples first, never `keep`) while coverage holds."""
    cover = np.flatnonzero(xe[:, k])
    total = samples[cover].sum()
    for i in cover[np.argsort(-samples[cover])]:
        if i != keep and total - samples[i] >= demand * (1 - 1e-12):
            xe[i, k] = False
            total -= samples[i]


def relay_moves(view: EdgeView, re: np.ndarray) -> list[np.ndarray]:
    """Every single relay move of (local) relays re: a device to a direct D2D neighbour (when it serves nobody), or
    back to direct."""
    n = view.n
    own = re == np.arange(n)
    served = np.bincount(re[~own], minlength=n)
    out = []
    for i in range(n):
        for j in [i] + [j for j in np.flatnonzero(view.rate[i] > 0) if own[j] and j != i]:
            if j == re[i] or (j != i and served[i] > 0):
                continue
            r2 = re.copy()
            r2[i] = j
            out.append(r2)
    return out


def placement_moves(view: EdgeView, xe: np.ndarray, covers: list | None) -> list[np.ndarray]:
    p = view.problem
    if covers is not None:  # large neighbourhood: any minimal cover of one module, the others kept
        out = []
        for k, options in enumerate(covers):
            for sub in options:
                x2 = xe.copy()
                x2[:, k] = False
                x2[list(sub), k] = True
                if not np.array_equal(x2, xe):
                    out.append(x2)
        pairs = sum(len(a) * len(b) for i, a in enumerate(covers) for b in covers[i + 1:])
        if pairs <= 3000:  # two modules at once: lets two covers trade devices
            for k, ok in enumerate(covers):
                for l2 in range(k + 1, len(covers)):
                    for sa in ok:
                        for sb in covers[l2]:
                            x2 = xe.copy()
                            x2[:, k] = False
                            x2[:, l2] = False
                            x2[list(sa), k] = True
                            x2[list(sb), l2] = True
                            out.append(x2)
        return out
    samples = p.samples[view.dev]
    elig = p.eligible[view.dev]
    out = []
    for k in range(p.num_modules):
        if view.demand[k] <= 0:
            continue
        cover = np.flatnonzero(xe[:, k])
        for o in np.flatnonzero(elig[:, k] & ~xe[:, k] & (samples > 0)):
            for i in list(cover) + [-1]:
                x2 = xe.copy()
                x2[o, k] = True
                if i >= 0:
                    x2[i, k] = False
                if samples[x2[:, k]].sum() < view.demand[k] * (1 - 1e-12):
                    continue
                _prune(x2, k, samples, view.demand[k], keep=int(o))
                out.append(x2)
    return out


def neighbours(view: EdgeView, xe: np.ndarray, re: np.ndarray, compound: bool = False,
               covers: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All feasible single-move neighbours of (xe [n, M], re [n]); with compound, also relay x placement pairs."""
    rmoves, pmoves = relay_moves(view, re), placement_moves(view, xe, covers)
    xs = [xe] * len(rmoves) + pmoves
    rs = rmoves + [re] * len(pmoves)
    if compound:
        for r2 in rmoves:
            xs += pmoves
            rs += [r2] * len(pmoves)
    if not xs:
        return np.zeros((0, view.n, view.problem.num_modules), dtype=bool), np.zeros((0, view.n), dtype=int)
    xa, ra = np.array(xs), np.array(rs)
    ok = view.feasible(xa) & view.relay_ok(ra)
    return xa[ok], ra[ok]


def local_search(problem: RoundProblem, x: np.ndarray, relay: np.ndarray, max_devices: int = 16,
                 rounds: int = 40, compound_max_devices: int = 8, cover_max_devices: int = 12,
                 max_covers: int = 400, skip: frozenset[int] = frozenset(),
                 clock: Clock | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Improve every edge with at most max_devices devices (but `skip`); returns new (x, relay) (lambda-0 latency).
    Stops where it is (every move so far kept) when `clock` runs out."""
    clock = Clock() if clock is None else clock
    x, relay = x.copy(), relay.copy()
    sizes = np.bincount(problem.device_edge, minlength=problem.num_edges)
    for e in np.flatnonzero((sizes > 0) & (sizes <= max_devices)):
        if int(e) in skip:
            continue
        if clock.expired():
            break
        view = EdgeView.of(problem, int(e))
        d = view.dev
        local = {int(g): k for k, g in enumerate(d)}
        xe = x[d].copy()
        re = np.array([local[int(r)] for r in relay[d]])
        cur = float(view.latency(xe[None], re[None])[0])
        covers = None
        if view.n <= cover_max_devices:
            covers = [minimal_covers(problem.samples[d], problem.eligible[d, k], view.demand[k])
                      for k in range(problem.num_modules)]
            if sum(len(c) for c in covers) > max_covers:
                covers = None
        for _ in range(rounds):
            if clock.expired():
                break
            xa, ra = neighbours(view, xe, re, compound=view.n <= compound_max_devices, covers=covers)
            if len(xa) == 0:
                break
            t = view.latency(xa, ra, below=cur * (1 - 1e-9))  # only a neighbour that finishes by then is taken
            j = int(np.argmin(t))
            if not t[j] < cur * (1 - 1e-9):
                break
            xe, re, cur = xa[j], ra[j], float(t[j])
        x[d] = xe
        relay[d] = d[re]
    return x, relay
