"""Where `joint` calls the round's cvxpy model on power / frequency rounds (solvers/model.py with
solvers/model_powerfreq.py) and on trees (solvers/model_tree.py): one record of what the model costs there.

The model certifies small rounds far better than `joint`'s own bounds when it has the time, and is useless when it
has not (one MILP of an 8-device power / frequency round takes 8-11 CPU s and bounds 42-64 % below the plan). So
`model_seconds` estimates the CPU seconds it needs to certify `joint`'s plan from the round's size (measured,
`ModelCost`), and gives it a share of the time left only where that estimate fits: never at the default 2 s limit;
trees of up to 6 devices from about 5 s, power / frequency rounds of up to 4 devices from about 11 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from solvers.instance import RoundProblem


@dataclass(frozen=True)
class ModelCost:
    """CPU seconds the model takes to certify `joint`'s plan (compilation included; from the measurements below) on
    a round of `devices` devices, and the factor per device more; never above `max_devices`."""

    devices: int
    seconds: float
    growth: float
    max_devices: int

    def estimate(self, n: int) -> float:
        return self.seconds * self.growth ** (n - self.devices) if n <= self.max_devices else math.inf


POWER_FREQUENCY = ModelCost(devices=4, seconds=4.9, growth=3.0, max_devices=5)
"""Power and frequency at lambda > 0 (experiments/solver_model_modes.py --budget 10, 6 modules, seed 0, load 2-6):
4 devices 3.6-5.5 CPU s (2-3 MILPs, to within 0.03 %); 6 devices one MILP 7.6-10.6 s, bound 52-65 % below."""
TREES = ModelCost(devices=6, seconds=1.0, growth=2.0, max_devices=6)
"""Trees (same run): 4 devices 0.05-0.2 s; 6 devices 0.12 / 0.69 / 3.45 s, each to within 0.22 % where `joint`'s
2 s plan was 0.1-6.8 %: 1 s (between the median and the worst). 8 devices 2.65 s at lambda 0.05 (0.25 % where
`joint` at 2 s had 11 %), past 7 s and 26-43 % at lambda 0.5 / 5; given 5 s of a 20 s round there it left one of 6
bench rounds 1.2 % worse (its time taken from the per-root MILPs) and improved none, which certify them alone at
20 s (experiments/results/solver_model/m24/NOTES.md): so none above 6 devices."""
MODEL_SHARE = 0.5
"""The most of the time left the model may take (the rest: joint's own bound and search, which it only adds to)."""
MIN_SECONDS = 1.0
"""The model gets more than this or nothing (so never at the default 2 s limit): below it compiling (0.1-0.3 s) and
HiGHS's root leave it nothing (6 devices given 0.5 s of a 2 s round: 7.7 % certified where joint alone had 6.8 %)."""
MAX_MODULES = 8


def model_seconds(problem: RoundProblem, left_s: float) -> float:
    """Seconds of the `left_s` left in the round to give the cvxpy model (0: it does not pay): MODEL_SHARE of it
    where the round's estimated cost fits that share and it is more than MIN_SECONDS. Power and frequency at lambda = 0
    never (the max-power plan and its bound are the answer), one-hop rounds at fixed power never (solvers/improve.py
    decides those)."""
    p = problem
    if p.tree_aggregation:
        cost = TREES
    elif p.has_power_frequency and p.lam > 0:
        cost = POWER_FREQUENCY
    else:
        return 0.0
    if p.num_modules > MAX_MODULES or not math.isfinite(left_s) or left_s <= 0:
        return 0.0
    give = MODEL_SHARE * left_s
    return give if give > MIN_SECONDS and cost.estimate(p.num_devices) <= give else 0.0
