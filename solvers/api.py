"""`solve`: the one entry point of the training loop, and `METHODS`: the one table of methods.

Each method is one `Method` record saying what it plans (one-hop relays always; aggregation trees; uplink power
and CPU frequency) and which options it takes. `solve` reads the record and nothing else: a method asked for
something it cannot plan is refused (ValueError naming the method and what to choose), never replaced by another.

A failed solve never raises: a solver error or a plan the checker rejects returns a feasible fallback plan (equal
bandwidth, direct uploads, the greedy minimal cover) with `fallback=True`, `status`, `message` saying why, and
one warning logged. An instance no plan can satisfy (coverage beyond the memories, a cluster the D2D graph does not
connect in tree mode, a relay capacity no tree meets) gives status "infeasible" and a plan whose latency, energy and
objective are NaN (null in JSON): its choices are a best effort, not a plan of the instance. A malformed problem or
an unknown method or option raises ValueError.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from solvers.baselines import equal_plan, equal_share_plan, full_placement, greedy_plan, random_plan
from solvers.check import check_plan
from solvers.clock import Clock, under_budget
from solvers.errors import CoverageError, InfeasibleError, TooLargeError
from solvers.exact import exact_solve
from solvers.fields import check_budget, check_limits
from solvers.greedy import Repairs, greedy_placement
from solvers.instance import RoundProblem
from solvers.joint import joint_solve
from solvers.model_cache import check_cache
from solvers.parallel import resolve_workers
from solvers.plan import RoundPlan
from solvers.tree import tree_exact
from solvers.tree_improve import tree_joint
from solvers.tree_rules import tree_equal_plan, tree_greedy_plan, tree_random_plan, tree_rule_plan

log = logging.getLogger("solvers")


@dataclass(frozen=True)
class Method:
    """One planning method: what it can plan and which keyword options each of its entry points takes."""

    name: str
    solve: Callable[..., RoundPlan]
    """Plans one-hop instances (placement, relays, bandwidth)."""
    options: frozenset[str]
    """Keywords `solve` takes (e.g. `workers` for joint)."""
    tree: Callable[..., RoundPlan] | None = None
    """Plans instances with `tree_aggregation` (placement, tree, root); None: such instances are refused."""
    tree_options: frozenset[str] = frozenset()
    """Keywords `tree` takes."""
    power_frequency: bool = False
    """Plans uplink power and CPU frequency when the instance makes them decisions (p_max, f_min, f_max);
    otherwise such instances are refused (one-hop only: no method plans them on trees)."""

    @property
    def trees(self) -> bool:
        """Whether the method plans aggregation trees."""
        return self.tree is not None

    def options_for(self, problem: RoundProblem) -> frozenset[str]:
        """The options the entry point for this instance takes."""
        return self.tree_options if problem.tree_aggregation else self.options

    def refusal(self, problem: RoundProblem) -> str | None:
        """Why this method cannot plan `problem` (naming what to choose instead), or None."""
        if problem.tree_aggregation:
            if problem.has_power_frequency:
                return ("tree_aggregation with p_max / f_min / f_max: no method plans uplink power and CPU frequency "
                        "on aggregation trees; drop those device fields or tree_aggregation")
            if not self.trees:
                return (f"method {self.name!r} does not plan aggregation trees (tree_aggregation); choose one of "
                        f"{tree_methods()}")
        elif problem.has_power_frequency and not self.power_frequency:
            return (f"method {self.name!r} keeps uplink power and CPU frequency fixed, but the instance makes them "
                    f"decisions (p_max / f_min / f_max); choose one of {power_frequency_methods()}, or drop those "
                    "device fields")
        return None


_JOINT = frozenset({"iterations", "local_max_devices", "local_rounds", "bandwidth", "time_budget_s", "enum_max",
                    "bound", "workers", "time_limit_s", "gap", "cache", "budget"})

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("joint", joint_solve, _JOINT, tree=tree_joint,
           tree_options=frozenset({"enum_max", "workers", "time_limit_s", "gap", "budget", "cache"}),
           power_frequency=True),
    Method("greedy", greedy_plan, frozenset(), tree=tree_greedy_plan),
    Method("equal", equal_plan, frozenset(), tree=tree_equal_plan),
    Method("random", random_plan, frozenset({"seed"}), tree=tree_random_plan, tree_options=frozenset({"seed"})),
    Method("exact", exact_solve, frozenset({"max_candidates", "chunk"}), tree=tree_exact,
           tree_options=frozenset({"enum_max"})),
)}
"""Every method by name: the one place a method's capabilities and options are declared."""


