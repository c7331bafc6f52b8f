"""Device-to-device cooperation inside a cluster.

- Relaying: a device's update travels over a D2D link to the neighbour the plan chose, which
  uploads it (averaged with its own when ``relay_aggregates``; for the mean rule that is exact).
- Cooperative training: the holders of a module gossip for ``cons_rounds`` steps over the D2D graph,
  then one device per connected group uploads the group's consensus with the group's sample count.
- Cluster aggregation over a D2D tree: every device sends its subtree's average once, up a
  breadth-first spanning tree rooted at the device with the best uplink, which uploads once for the
  whole connected group (the prototype's "D2D to a cluster aggregator", with a chosen aggregator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import connected_components, dijkstra

from hffm.federation.aggregate import ModuleUpdate, weighted_average
from hffm.federation.gossip import gossip_average


@dataclass(frozen=True)
class Route:
    """One device's wireless traffic this round: the modules it sends and the next hop (itself = uplink)."""

    device: int
    modules: tuple[str, ...]
    relay: int


@dataclass(frozen=True)
class Transfer:
    """One D2D transfer carrying some modules' states (gossip, tree aggregation or fetch).

    Transfers with the same ``step`` run at the same time; steps run one after another.
    """

    src: int
    dst: int
    modules: tuple[str, ...]
    step: int = 0


def relay(
    updates: Sequence[ModuleUpdate], relay_of: Mapping[int, int], relay_aggregates: bool
) -> tuple[list[ModuleUpdate], list[Route]]:
    """Route each device's updates through its relay; optionally merge them at the relay."""
    by_device: dict[int, list[ModuleUpdate]] = {}
    for u in updates:
        by_device.setdefault(u.node, []).append(u)
    routes = [
        Route(d, tuple(u.module for u in us), int(relay_of.get(d, d))) for d, us in sorted(by_device.items())
    ]
    if not relay_aggregates:
        return list(updates), routes
    # What each relay carries, averaged into one update per module (the same merge as a tree node's).
    carried: dict[int, list[ModuleUpdate]] = {}
    for u in updates:
        carried.setdefault(int(relay_of.get(u.node, u.node)), []).append(u)
    return [m for uploader, group in sorted(carried.items()) for m in _merge(group, uploader)], routes


def cooperate(
    updates: Sequence[ModuleUpdate], adjacency: np.ndarray, cons_rounds: int
) -> tuple[list[ModuleUpdate], list[Route], list[Transfer]]:
    """Gossip each module among its holders over the D2D graph; one upload per connected group.

    ``adjacency`` is the D2D graph over all devices (links only inside a cluster), so groups never
    span two edges. The uploader of a group is its lowest-numbered device (deterministic).
    """
    by_module: dict[str, list[ModuleUpdate]] = {}
    for u in updates:
        by_module.setdefault(u.module, []).append(u)
    out: list[ModuleUpdate] = []
    carried: dict[tuple[int, int, int], list[str]] = {}
    sent: dict[int, list[str]] = {}
    for module, group in sorted(by_module.items()):
        group = sorted(group, key=lambda u: u.node)
        nodes = np.array([u.node for u in group])
        sub = adjacency[np.ix_(nodes, nodes)]
        n_comp, label = connected_components(sub, directed=False)
        for c in range(n_comp):
            idx = np.flatnonzero(label == c)
            members = [group[i] for i in idx]
            mixed = gossip_average(
                [u.state for u in members], [u.num_samples for u in members], sub[np.ix_(idx, idx)], cons_rounds
            )
            head = members[0].node
            out.append(ModuleUpdate(head, module, mixed[0], sum(u.num_samples for u in members)))
            sent.setdefault(head, []).append(module)
            src, dst = np.nonzero(np.triu(sub[np.ix_(idx, idx)], 1))
            for step in range(cons_rounds):  # each gossip step sends the module both ways on every link
                for a, b in zip(src, dst, strict=True):
                    for x, y in ((members[a].node, members[b].node), (members[b].node, members[a].node)):
                        carried.setdefault((step, x, y), []).append(module)
    transfers = [Transfer(x, y, tuple(ms), step) for (step, x, y), ms in sorted(carried.items())]
    routes = [Route(d, tuple(ms), d) for d, ms in sorted(sent.items())]
    return out, routes, transfers


