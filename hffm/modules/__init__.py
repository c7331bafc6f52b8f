"""The modular multi-modal multi-task (M3T) foundation model: module bank, sub-models, training glue."""

from hffm.modules.adapters import AdapterModule, LoRA
from hffm.modules.bank import ModuleBank
from hffm.modules.config import ModelConfig
from hffm.modules.model import M3TModel
from hffm.modules.moe import Expert, moe_forward
from hffm.modules.trunk import Trunk

__all__ = ["AdapterModule", "Expert", "LoRA", "M3TModel", "ModelConfig", "ModuleBank", "Trunk", "moe_forward"]
