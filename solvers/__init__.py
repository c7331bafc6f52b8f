"""Per-round joint optimization of module placement, D2D relays or aggregation trees, uplink bandwidth, and
optionally uplink power and CPU frequency, for latency + lambda x energy (numpy + cvxpy).

Plain arrays and JSON in, a plan out; this package never imports hffm. Entry point: `solve`; the method names
are `METHODS` (import them rather than copying the list).
"""

from solvers.api import METHODS, fallback_plan, solve
from solvers.check import check_plan
from solvers.evaluate import evaluate
from solvers.generate import random_instance
from solvers.instance import RoundProblem
from solvers.level_model import MESSAGE as LEVEL_MODEL_MESSAGE
from solvers.model_cache import ModelCache
from solvers.plan import RoundPlan

__all__ = ["LEVEL_MODEL_MESSAGE", "METHODS", "ModelCache", "RoundPlan", "RoundProblem", "check_plan", "evaluate",
           "fallback_plan", "random_instance", "solve"]
