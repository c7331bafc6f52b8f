"""D2D aggregation trees as decisions (instances with "tree_aggregation": true).

Each edge's devices form one tree over the D2D links (parent[i] = the next hop, parent[r] = r for the edge's
one uploader r). Timeline (what the cost assumes, and what an engine must run to match it):
  - device i computes its placed modules in tau_i = n_i sum_m c_m x_im / f_i;
  - it waits for every child's transfer, then sends ONE payload to its parent: the union of the modules placed
    in its subtree, P_i = 8 sum_m s_m max_{k in subtree(i)} x_km bits, from ready_i = max(tau_i, arrivals of
    its children) to arrival_i = ready_i + P_i / r_{i,parent(i)};
  - the root uploads its subtree's union over the whole band B_e from ready_root; T = max_e of those finishes.
  - E = sum_i kappa n_i c x f_i^2 + sum_{i not root} p^d2d_i P_i / r_{i,parent(i)} + p_root U_root / R(B_e).
One uploader per edge owns the band, so the bandwidth decision is trivial; the decisions are placement, tree and
root. Exact for small edges by enumeration (minimal covers x spanning trees x roots); otherwise the best
shortest-path tree (Dijkstra on 1 / rate) over roots, then local search on parents and placements.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from solvers.clock import now
from solvers.edgebatch import EdgeView
from solvers.errors import InfeasibleError, TooLargeError
from solvers.evaluate import uplink_rate
from solvers.exact import placements_upto
from solvers.greedy import greedy_placement
from solvers.instance import RoundProblem
from solvers.local import placement_moves
from solvers.plan import RoundPlan
from solvers.tree_bound import edge_root_bounds, threshold_value
from solvers.tree_energy import flat_pairs, ladder_pairs


def tree_cost(view: EdgeView, x: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(finish [K], energy [K]) of K candidate (x [K, n, M], parent [K, n] local) trees of one edge."""
    p, d, n = view.problem, view.dev, view.n
    k = x.shape[0]
    rows = np.arange(k)[:, None]
    root = parent == np.arange(n)
    union = x.copy()
    for _ in range(n):  # the union flows up one level per pass; depth <= n
        new = union.copy()
        for i in range(n):
            src = ~root[:, i]
            new[rows[src, 0], parent[src, i]] |= union[src, i]
        if np.array_equal(new, union):
            break
        union = new
    tau = p.samples[d] * (x.astype(float) @ p.module_cycles) / p.cpu_hz[d]
    pay = 8.0 * (union.astype(float) @ p.module_bytes)
    rate = view.rate[np.arange(n)[None, :], parent]
    with np.errstate(over="ignore", divide="ignore"):
        hop = np.where(root, 0.0, np.where(pay > 0, pay / np.where(rate > 0, rate, 1e-300), 0.0))
    ready = tau.copy()
    for _ in range(n):
        arrive = ready + hop
        new = tau.copy()
        for i in range(n):
            src = ~root[:, i]
            new[rows[src, 0], parent[src, i]] = np.maximum(new[rows[src, 0], parent[src, i]], arrive[src, i])
        if np.array_equal(new, ready):
            break
        ready = new
    r_idx = np.argmax(root, axis=1)
    a_root = p.snr_hz[d][r_idx]
    bits = pay[np.arange(k), r_idx]
    up = np.where(bits > 0, bits / uplink_rate(np.full(k, p.edge_bandwidth_hz[view.edge]), a_root), 0.0)
    finish = ready[np.arange(k), r_idx] + up
    cycles = p.samples[d] * (x.astype(float) @ p.module_cycles)
    energy = (p.kappa * cycles * p.cpu_hz[d] ** 2).sum(axis=1)
    energy += (np.where(root, 0.0, p.d2d_power_w[d] * hop)).sum(axis=1)
    energy += p.tx_power_w[d][r_idx] * up
    return finish, energy


