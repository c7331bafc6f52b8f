"""The federation engine: tier policy, aggregation rules, D2D, the Fabric round loop, checkpoints.

What a script needs: build a ``World`` (``build_world``), run ``run_federation`` with a
``FederationConfig``, and read each round's ``Plan`` and ``RoundOutcome`` from the result or a logger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hffm.lazy import lazy_getattr

if TYPE_CHECKING:
    from hffm.federation.aggregate import RULES, ModuleUpdate, aggregate_modules, make_rule
    from hffm.federation.config import FederationConfig
    from hffm.federation.d2d_modes import MODES as D2D_MODES
    from hffm.federation.d2d_modes import D2DMode
    from hffm.federation.faults import ATTACKS, FaultsConfig
    from hffm.federation.loop import FederationResult, run_federation
    from hffm.federation.policy import Mode, TierPolicy
    from hffm.federation.records import DeviceResult, FaultRecord, Plan, RoundOutcome, Route, Transfer
    from hffm.federation.state import FederationState
    from hffm.federation.world import World, build_world

# Imported on first use (PEP 562), so importing this package stays cheap: a config error or --help
# does not wait for torch, Lightning or cvxpy.
_LAZY = {
    "RULES": ("hffm.federation.aggregate", "RULES"),
    "ModuleUpdate": ("hffm.federation.aggregate", "ModuleUpdate"),
    "aggregate_modules": ("hffm.federation.aggregate", "aggregate_modules"),
    "make_rule": ("hffm.federation.aggregate", "make_rule"),
    "FederationConfig": ("hffm.federation.config", "FederationConfig"),
    "D2D_MODES": ("hffm.federation.d2d_modes", "MODES"),
    "D2DMode": ("hffm.federation.d2d_modes", "D2DMode"),
    "ATTACKS": ("hffm.federation.faults", "ATTACKS"),
    "FaultsConfig": ("hffm.federation.faults", "FaultsConfig"),
    "FederationResult": ("hffm.federation.loop", "FederationResult"),
    "run_federation": ("hffm.federation.loop", "run_federation"),
    "Mode": ("hffm.federation.policy", "Mode"),
    "TierPolicy": ("hffm.federation.policy", "TierPolicy"),
    "DeviceResult": ("hffm.federation.records", "DeviceResult"),
    "FaultRecord": ("hffm.federation.records", "FaultRecord"),
    "Plan": ("hffm.federation.records", "Plan"),
    "RoundOutcome": ("hffm.federation.records", "RoundOutcome"),
    "Route": ("hffm.federation.records", "Route"),
    "Transfer": ("hffm.federation.records", "Transfer"),
    "FederationState": ("hffm.federation.state", "FederationState"),
    "World": ("hffm.federation.world", "World"),
    "build_world": ("hffm.federation.world", "build_world"),
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "ATTACKS", "D2D_MODES", "RULES", "D2DMode", "DeviceResult", "FaultRecord", "FaultsConfig", "FederationConfig",
    "FederationResult", "FederationState", "Mode", "ModuleUpdate", "Plan", "RoundOutcome", "Route", "TierPolicy",
    "Transfer", "World", "aggregate_modules", "build_world", "make_rule", "run_federation",
]
