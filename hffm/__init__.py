"""hffm: hierarchical federated foundation models.

A script composes a config as ``hffm-train`` would, builds the world and runs the federation::

    import hffm

    cfg = hffm.compose("experiment=demo", "federation.d2d=tree", "solver=joint", "federation.rounds=2")
    world = hffm.make_world(cfg)
    result = hffm.run_federation(hffm.make_fabric(cfg), world, cfg)  # federation, solver, faults and seed
    print(result.history[-1]["accuracy"], result.last_outcome.relay_links())
"""

from hffm.openmp import prefer_passive_wait

prefer_passive_wait()  # before anything imports torch: libgomp reads the policy when torch loads it

from hffm.config import Config, compose, network_config, resolve  # noqa: E402
from hffm.federation import (  # noqa: E402
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
from hffm.run import make_fabric, make_world, train  # noqa: E402

__all__ = [
    "Config", "D2DMode", "FederationConfig", "FederationResult", "Plan", "RoundOutcome", "TierPolicy", "World",
    "build_world", "compose", "make_fabric", "make_world", "network_config", "resolve", "run_federation", "train",
]