def is_tree(rate: np.ndarray, parent: np.ndarray, capacity: int | None = None) -> bool:
    """One root, every other node's parent a D2D neighbour, no cycle, at most `capacity` children per node."""
    n = parent.size
    own = parent == np.arange(n)
    if np.sum(own) != 1:
        return False
    if capacity is not None and np.bincount(parent[~own], minlength=n).max(initial=0) > capacity:
        return False
    for i in range(n):
        if parent[i] != i and rate[i, parent[i]] <= 0:
            return False
        seen, j = 0, i
        while parent[j] != j:
            j = parent[j]
            seen += 1
            if seen > n:
                return False
    return True


def tree_count(rate: np.ndarray) -> int:
    """The spanning trees of the local D2D graph (parent arrays, any root, no capacity), by the matrix-tree theorem:
    those toward root r number det of the out-degree Laplacian (D_out - A, A[i, j] = rate[i, j] > 0) without row
    and column r."""
    a = (rate > 0).astype(float)
    np.fill_diagonal(a, 0.0)
    lap = np.diag(a.sum(axis=1)) - a
    keep = ~np.eye(len(a), dtype=bool)
    return int(round(sum(np.linalg.det(lap[keep[r]][:, keep[r]]) for r in range(len(a)))))


def all_trees(rate: np.ndarray, limit: int = 20000, capacity: int | None = None) -> np.ndarray | None:
    """[T, n] every spanning tree (parent array, at most `capacity` children per node) of the local D2D graph, or
    None if more than limit."""
    n = rate.shape[0]
    if capacity is None and tree_count(rate) > limit:  # without the count a 7-device edge checked 823,543 parent
        return None  # arrays one by one (3-4 CPU s, the whole clock) to find 117,649 trees, over the limit
    choices = [[i] + [int(j) for j in np.flatnonzero(rate[i] > 0)] for i in range(n)]
    if np.prod([len(c) for c in choices], dtype=float) > 50 * limit:
        return None
    out = [par for par in itertools.product(*choices) if is_tree(rate, np.array(par), capacity)]
    return np.array(out, dtype=int).reshape(-1, n) if len(out) <= limit else None


def spt_trees(view: EdgeView) -> np.ndarray:
    """[n, n] for each root, the shortest-path tree to it on 1 / rate (rows: parent arrays; -1 if unreachable)."""
    n = view.n
    w = np.where(view.rate > 0, 1.0 / np.where(view.rate > 0, view.rate, 1.0), 0.0)
    from scipy.sparse.csgraph import dijkstra  # imported here: start-up of the other modes stays light

    _, pred = dijkstra(w.T, directed=True, return_predecessors=True)  # paths from the root along reversed links
    out = np.where(pred < 0, -1, pred)
    out[np.arange(n), np.arange(n)] = np.arange(n)
    return out


def grow_tree(view: EdgeView, root: int, pick: Callable[[np.ndarray, np.ndarray], int]) -> np.ndarray | None:
    """A spanning tree toward `root` with at most relay_capacity children per node, grown one link at a time:
    among the links i -> j from a device outside to one inside with room, `pick(src, dst)` chooses (an index);
    None if the growth gets stuck (the graph does not connect the cluster, or the capacity blocks this growth)."""
    n, cap = view.n, view.problem.relay_capacity
    parent = np.full(n, -1)
    parent[root] = root
    kids = np.zeros(n, dtype=int)
    src, dst = np.nonzero(view.rate > 0)
    for _ in range(n - 1):
        ok = (parent[src] < 0) & (parent[dst] >= 0)
        if cap is not None:
            ok &= kids[dst] < cap
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            return None
        c = cand[pick(src[cand], dst[cand])]
        parent[src[c]] = dst[c]
        kids[dst[c]] += 1
    return parent