def tree_methods() -> list[str]:
    return [m.name for m in METHODS.values() if m.trees]


def power_frequency_methods() -> list[str]:
    return [m.name for m in METHODS.values() if m.power_frequency]


def solve(problem: RoundProblem, method: str = "joint", **opts: object) -> RoundPlan:
    """Plan one round with `method` (a name in METHODS); opts go to that method's entry point for the instance."""
    if not isinstance(problem, RoundProblem):
        raise ValueError(f"problem: expected a RoundProblem, got {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; choose one of {sorted(METHODS)}")
    m = METHODS[method]
    why = m.refusal(problem)
    if why:
        raise ValueError(why)
    allowed = m.options_for(problem)
    unknown = sorted(set(opts) - allowed)
    if unknown:
        mode = "aggregation-tree" if problem.tree_aggregation else "one-hop"
        raise ValueError(f"opts: method {method!r} takes no option {', '.join(map(repr, unknown))} on {mode} "
                         f"instances (it takes {sorted(allowed) or 'none'})")
    if "workers" in opts:  # a malformed option raises (no fallback), like an unknown one
        resolve_workers(problem, opts["workers"])  # type: ignore[arg-type]
    if "time_limit_s" in opts or "gap" in opts:  # the same for the model's limits
        check_limits(opts.get("time_limit_s", 0.0), opts.get("gap", 0.0))  # type: ignore[arg-type]
    if "budget" in opts:
        check_budget(opts["budget"])  # type: ignore[arg-type]
    if "cache" in opts:
        check_cache(opts["cache"])
    fn = m.tree if problem.tree_aggregation else m.solve
    assert fn is not None  # refusal() checked it
    t0 = time.perf_counter()
    with under_budget(str(opts.get("budget", "time"))):  # the fallback's repairs count on the solve's budget too
        return _planned(problem, method, fn, opts, t0)


def _planned(problem: RoundProblem, method: str, fn: Callable[..., RoundPlan], opts: dict[str, object],
             t0: float) -> RoundPlan:
    """fn's checked plan, or the fallback plan (solve's failure handling)."""
    try:
        plan = fn(problem, **opts)
        bad = check_plan(problem, plan, rtol=1e-6)
        if bad:
            raise RuntimeError(f"plan failed the feasibility check: {'; '.join(bad[:3])}")
        return plan
    except Exception as exc:  # noqa: BLE001 - any solver failure must become a fallback plan
        if isinstance(exc, TooLargeError):
            raise  # documented: the exact reference refuses instances too large for it
        kind = "infeasible" if isinstance(exc, InfeasibleError) else "solver_error"
        cause = f"{type(exc).__name__}: {exc}"
        log.warning("solvers.solve(method=%s): %s (%s); using the fallback plan", method, kind, cause)
        return fallback_plan(problem, status=kind, message=cause, t0=t0)


FALLBACK_S = 1.0
"""The fallback's placement repairs share this many seconds (each still gets the floor, and a first cover)."""


def fallback_plan(problem: RoundProblem, status: str = "fallback", message: str = "",
                  t0: float | None = None) -> RoundPlan:
    """Equal bandwidth, no relay (the fixed tree rule in tree mode); greedy minimal cover, or full placement
    within memory if coverage fails. A plan that breaks the instance (status infeasible) carries NaN costs."""
    t0 = time.perf_counter() if t0 is None else t0
    note = ""
    try:
        x = greedy_placement(problem, np.full(problem.num_devices, np.inf), repairs=Repairs(Clock.start(FALLBACK_S)))
    except CoverageError as exc:
        x = full_placement(problem)
        note = f"; coverage relaxed ({exc})"
        status = "infeasible"
    except Exception as exc:  # noqa: BLE001 - e.g. the repair MILP's time limit: not a proof of infeasibility
        x = full_placement(problem)
        note = f"; coverage relaxed ({type(exc).__name__}: {exc})"
    plan = equal_share_plan(problem, x, np.arange(problem.num_devices), "fallback", t0)
    if problem.tree_aggregation:  # the fixed tree rule, if the D2D graph connects every cluster
        try:
            plan = tree_rule_plan(problem, "fallback")
        except InfeasibleError as exc:
            note += f"; no tree ({exc}), direct uploads"
            status = "infeasible"
    if status == "infeasible":
        nan = math.nan
        plan = plan.with_(latency_s=nan, energy_j=nan, objective=nan, lower_bound=nan)
    return plan.with_(status=status, fallback=True, message=message + note)
