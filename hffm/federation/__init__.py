"""The federation engine: tier policy, aggregation rules, D2D, the Fabric round loop, checkpoints.

What a script needs: build a ``World`` (``build_world``), run ``run_federation`` with a
``FederationConfig``, and read each round's ``Plan`` and ``RoundOutcome`` from the result or a logger.
"""

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

__all__ = [
    "ATTACKS", "D2D_MODES", "RULES", "D2DMode", "DeviceResult", "FaultRecord", "FaultsConfig", "FederationConfig",
    "FederationResult", "FederationState", "Mode", "ModuleUpdate", "Plan", "RoundOutcome", "Route", "TierPolicy",
    "Transfer", "World", "aggregate_modules", "build_world", "make_rule", "run_federation",
]