def capacity_tree(view: EdgeView, root: int, budget: int = 20_000) -> tuple[np.ndarray | None, bool]:
    """(a spanning tree toward `root` with at most relay_capacity children per node, or None; whether the search
    was exhaustive). Depth-first over parent arrays: devices with the fewest links first, each trying its widest
    links first, pruning a parent that is full or closes a cycle; at most `budget` choices in all."""
    n, cap = view.n, view.problem.relay_capacity
    cap = n if cap is None else cap
    links = [[int(j) for j in np.flatnonzero(view.rate[i] > 0)[np.argsort(-view.rate[i][view.rate[i] > 0],
                                                                          kind="stable")]] for i in range(n)]
    order = sorted((i for i in range(n) if i != root), key=lambda i: (len(links[i]), i))
    parent = np.full(n, -1)
    parent[root] = root
    kids = np.zeros(n, dtype=int)
    steps = [0]

    def closes_cycle(i: int, j: int) -> bool:
        while j >= 0 and parent[j] != j:
            if j == i:
                return True
            j = parent[j]
        return j == i

    def search(k: int) -> bool | None:  # True: found; False: none in this branch; None: out of budget
        if k == len(order):
            return True
        i = order[k]
        for j in links[i]:
            if kids[j] >= cap or closes_cycle(i, j):
                continue
            steps[0] += 1
            if steps[0] > budget:
                return None
            parent[i], kids[j] = j, kids[j] + 1
            got = search(k + 1)
            if got is not False:
                return got
            parent[i], kids[j] = -1, kids[j] - 1
        return False

    found = search(0)
    return (parent.copy() if found else None), found is not None


def start_trees(view: EdgeView) -> np.ndarray:
    """[R, n] one tree per root that has one: its shortest-path tree on 1 / rate if it meets relay_capacity,
    else the widest-link tree grown under the capacity. Raises InfeasibleError (naming the edge) when no root has
    a tree: the D2D graph does not connect the cluster, or no tree meets the relay capacity (proven by exhaustive
    search); RuntimeError when the search budget ran out first."""
    p, n = view.problem, view.n
    spt = spt_trees(view)
    out = []
    proven = True
    for r in range(n):
        par = spt[r]
        if (par >= 0).all() and is_tree(view.rate, par, p.relay_capacity):
            out.append(par)
        elif (par >= 0).all():  # connected, but the shortest paths overload a relay
            tree, exhaustive = capacity_tree(view, r)
            proven &= exhaustive
            if tree is not None:
                out.append(tree)
    if out:
        return np.array(out, dtype=int)
    edge = p.edge_ids[view.edge]
    if not (spt >= 0).all(axis=1).any():
        from scipy.sparse.csgraph import connected_components

        _, label = connected_components(view.rate > 0, directed=True, connection="strong")
        groups = [[p.device_ids[view.dev[i]] for i in np.flatnonzero(label == g)] for g in np.unique(label)]
        raise InfeasibleError(f"tree: the D2D links of edge {edge!r} do not connect its cluster: no device is "
                              f"reachable from all the others (groups {groups[:4]}{' ...' if len(groups) > 4 else ''});"
                              " add links or plan one-hop relays")
    what = f"tree: no D2D tree of edge {edge!r} gives every device at most relay_capacity={p.relay_capacity} children"
    if proven:
        raise InfeasibleError(f"{what} (none exists: exhaustive search); raise it")
    raise RuntimeError(f"{what} was found within the search budget (not a proof that none exists)")


def _choose(fin: list[np.ndarray], en: list[np.ndarray], lam: float) -> list[int]:
    """One candidate per edge minimizing max finish + lam sum energy (exact over the candidate sets)."""
    if lam == 0:
        return [int(np.argmin(f)) for f in fin]
    fronts = []
    for f, e in zip(fin, en, strict=True):  # only (finish, energy) Pareto points can be picked
        order = np.lexsort((e, f))
        keep = order[np.concatenate([[True], np.minimum.accumulate(e[order])[:-1] > e[order][1:]])]
        fronts.append(keep)
    fin = [f[k] for f, k in zip(fin, fronts, strict=True)]
    en = [e[k] for e, k in zip(en, fronts, strict=True)]
    best, pick = np.inf, None
    for t in np.unique(np.concatenate(fin)):
        if t < max(f.min() for f in fin):
            continue
        idx = [int(np.argmin(np.where(f <= t, e, np.inf))) for f, e in zip(fin, en, strict=True)]
        val = max(f[i] for f, i in zip(fin, idx, strict=True)) + lam * sum(e[i] for e, i in zip(en, idx, strict=True))
        if val < best:
            best, pick = val, idx
    # t = max over edges of the least finish is always in the loop, and costs are finite (check_magnitudes)
    assert pick is not None, "no finite (finish, energy) choice per edge"
    return [int(k[i]) for k, i in zip(fronts, pick, strict=True)]


