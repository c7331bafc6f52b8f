"""hffm: hierarchical federated foundation models.

A script composes a config as ``hffm-train`` would, builds the world and runs the federation::

    import hffm

    cfg = hffm.compose("experiment=demo", "federation.d2d=tree", "solver=joint", "federation.rounds=2")
    world = hffm.make_world(cfg)
    result = hffm.run_federation(hffm.make_fabric(cfg), world, cfg)  # federation, solver, faults and seed
    print(result.history[-1]["accuracy"], result.last_outcome.relay_links())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hffm.lazy import lazy_getattr
from hffm.openmp import prefer_passive_wait

prefer_passive_wait()  # before anything imports torch: libgomp reads the policy when torch loads it

if TYPE_CHECKING:
    from hffm.config import Config, compose, network_config, resolve
    from hffm.federation import (
        D2DMode,
        FederationConfig,
        FederationResult,
        Plan,
        RoundOutcome,
        TierPolicy,
        World,
        build_world,
        run_federation,
    )
    from hffm.run import make_fabric, make_world, train

# Imported on first use (PEP 562), so importing this package stays cheap: a config error or --help
# does not wait for torch, Lightning or cvxpy.
_LAZY = {
    "Config": ("hffm.config", "Config"),
    "compose": ("hffm.config", "compose"),
    "network_config": ("hffm.config", "network_config"),
    "resolve": ("hffm.config", "resolve"),
    "D2DMode": ("hffm.federation", "D2DMode"),
    "FederationConfig": ("hffm.federation", "FederationConfig"),
    "FederationResult": ("hffm.federation", "FederationResult"),
    "Plan": ("hffm.federation", "Plan"),
    "RoundOutcome": ("hffm.federation", "RoundOutcome"),
    "TierPolicy": ("hffm.federation", "TierPolicy"),
    "World": ("hffm.federation", "World"),
    "build_world": ("hffm.federation", "build_world"),
    "run_federation": ("hffm.federation", "run_federation"),
    "make_fabric": ("hffm.run", "make_fabric"),
    "make_world": ("hffm.run", "make_world"),
    "train": ("hffm.run", "train"),
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "Config", "D2DMode", "FederationConfig", "FederationResult", "Plan", "RoundOutcome", "TierPolicy", "World",
    "build_world", "compose", "make_fabric", "make_world", "network_config", "resolve", "run_federation", "train",
]
