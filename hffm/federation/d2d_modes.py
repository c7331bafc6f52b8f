"""The D2D modes, each one record holding every facet a round needs of it, chosen once by ``federation.d2d``.

A mode says how it runs (``exchange``), what traffic it predicts from a plan (``predict``: the deadline's
timeline and the uplink band planning read it), what it adds to the solver's plan (``complete_plan``) and what
the solver is offered (``solver_links``, ``solver_tree``, ``plans_power_frequency``). No other file compares
``federation.d2d`` to a name: they look the record up in ``MODES`` and use its facets.

A new mode is one record: write its facets (reuse the ones below) and add it with ``register``; then
``federation.d2d=<name>`` runs, plans, predicts and times it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from hffm.federation import d2d
from hffm.federation.aggregate import ModuleUpdate
from hffm.federation.d2d import Exchange, Links
from hffm.federation.records import Plan, Route, Transfer

Holders = Mapping[int, Sequence[str]]
"""Device -> the shared modules it sends this round."""


@dataclass(frozen=True)
class Prediction:
    """A mode's traffic for a plan: the uploads, the D2D transfers, and for each holder the devices whose
    uploads carry its update (its update has reached the edge when the last of them has)."""

    routes: list[Route]
    transfers: list[Transfer]
    carriers: dict[int, tuple[int, ...]]


class PlanningRound(Protocol):
    """What ``complete_plan`` may ask of the round being planned (``hffm.federation.planning``)."""

    def default_tree(self, plan: Plan) -> dict[int, int]:
        """The default aggregation tree over the plan's holders (``d2d.tree_parents``)."""
        ...

    def uploader_band(self, plan: Plan) -> Plan:
        """The plan with its uplink band re-planned for the devices that really upload, when they are ready."""
        ...


@dataclass(frozen=True)
class D2DMode:
    name: str
    exchange: Callable[[Sequence[ModuleUpdate], Links], Exchange]
    """Run it on one cluster's updates: what reaches the edge, over which routes and D2D transfers."""
    predict: Callable[[Holders, Links], Prediction]
    """The traffic it would cause if device d sends ``holders[d]`` under the plan in ``links``."""
    complete_plan: Callable[[Plan, PlanningRound], Plan]
    """What the round adds to the (solver's or default) plan: a default tree, a band for the real uploaders."""
    uses_links: bool
    """Devices talk over D2D links: needs edge rounds (not star / local); ``d2d_fetch`` needs it."""
    solver_links: bool = False
    """The solver is offered the D2D links (one-hop relays, or with ``solver_tree`` aggregation trees)."""
    solver_tree: bool = False
    """The solver plans each edge's aggregation tree (``RoundProblem.tree_aggregation``)."""
    plans_power_frequency: bool = False
    """Planned uplink power and CPU frequency apply: the solver's one-hop timeline is the round's."""


def _direct_routes(holders: Holders, relay_of: Mapping[int, int]) -> Prediction:
    routes = [Route(d, tuple(ms), int(relay_of.get(d, d))) for d, ms in sorted(holders.items())]
    return Prediction(routes, [], {d: (int(relay_of.get(d, d)),) for d in holders})


def predict_direct(holders: Holders, links: Links) -> Prediction:
    return _direct_routes(holders, {})


def predict_relay(holders: Holders, links: Links) -> Prediction:
    return _direct_routes(holders, links.relay_of)


def predict_tree(holders: Holders, links: Links) -> Prediction:
    parent = d2d.aggregation_tree(list(holders), links.parent or None, links.adjacency, links.uplink_gain, links.rate)
    routes, transfers = d2d.tree_traffic(holders, parent)
    return Prediction(routes, transfers, {d: (d2d.root_of(parent, d),) for d in holders})


def predict_gossip(holders: Holders, links: Links) -> Prediction:
    """A holder's update is in the consensus its group uploads; it counts as arrived when its cluster's last
    upload has ended (groups never span clusters)."""
    routes, transfers = d2d.gossip_traffic(holders, links.adjacency, links.cons_rounds)
    if links.device_edge is None:
        raise ValueError("gossip prediction needs Links.device_edge (each device's edge)")
    by_edge: dict[int, list[int]] = {}
    for r in routes:
        by_edge.setdefault(int(links.device_edge[r.device]), []).append(r.device)
    return Prediction(routes, transfers, {d: tuple(by_edge.get(int(links.device_edge[d]), ())) for d in holders})


def as_planned(plan: Plan, round_: PlanningRound) -> Plan:
    return plan


def tree_completion(plan: Plan, round_: PlanningRound) -> Plan:
    """The solver's tree when it chose one; else the default tree, with the band given to its roots."""
    if plan.parent:
        return plan
    plan = dataclasses.replace(plan, parent=round_.default_tree(plan))
    return round_.uploader_band(plan) if plan.bandwidth_hz is not None else plan


def uploader_band(plan: Plan, round_: PlanningRound) -> Plan:
    return round_.uploader_band(plan) if plan.bandwidth_hz is not None else plan


MODES: dict[str, D2DMode] = {}


def register(mode: D2DMode) -> D2DMode:
    """Add a mode to ``MODES`` (``federation.d2d=<mode.name>``); a name is registered once."""
    if mode.name in MODES:
        raise ValueError(f"D2D mode {mode.name!r} is already registered; modes: {sorted(MODES)}")
    MODES[mode.name] = mode
    return mode


register(D2DMode("none", d2d.direct, predict_direct, as_planned, uses_links=False, plans_power_frequency=True))
register(D2DMode("relay", d2d.relay_mode, predict_relay, as_planned, uses_links=True, solver_links=True,
                 plans_power_frequency=True))
register(D2DMode("tree", d2d.tree_mode, predict_tree, tree_completion, uses_links=True, solver_links=True,
                 solver_tree=True))
register(D2DMode("gossip", d2d.gossip_mode, predict_gossip, uploader_band, uses_links=True))


def mode_of(name: str) -> D2DMode:
    """The record of ``federation.d2d=name``, or an error naming the registered modes."""
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"federation.d2d={name!r}: choose one of {sorted(MODES)}") from None
