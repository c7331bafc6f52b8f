"""Per-round joint optimization of module placement, D2D relays and uplink bandwidth (numpy + cvxpy).

Plain arrays and JSON in, a plan out; this package never imports hffm. Entry point: `solve`.
"""

from solvers.api import METHODS, fallback_plan, solve
from solvers.check import check_plan
from solvers.evaluate import evaluate
from solvers.generate import random_instance
from solvers.instance import RoundProblem
from solvers.plan import RoundPlan

__all__ = ["METHODS", "RoundPlan", "RoundProblem", "check_plan", "evaluate", "fallback_plan", "random_instance",
           "solve"]