def tree_exact(problem: RoundProblem, enum_max: int = 200_000) -> RoundPlan:
    """Proven-optimal trees by enumeration; raises TooLargeError on an edge beyond enum_max choices."""
    return tree_solve(problem, exact=True, enum_max=enum_max)


def tree_solve(problem: RoundProblem, exact: bool = False, enum_max: int = 200_000) -> RoundPlan:
    """Placement, tree and root per edge (exact=True: proven optimal by enumeration, small instances only)."""
    return tree_search(problem, exact, enum_max)[0]


@dataclass(frozen=True)
class TreeEdges:
    """What the search knows per (non-empty) edge: for the model (solvers/tree_improve.py) to go on from."""

    views: list[EdgeView]
    pairs: list[tuple[np.ndarray, np.ndarray]]
    """(finish, energy) pairs bounding every tree plan of the edge: its exact candidates or per-root bounds."""
    enumerated: list[bool]
    ladders: list[list[tuple[np.ndarray, np.ndarray]] | None]  # lambda > 0, per root: solvers/tree_energy.py's pairs


def tree_search(problem: RoundProblem, exact: bool = False, enum_max: int = 200_000, arrival: bool = True,
                deadline: float = math.inf) -> tuple[RoundPlan, TreeEdges]:
    """tree_solve's plan (its lower bound from the pairs) and the per-edge knowledge behind it. Edges not enumerated
    start from the one-hop price cover on every start tree and, searched apart (arrival=False: not), from the
    tree-aware cover toward each start tree's root (solvers/tree_start.py). The local search stops descending at
    `deadline` (solvers/clock.py `now`: on the wall clock the plan then depends on the machine's speed)."""
    t0 = time.perf_counter()
    p = problem
    views = [EdgeView.of(p, e) for e in range(p.num_edges)]
    views = [v for v in views if v.n > 0]
    greedy = greedy_placement(p, np.full(p.num_devices, np.inf))
    cands, bounds, flags, ladders = [], [], [], []
    for v in views:
        trees = all_trees(v.rate, capacity=p.relay_capacity) if v.n <= 7 else None
        if trees is not None and len(trees) == 0:
            start_trees(v)  # raises InfeasibleError naming the edge and the reason
        pls = None
        if trees is not None and len(trees) > 0:
            try:
                pls = placements_upto(v, enum_max // len(trees)) if v.n <= 8 else None
            except TooLargeError:
                pls = None
        enumerated = trees is not None and pls is not None and len(trees) * len(pls) <= enum_max
        if enumerated:
            assert trees is not None and pls is not None
            a, b = np.divmod(np.arange(len(pls) * len(trees)), len(trees))
            xs, ps = pls[a], trees[b]
        elif exact:
            raise TooLargeError(f"edges[{v.edge}]: more than enum_max={enum_max} trees x placements (or more than 7 "
                                "devices); the exact tree reference is for small instances")
        else:
            ps = starts = start_trees(v)
            xs = np.repeat(greedy[v.dev][None], len(ps), axis=0)
            xs, ps = _tree_local_search(v, xs, ps, deadline=deadline)
            more = _arrival_starts(v, starts) if arrival else None  # searched apart: they never crowd the others out
            if more is not None:
                xa, pa = _tree_local_search(v, *more, deadline=deadline)
                xs, ps = np.concatenate([xs, xa]), np.concatenate([ps, pa])
        f, e = tree_cost(v, xs, ps)
        cands.append((v, xs, ps, f, e))
        bounds.append((f, e) if enumerated else edge_root_bounds(v))  # exact candidates, or per-root bounds
        flags.append(enumerated)
        ladders.append(ladder_pairs(v, *bounds[-1]) if p.lam > 0 and not enumerated and now() < deadline else None)
    pick = _choose([c[3] for c in cands], [c[4] for c in cands], p.lam)
    x = np.zeros((p.num_devices, p.num_modules), dtype=bool)
    parent = np.arange(p.num_devices)
    b = np.zeros(p.num_devices)
    for (v, xs, ps, _, _), j in zip(cands, pick, strict=True):
        x[v.dev] = xs[j]
        parent[v.dev] = v.dev[ps[j]]
        b[v.dev[np.flatnonzero(ps[j] == np.arange(v.n))[0]]] = p.edge_bandwidth_hz[v.edge]
    t = max(float(c[3][j]) for c, j in zip(cands, pick, strict=True))
    en = sum(float(c[4][j]) for c, j in zip(cands, pick, strict=True))
    lower, known = threshold_value(*flat_pairs(bounds, ladders), p.lam), TreeEdges(views, bounds, flags, ladders)
    return RoundPlan(placement=x, relay=parent, bandwidth_hz=b, latency_s=t, energy_j=en, objective=t + p.lam * en,
                     solver="exact" if exact else "joint", status="optimal" if exact else "solved",
                     solve_seconds=time.perf_counter() - t0, parent=parent,
                     lower_bound=min(lower, t + p.lam * en)), known


ARRIVAL_ROOTS = 16
"""Tree-aware starts for at most this many roots per edge (those with the least cheap bound)."""


def _arrival_starts(view: EdgeView, ps: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The start trees ps, each with the tree-aware cover toward its root (solvers/tree_start.py); None if memory
    blocks every such cover."""
    from solvers.tree_bound import shortest_paths
    from solvers.tree_start import arrival_placement

    sp = shortest_paths(view)
    roots = np.argmax(ps == np.arange(view.n)[None, :], axis=1)
    if roots.size > ARRIVAL_ROOTS:  # the roots with the least cheap bound (solvers/tree_bound.py)
        t_lb, e_lb = edge_root_bounds(view)
        pick = np.argsort((t_lb + view.problem.lam * e_lb)[roots], kind="stable")[:ARRIVAL_ROOTS]
        roots, ps = roots[pick], ps[pick]
    more = [(arrival_placement(view, int(r), sp), par) for r, par in zip(roots, ps, strict=True)]
    keep = [(x, par) for x, par in more if x is not None]
    if not keep:
        return None
    return np.array([x for x, _ in keep]), np.array([par for _, par in keep])


def _tree_local_search(view: EdgeView, xs: np.ndarray, ps: np.ndarray, rounds: int = 30,
                       starts: int = 4, deadline: float = math.inf) -> tuple[np.ndarray, ...]:
    """Improve the best `starts` starting trees by parent and placement moves (edges of <= 16 devices)."""
    f, e = tree_cost(view, xs, ps)
    lam = view.problem.lam
    order = np.argsort(f + lam * e)
    if view.n > 16:
        return xs[order[:1]], ps[order[:1]]
    out = [_descend(view, xs[j], ps[j], float(f[j] + lam * e[j]), rounds, deadline) for j in order[:starts]]
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


def _descend(view: EdgeView, x: np.ndarray, par: np.ndarray, cur: float, rounds: int,
             deadline: float = math.inf) -> tuple[np.ndarray, ...]:
    """Best-improvement descent from one tree (until no move improves, `rounds` moves, or the deadline)."""
    lam = view.problem.lam
    for _ in range(rounds):
        if now() > deadline:
            break
        cx, cp = [], []
        for i in range(view.n):
            for q in [i] + [int(v) for v in np.flatnonzero(view.rate[i] > 0)]:
                par2 = par.copy()
                if q == i:  # i becomes the root: the old root hangs below its best neighbour
                    old = int(np.flatnonzero(par == np.arange(view.n))[0])
                    nb = np.flatnonzero(view.rate[old] > 0)
                    if old == i or nb.size == 0:
                        continue
                    par2[old] = int(nb[np.argmax(view.rate[old, nb])])
                par2[i] = q
                if is_tree(view.rate, par2, view.problem.relay_capacity):
                    cx.append(x)
                    cp.append(par2)
        for x2 in placement_moves(view, x, None):
            cx.append(x2)
            cp.append(par)
        if not cx:
            break
        xa, pa = np.array(cx), np.array(cp)
        ok = view.feasible(xa)
        xa, pa = xa[ok], pa[ok]
        if len(xa) == 0:
            break
        f, e = tree_cost(view, xa, pa)
        val = f + lam * e
        j = int(np.argmin(val))
        if not val[j] < cur * (1 - 1e-9):
            break
        x, par, cur = xa[j], pa[j], float(val[j])
    return x, par
