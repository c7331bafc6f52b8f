"""The modular multi-modal multi-task (M3T) foundation model: module bank, sub-models, training glue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hffm.lazy import lazy_getattr

if TYPE_CHECKING:
    from hffm.modules.adapters import AdapterModule, LoRA
    from hffm.modules.bank import ModuleBank
    from hffm.modules.config import ModelConfig
    from hffm.modules.model import M3TModel
    from hffm.modules.moe import Expert, moe_forward
    from hffm.modules.trunk import Trunk

# Imported on first use (PEP 562), so importing this package stays cheap: a config error or --help
# does not wait for torch, Lightning or cvxpy.
_LAZY = {
    "AdapterModule": ("hffm.modules.adapters", "AdapterModule"),
    "LoRA": ("hffm.modules.adapters", "LoRA"),
    "ModuleBank": ("hffm.modules.bank", "ModuleBank"),
    "ModelConfig": ("hffm.modules.config", "ModelConfig"),
    "M3TModel": ("hffm.modules.model", "M3TModel"),
    "Expert": ("hffm.modules.moe", "Expert"),
    "moe_forward": ("hffm.modules.moe", "moe_forward"),
    "Trunk": ("hffm.modules.trunk", "Trunk"),
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = ["AdapterModule", "Expert", "LoRA", "M3TModel", "ModelConfig", "ModuleBank", "Trunk", "moe_forward"]
