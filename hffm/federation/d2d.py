"""Device-to-device cooperation inside a cluster: one mode a round, chosen once by ``federation.d2d``.

- ``none``: every device uploads its own updates.
- ``relay``: a device's update travels over a D2D link to the neighbour the plan chose, which
  uploads it (averaged with its own when ``relay_aggregates``; for the mean rule that is exact).
- ``tree``: every device sends its subtree's average once, up the plan's aggregation tree (by
  default each device's fastest path to the group's best-uplink device), whose root uploads once
  for the whole connected group.
- ``gossip``: the holders of a module gossip for ``cons_rounds`` steps over the D2D graph, then one
  device per connected group uploads the group's consensus with the group's sample count.

Each mode's exchange has one signature, ``mode(updates, links) -> Exchange``; the mode itself (its exchange,
the traffic it predicts, what it adds to a plan) is one record in ``hffm.federation.d2d_modes.MODES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from hffm.federation.aggregate import ModuleUpdate, weighted_average
from hffm.federation.gossip import gossip_average
from hffm.federation.records import Route, Transfer
from hffm.lazy import LazyModule

if TYPE_CHECKING:
    import scipy.sparse as sp
    import scipy.sparse.csgraph as csgraph
else:  # a config error loads the D2D modes' table, not scipy
    sp = LazyModule("scipy.sparse")
    csgraph = LazyModule("scipy.sparse.csgraph")

T = TypeVar("T")
"""What a tree node carries: module updates (aggregation) or module names (planning)."""

__all__ = ["Exchange", "Links", "Route", "Transfer", "aggregation_tree", "direct", "fetch_missing", "gossip_mode",
           "gossip_traffic", "relay_mode", "root_of", "tree_mode", "tree_parents", "tree_traffic"]


@dataclass(frozen=True, eq=False)
class Links:
    """What a D2D mode may use this round: the D2D graph [N, N] (sparse, ``Topology.adjacency``), uplink
    gains [N] and D2D rates [N, N] (sparse, ``ChannelState.rate_matrix()``) of the channel draw, the
    plan's relays and tree (global device ids), and each device's edge. Dense arrays are accepted too."""

    adjacency: sp.csr_array | np.ndarray
    uplink_gain: np.ndarray
    rate: sp.csr_array | np.ndarray | None = None
    relay_of: Mapping[int, int] = field(default_factory=dict)
    parent: Mapping[int, int] = field(default_factory=dict)
    relay_aggregates: bool = True
    cons_rounds: int = 2
    device_edge: np.ndarray | None = None


@dataclass(frozen=True)
class Exchange:
    """A mode's answer: the updates that reach the edge, the routes of the uploads, the D2D transfers."""

    updates: list[ModuleUpdate]
    routes: list[Route]
    transfers: list[Transfer] = field(default_factory=list)


def direct(updates: Sequence[ModuleUpdate], links: Links) -> Exchange:
    """No D2D: each device uploads its own updates."""
    return Exchange(list(updates), _routes_of(updates, {}))


def relay_mode(updates: Sequence[ModuleUpdate], links: Links) -> Exchange:
    updates, routes = relay(updates, links.relay_of, links.relay_aggregates)
    return Exchange(updates, routes)


def tree_mode(updates: Sequence[ModuleUpdate], links: Links) -> Exchange:
    out, routes, transfers = tree_aggregate(updates, links.adjacency, links.uplink_gain, links.rate, links.parent)
    return Exchange(out, routes, transfers)


def gossip_mode(updates: Sequence[ModuleUpdate], links: Links) -> Exchange:
    out, routes, transfers = cooperate(updates, links.adjacency, links.cons_rounds)
    return Exchange(out, routes, transfers)


def _routes_of(updates: Sequence[ModuleUpdate], relay_of: Mapping[int, int]) -> list[Route]:
    by_device: dict[int, list[str]] = {}
    for u in updates:
        by_device.setdefault(u.node, []).append(u.module)
    return [Route(d, tuple(ms), int(relay_of.get(d, d))) for d, ms in sorted(by_device.items())]


def relay(
    updates: Sequence[ModuleUpdate], relay_of: Mapping[int, int], relay_aggregates: bool
) -> tuple[list[ModuleUpdate], list[Route]]:
    """Route each device's updates through its relay; optionally merge them at the relay."""
    routes = _routes_of(updates, relay_of)
    if not relay_aggregates:
        return list(updates), routes
    # What each relay carries, averaged into one update per module (the same merge as a tree node's).
    carried: dict[int, list[ModuleUpdate]] = {}
    for u in updates:
        carried.setdefault(int(relay_of.get(u.node, u.node)), []).append(u)
    return [m for uploader, group in sorted(carried.items()) for m in _merge(group, uploader)], routes