def tree_aggregate(
    updates: Sequence[ModuleUpdate],
    adjacency: np.ndarray,
    uplink_gain: np.ndarray,
    link_rate: np.ndarray | None = None,
) -> tuple[list[ModuleUpdate], list[Route], list[Transfer]]:
    """Average each connected group's updates up a D2D spanning tree; its root uploads once.

    The root is the group's device with the best uplink gain this round; the tree holds each device's
    fastest path to it (per-bit time 1 / ``link_rate``; fewest hops without rates). Leaves send first; a node
    sends when its children are done, one payload holding the sample-weighted average of every module
    in its subtree. Nested weighted means with summed weights give the group's exact weighted mean, so
    the edge learns what it would from direct uploads (with the mean rule), from one upload a group.
    """
    own: dict[int, list[ModuleUpdate]] = {}
    for u in updates:
        own.setdefault(u.node, []).append(u)
    nodes = np.array(sorted(own))
    if nodes.size == 0:
        return [], [], []
    sub = adjacency[np.ix_(nodes, nodes)]
    n_comp, label = connected_components(sub, directed=False)
    out: list[ModuleUpdate] = []
    routes: list[Route] = []
    transfers: list[Transfer] = []
    for c in range(n_comp):
        idx = np.flatnonzero(label == c)
        root = int(idx[np.argmax(uplink_gain[nodes[idx]])])
        rates = None if link_rate is None else link_rate[np.ix_(nodes, nodes)]
        parent, depth, order = _path_tree(sub, rates, root, idx)
        carried = {int(i): list(own[int(nodes[i])]) for i in idx}
        deepest = max(depth.values())
        for i in reversed(order):  # children before parents
            merged = _merge(carried[i], int(nodes[i]))
            if i == root:
                out += merged
                routes.append(Route(int(nodes[i]), tuple(u.module for u in merged), int(nodes[i])))
            else:
                carried[parent[i]] += merged
                step = deepest - depth[i]
                transfers.append(Transfer(int(nodes[i]), int(nodes[parent[i]]), tuple(u.module for u in merged), step))
    return out, routes, sorted(transfers, key=lambda t: (t.step, t.src))


def _path_tree(
    adj: np.ndarray, rates: np.ndarray | None, root: int, members: np.ndarray
) -> tuple[dict[int, int], dict[int, int], list[int]]:
    """Shortest-path tree to ``root`` over the members (edge cost 1 / rate, or 1 a hop): parent,
    depth in hops, and the nodes ordered by depth."""
    if rates is None:
        cost = np.where(adj, 1.0, 0.0)
    else:
        linked = adj & (rates > 0)
        # Relative to the fastest link: scipy's dense graphs treat tiny weights (~1e-8) as no edge.
        cost = np.where(linked, rates.max(initial=0.0) / np.where(linked, rates, 1.0), 0.0)
    local = cost[np.ix_(members, members)]
    r = int(np.flatnonzero(members == root)[0])
    _, pred = dijkstra(local, directed=False, indices=r, return_predecessors=True)
    parent = {root: root}
    for k, i in enumerate(members):
        if k != r:
            if pred[k] < 0:
                raise ValueError(f"D2D tree: device index {int(i)} cannot reach its group's root {root}")
            parent[int(i)] = int(members[pred[k]])
    depth: dict[int, int] = {}

    def hops(i: int) -> int:
        if i not in depth:
            depth[i] = 0 if i == root else hops(parent[i]) + 1
        return depth[i]

    for i in parent:
        hops(i)
    order = sorted(parent, key=lambda i: (depth[i], i))
    return parent, depth, order


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
    needs: Mapping[int, Sequence[str]], personal: Mapping[int, Mapping[str, object]], adjacency: np.ndarray
) -> dict[int, dict[str, int]]:
    """For each device, the personal modules it lacks that a D2D neighbour has: module -> neighbour.

    A device that never trained a module kept personal (say it just gained a modality) starts from
    a trained neighbour's copy instead of the edge's untrained one. The lowest-numbered neighbour
    holding it is chosen, so every rank decides the same.
    """
    out: dict[int, dict[str, int]] = {}
    for device, modules in sorted(needs.items()):
        have = personal.get(device, {})
        for module in modules:
            if module in have:
                continue
            for j in np.flatnonzero(adjacency[device]):
                if module in personal.get(int(j), {}):
                    out.setdefault(device, {})[module] = int(j)
                    break
    return out
