"""Where the relay-group bound (solvers/group_columns.py, group_price.py, group_bound.py) spends its CPU, and how
high it gets within a CPU budget.

Per seeded one-edge instance (`solver_model_bench.instance(n, mode, lam, seed)`) the reference plan is `joint`'s
heuristics alone (`time_limit_s=0`: deterministic, the same plan for any checkout whose heuristics agree). Then:
- `master`: one master at the plan's latency T* seeded with its groups (CPU s, pricing passes, E_lb(T*) / E*);
- `full`: `group_lower_bound` unclocked (CPU s, bound / objective, masters, CPU s in pricing and in HiGHS);
- `at_<s>`: `group_lower_bound` within s CPU seconds (--budgets), bound / objective and the CPU it took;
- with --profile, the functions of most own time under cProfile (the unclocked bound once more).
--code runs another checkout's solvers (e.g. the commit before a change), for an A/B run back to back.

    python experiments/solver_group_speed.py [--mode aggregates] [--sizes 8,12] [--lams 0.5,5] [--seeds 2]
        [--budgets 0.5,1] [--profile] [--code /path/to/checkout]
        --out experiments/results/solver_model/s23g/group_speed.json
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _code(argv: list[str]) -> str:
    """The checkout whose solvers run (--code), put first on the path before anything imports them."""
    root = str(Path(__file__).resolve().parent.parent)
    if "--code" in argv[:-1]:
        root = str(Path(argv[argv.index("--code") + 1]).resolve())
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, root)
    return root


ROOT = _code(sys.argv)

from cpu_clock import cpu_deadlines  # noqa: E402
from solver_grid import add_grid, grid, show, write_results  # noqa: E402
from solver_model_bench import instance  # noqa: E402

import solvers  # noqa: E402
from solvers import solve  # noqa: E402
from solvers.bounds import subset_lower_bound  # noqa: E402
from solvers.clock import Clock, now  # noqa: E402
from solvers.evaluate import evaluate  # noqa: E402
from solvers.group_bound import group_lower_bound  # noqa: E402
from solvers.group_columns import GroupBound  # noqa: E402
from solvers.group_parts import edge_parts  # noqa: E402

PRICING = ("price",)
"""The functions whose cumulative CPU counts as pricing (the entry point of group_price.GroupPricing)."""


def _commit(root: str) -> str:
    got = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return got.stdout.strip() or "not a git checkout"


def _bound(p: Any, plan: Any, clock: Clock) -> float:
    edge_t = evaluate(p, plan.placement, plan.relay, plan.bandwidth_hz).edge_latency_s
    return group_lower_bound(p, subset_lower_bound(p, edge_t), plan.objective, plan.latency_s, plan.energy_j, clock,
                             plan=(plan.placement, plan.relay, plan.bandwidth_hz))


def _split(prof: cProfile.Profile, top: int) -> tuple[dict[str, float], list[list]]:
    """(cumulative seconds in pricing, in HiGHS's run, in the masters; the `top` functions by own time)."""
    st = pstats.Stats(prof)
    cum: dict[str, float] = {"pricing_s": 0.0, "highs_run_s": 0.0, "masters_s": 0.0}
    for (path, _, name), (_, _, _own, total, _) in st.stats.items():  # type: ignore[attr-defined]
        if name in PRICING and path.endswith("group_price.py"):
            cum["pricing_s"] += total
        elif "highspy" in name and name.endswith("run>"):  # cProfile's name of the bare solver's run
            cum["highs_run_s"] += total
        elif name == "energy" and path.endswith("group_columns.py"):
            cum["masters_s"] += total
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
    return cum, [[f"{Path(k[0]).name}:{k[2]}", v[1], round(v[2], 4), round(v[3], 4)] for k, v in rows]


def row(n: int, mode: str, lam: float, seed: int, budgets: list[float], profile: bool) -> dict:
    p = instance(n, mode, lam, seed)
    plan = solve(p, "joint", time_limit_s=0)
    out: dict[str, Any] = {"devices": n, "mode": mode, "lambda": lam, "seed": seed, "objective": plan.objective,
                           "plan_lb": plan.lower_bound / plan.objective}
    g = GroupBound(p, 0, edge_parts(p, 0))
    c0 = time.process_time()
    e = g.energy(plan.latency_s, plan.energy_j, seed=g.plan_groups(plan.placement, plan.relay, plan.bandwidth_hz))
    out.update(master_cpu_s=time.process_time() - c0, master_at_T=e / plan.energy_j, master_duals=len(g.duals))
    c0 = time.process_time()
    out["full"] = _bound(p, plan, Clock()) / plan.objective
    out["full_cpu_s"] = time.process_time() - c0
    for b in budgets:
        with cpu_deadlines():
            c0 = time.process_time()
            got = _bound(p, plan, Clock(now() + b))
            out[f"at_{b:g}"] = [got / plan.objective, time.process_time() - c0]
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        _bound(p, plan, Clock())
        prof.disable()
        cum, top = _split(prof, 12)
        out.update(profile_cum=cum, profile_top=top)
    out["load"] = os.getloadavg()[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid(ap, sizes="8,12", lams="0.5,5", seeds=2, mode="one-hop")
    ap.add_argument("--budgets", default="0.5,1", help="CPU seconds for the clocked bound, comma-separated")
    ap.add_argument("--profile", action="store_true", help="cProfile the unclocked bound once more")
    ap.add_argument("--code", default=None, help="the checkout whose solvers run (default: this one)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    budgets = [float(s) for s in a.budgets.split(",") if s]
    assert solvers.__file__.startswith(ROOT), solvers.__file__
    rows = []
    for n, lam, seed in grid(a):
        r = row(n, a.mode, lam, seed, budgets, a.profile)
        rows.append(r)
        show(r, skip=("profile_top",))
    write_results(a.out, rows, {"code": ROOT, "code_commit": _commit(ROOT), "budgets": budgets})


if __name__ == "__main__":
    main()