def _block(matrix: sp.csr_array | np.ndarray, ids: Sequence[int] | np.ndarray) -> sp.csr_array:
    """The rows and columns ``ids`` of a graph matrix, sparse (O(entries), never N x N)."""
    index = np.asarray(ids, dtype=np.int64)
    m = matrix if sp.issparse(matrix) else sp.csr_array(np.asarray(matrix))
    return sp.csr_array(m[index][:, index])


def _dense(matrix: sp.csr_array | np.ndarray, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """The rows and columns ``ids`` as a dense array: only for a small group (one cluster at most)."""
    return _block(matrix, ids).toarray()


def gossip_groups(
    holders: Mapping[int, Sequence[str]], adjacency: sp.csr_array | np.ndarray
) -> list[tuple[str, list[int]]]:
    """(module, devices) for each connected group of a module's holders over the D2D graph; the
    first device of a group (the lowest-numbered) uploads its consensus."""
    by_module: dict[str, list[int]] = {}
    for d, modules in holders.items():
        for m in modules:
            by_module.setdefault(m, []).append(int(d))
    groups = []
    for module, nodes in sorted(by_module.items()):
        ids = np.array(sorted(nodes))
        n_comp, label = csgraph.connected_components(_block(adjacency, ids), directed=False)
        groups += [(module, [int(i) for i in ids[label == c]]) for c in range(n_comp)]
    return groups


def gossip_traffic(
    holders: Mapping[int, Sequence[str]], adjacency: sp.csr_array | np.ndarray, cons_rounds: int
) -> tuple[list[Route], list[Transfer]]:
    """The routes and transfers of gossip: every step sends each module both ways on every link among
    its group; each group's first device uploads the module."""
    carried: dict[tuple[int, int, int], list[str]] = {}
    sent: dict[int, list[str]] = {}
    for module, members in gossip_groups(holders, adjacency):
        sent.setdefault(members[0], []).append(module)
        src, dst = np.nonzero(np.triu(_dense(adjacency, members), 1))
        for step in range(cons_rounds):
            for a, b in zip(src, dst, strict=True):
                for x, y in ((members[a], members[b]), (members[b], members[a])):
                    carried.setdefault((step, x, y), []).append(module)
    transfers = [Transfer(x, y, tuple(ms), step, "gossip") for (step, x, y), ms in sorted(carried.items())]
    return [Route(d, tuple(ms), d) for d, ms in sorted(sent.items())], transfers


def cooperate(
    updates: Sequence[ModuleUpdate], adjacency: sp.csr_array | np.ndarray, cons_rounds: int
) -> tuple[list[ModuleUpdate], list[Route], list[Transfer]]:
    """Gossip each module among its holders over the D2D graph; one upload per connected group.

    ``adjacency`` is the D2D graph over all devices (links only inside a cluster), so groups never
    span two edges.
    """
    held = {(u.node, u.module): u for u in updates}
    holders: dict[int, list[str]] = {}
    for u in updates:
        holders.setdefault(u.node, []).append(u.module)
    out: list[ModuleUpdate] = []
    for module, nodes in gossip_groups(holders, adjacency):
        members = [held[(d, module)] for d in nodes]
        mixed = gossip_average(
            [u.state for u in members], [u.num_samples for u in members], _dense(adjacency, nodes), cons_rounds
        )
        out.append(ModuleUpdate(nodes[0], module, mixed[0], sum(u.num_samples for u in members)))
    routes, transfers = gossip_traffic(holders, adjacency, cons_rounds)
    return out, routes, transfers


def tree_parents(
    nodes: Sequence[int],
    adjacency: sp.csr_array | np.ndarray,
    uplink_gain: np.ndarray,
    link_rate: sp.csr_array | np.ndarray | None = None,
) -> dict[int, int]:
    """The default aggregation tree over ``nodes``: in each connected group, each device's fastest path
    (per-bit time 1 / ``link_rate``; fewest hops without rates) to the group's best-uplink device.
    Returns device -> parent (the root is its own parent)."""
    ids = np.array(sorted(int(d) for d in nodes))
    if ids.size == 0:
        return {}
    sub = _block(adjacency, ids)
    rates = None if link_rate is None else _block(link_rate, ids)
    # Costs relative to the fastest link among all the nodes (one scale for every group).
    fastest = 0.0 if rates is None else float(rates.data.max(initial=0.0))
    n_comp, label = csgraph.connected_components(sub, directed=False)
    parent: dict[int, int] = {}
    for c in range(n_comp):
        idx = np.flatnonzero(label == c)
        if idx.size == 1:  # a device with no linked peer among the nodes is its own root
            parent[int(ids[idx[0]])] = int(ids[idx[0]])
            continue
        root = int(np.argmax(uplink_gain[ids[idx]]))
        group_rates = None if rates is None else _dense(rates, idx)
        local = _path_tree(_dense(sub, idx), group_rates, fastest, root)
        parent |= {int(ids[idx[i]]): int(ids[idx[p]]) for i, p in local.items()}
    return parent


def tree_traffic(holders: Mapping[int, Sequence[str]], parent: Mapping[int, int]) -> tuple[list[Route], list[Transfer]]:
    """The routes and transfers of a tree aggregation where device d holds ``holders[d]``: each node
    sends the union of its subtree's modules once; each root uploads its group's union."""
    own = {d: [(m,) for m in ms] for d, ms in holders.items() if ms}
    at_root, sent = _fold_tree(own, _tree_for(list(own), parent), lambda xs, node: sorted(set(xs)))
    routes = [Route(r, tuple(m for (m,) in xs), r) for r, xs in sorted(at_root.items())]
    return routes, [Transfer(s, d, tuple(m for (m,) in xs), step) for s, d, step, xs in sent]


def tree_aggregate(
    updates: Sequence[ModuleUpdate],
    adjacency: sp.csr_array | np.ndarray,
    uplink_gain: np.ndarray,
    link_rate: sp.csr_array | np.ndarray | None = None,
    parent: Mapping[int, int] | None = None,
) -> tuple[list[ModuleUpdate], list[Route], list[Transfer]]:
    """Average each connected group's updates up an aggregation tree; its root uploads once.

    The tree is ``parent`` (the plan's) when it holds every device that has updates, else
    ``tree_parents``'s default. Leaves send first; a node sends when its children are done, one
    payload holding the sample-weighted average of every module in its subtree. Nested weighted
    means with summed weights give the group's exact weighted mean, so the edge learns what it would
    from direct uploads (with the mean rule), from one upload a group.
    """
    own: dict[int, list[ModuleUpdate]] = {}
    for u in updates:
        own.setdefault(u.node, []).append(u)
    if not own:
        return [], [], []
    tree = aggregation_tree(list(own), parent, adjacency, uplink_gain, link_rate)
    at_root, sent = _fold_tree(own, tree, _merge)
    out = [u for _, us in sorted(at_root.items()) for u in us]
    routes = [Route(r, tuple(u.module for u in us), r) for r, us in sorted(at_root.items())]
    transfers = [Transfer(s, d, tuple(u.module for u in us), step) for s, d, step, us in sent]
    return out, routes, transfers


def aggregation_tree(
    nodes: Sequence[int],
    parent: Mapping[int, int] | None,
    adjacency: sp.csr_array | np.ndarray,
    uplink_gain: np.ndarray,
    link_rate: sp.csr_array | np.ndarray | None = None,
) -> dict[int, int]:
    """The tree a tree round runs over ``nodes``: the plan's ``parent`` (on the paths from ``nodes`` to
    their roots) when it holds them all, else the default ``tree_parents``. Both the aggregation and any
    timeline that predicts it (a deadline) ask here, so they use the same tree."""
    if parent is not None and _spans(parent, dict.fromkeys(nodes)):
        return _paths_to_roots(parent, nodes)
    return tree_parents(list(nodes), adjacency, uplink_gain, link_rate)


def root_of(parent: Mapping[int, int], d: int) -> int:
    """The root (uploader) of device ``d`` in the forest ``parent``."""
    while parent[d] != d:
        d = parent[d]
    return d


def _spans(parent: Mapping[int, int], nodes: Mapping[int, object]) -> bool:
    """``parent`` is a forest (every parent is in it, no cycle) that holds every one of ``nodes``; its
    other devices (planned, but with nothing of their own to send) only forward what their children send."""
    if not set(nodes) <= set(parent) or any(p not in parent for p in parent.values()):
        return False
    for d in parent:
        seen = {d}
        while parent[d] != d:
            d = parent[d]
            if d in seen:
                return False
            seen.add(d)
    return True


def _tree_for(nodes: list[int], parent: Mapping[int, int]) -> dict[int, int]:
    if not _spans(parent, dict.fromkeys(nodes)):
        raise ValueError(f"tree: the parent map {dict(parent)} does not span the devices {sorted(nodes)}")
    return _paths_to_roots(parent, nodes)


def _paths_to_roots(parent: Mapping[int, int], nodes: Iterable[int]) -> dict[int, int]:
    """The part of the forest ``parent`` on the paths from ``nodes`` to their roots."""
    keep: dict[int, int] = {}
    for d in nodes:
        while d not in keep:
            keep[d] = parent[d]
            d = parent[d]
    return keep


def _fold_tree(
    own: Mapping[int, list[T]], parent: Mapping[int, int], merge: Callable[[list[T], int], list[T]]
) -> tuple[dict[int, list[T]], list[tuple[int, int, int, list[T]]]]:
    """Children before parents: each node merges what it carries (``merge(items, node)``) and sends it
    to its parent, in step ``deepest - depth`` of its group; returns (root -> merged items, sends)."""
    depth: dict[int, int] = {}

    def hops(i: int) -> int:
        if i not in depth:
            depth[i] = 0 if parent[i] == i else hops(parent[i]) + 1
        return depth[i]

    for i in parent:
        hops(i)
    deepest: dict[int, int] = {}
    for i in parent:
        r = root_of(parent, i)
        deepest[r] = max(deepest.get(r, 0), depth[i])
    carried = {i: list(own.get(i, [])) for i in parent}
    at_root, sent = {}, []
    for i in sorted(parent, key=lambda i: (-depth[i], i)):
        merged = merge(carried[i], i)
        if parent[i] == i:
            at_root[i] = merged
        else:
            carried[parent[i]] += merged
            sent.append((i, parent[i], deepest[root_of(parent, i)] - depth[i], merged))
    return at_root, sorted(sent, key=lambda x: (x[2], x[0]))


def _path_tree(adj: np.ndarray, rates: np.ndarray | None, fastest: float, root: int) -> dict[int, int]:
    """Shortest-path tree to ``root`` over one connected group (dense, group-local indices; edge cost
    fastest / rate, or 1 a hop): local parents."""
    if rates is None:
        cost = np.where(adj, 1.0, 0.0)
    else:
        linked = (adj != 0) & (rates > 0)
        # Relative to the fastest link: scipy's dense graphs treat tiny weights (~1e-8) as no edge.
        cost = np.where(linked, fastest / np.where(linked, rates, 1.0), 0.0)
    _, pred = csgraph.dijkstra(cost, directed=False, indices=root, return_predecessors=True)
    parent = {root: root}
    for k in range(adj.shape[0]):
        if k != root:
            if pred[k] < 0:
                raise ValueError(f"D2D tree: device index {k} cannot reach its group's root {root}")
            parent[k] = int(pred[k])
    return parent


def _merge(updates: list[ModuleUpdate], node: int) -> list[ModuleUpdate]:
    """One update per module: the sample-weighted mean of those carried, with their summed weight."""
    by_module: dict[str, list[ModuleUpdate]] = {}
    for u in updates:
        by_module.setdefault(u.module, []).append(u)
    merged = []
    for module, group in sorted(by_module.items()):
        group = sorted(group, key=lambda u: u.node)
        state = group[0].state if len(group) == 1 else weighted_average([(u.state, u.num_samples) for u in group])
        merged.append(ModuleUpdate(node, module, state, sum(u.num_samples for u in group)))
    return merged


def fetch_missing(
    needs: Mapping[int, Sequence[str]],
    personal: Mapping[int, Mapping[str, object]],
    adjacency: sp.csr_array | np.ndarray,
) -> dict[int, dict[str, int]]:
    """For each device, the personal modules it lacks that a D2D neighbour has: module -> neighbour.

    A device that never trained a module kept personal (say it just gained a modality) starts from
    a trained neighbour's copy instead of the edge's untrained one. The lowest-numbered neighbour
    holding it is chosen, so every rank decides the same.
    """
    graph = adjacency if sp.issparse(adjacency) else sp.csr_array(np.asarray(adjacency))
    out: dict[int, dict[str, int]] = {}
    for device, modules in sorted(needs.items()):
        have = personal.get(device, {})
        for module in modules:
            if module in have:
                continue
            for j in np.sort(graph[[device]].nonzero()[1]):
                if module in personal.get(int(j), {}):
                    out.setdefault(device, {})[module] = int(j)
                    break
    return out
