"""Device-to-device cooperation inside a cluster.

- Relaying: a device's update travels over a D2D link to the neighbour the plan chose, which
  uploads it (averaged with its own when ``relay_aggregates``; for the mean rule that is exact).
- Cooperative training: the holders of a module gossip for ``cons_rounds`` steps over the D2D graph,
  then one device per connected group uploads the group's consensus with the group's sample count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import connected_components

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
    """A D2D transfer of one module's state (gossip or fetch)."""

    src: int
    dst: int
    module: str
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
    # Group what each relay carries by module and average it into one update per module.
    carried: dict[tuple[int, str], list[ModuleUpdate]] = {}
    for u in updates:
        carried.setdefault((int(relay_of.get(u.node, u.node)), u.module), []).append(u)
    merged = []
    for (uploader, module), group in sorted(carried.items()):
        if len(group) == 1:
            merged.append(ModuleUpdate(uploader, module, group[0].state, group[0].num_samples))
            continue
        group = sorted(group, key=lambda u: u.node)
        state = weighted_average([(u.state, u.num_samples) for u in group])
        merged.append(ModuleUpdate(uploader, module, state, sum(u.num_samples for u in group)))
    return merged, routes


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
    transfers: list[Transfer] = []
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
                    transfers.append(Transfer(members[a].node, members[b].node, module, step))
                    transfers.append(Transfer(members[b].node, members[a].node, module, step))
    routes = [Route(d, tuple(ms), d) for d, ms in sorted(sent.items())]
    return out, routes, transfers


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
