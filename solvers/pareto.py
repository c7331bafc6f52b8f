"""`python -m solvers pareto INSTANCE.json`: the latency-energy front of one round, by sweeping lambda.

Each lambda's joint plan minimizes T + lambda E, so it is a supported point of the front (one a weighted sum can
reach); lambda runs over 0 and a geometric grid around T0 / E0 of the lambda-0 plan, where latency and energy
weigh the same. Points dominated by another (no faster and no cheaper) are dropped from `front`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from solvers.api import solve
from solvers.instance import RoundProblem


def sweep(problem: RoundProblem, lams: list[float] | None = None, points: int = 13) -> dict:
    """{"points": [...] per lambda, "front": the non-dominated ones, sorted by latency}."""
    base = solve(dataclasses.replace(problem, lam=0.0), "joint")
    if lams is None:
        ref = base.latency_s / max(base.energy_j, 1e-300)
        lams = [0.0] + [float(v) for v in ref * np.geomspace(1e-2, 1e2, points)]
    rows = []
    for lam in lams:
        plan = base if lam == 0 else solve(dataclasses.replace(problem, lam=float(lam)), "joint")
        rows.append({"lambda": float(lam), "latency_s": plan.latency_s, "energy_j": plan.energy_j,
                     "objective": plan.objective, "lower_bound": plan.lower_bound, "fallback": plan.fallback,
                     "relays": int(np.sum(plan.relay != np.arange(problem.num_devices))),
                     "modules_placed": int(plan.placement.sum())})
    return {"points": rows, "front": non_dominated(rows)}


def non_dominated(rows: list[dict], rtol: float = 1e-6) -> list[dict]:
    """The rows no other row dominates, sorted by latency. Latencies and energies within rtol count as equal (two
    lambdas often reach the same latency up to the solvers' tolerance): a row is dropped when another is no slower
    and no costlier up to rtol and better by more than rtol in one of them; of rows equal up to rtol one is kept."""
    def dominates(o: dict, r: dict) -> bool:
        lat, en = o["latency_s"] - r["latency_s"], o["energy_j"] - r["energy_j"]
        tl, te = rtol * abs(r["latency_s"]), rtol * abs(r["energy_j"])
        return lat <= tl and en <= te and (lat < -tl or en < -te)

    rows = [r for r in rows if math.isfinite(r["latency_s"]) and math.isfinite(r["energy_j"])]  # no infeasible plans
    keep = [r for r in rows if not any(dominates(o, r) for o in rows)]
    out: list[dict] = []
    for r in sorted(keep, key=lambda r: (r["latency_s"], r["energy_j"])):
        if not (out and abs(r["latency_s"] - out[-1]["latency_s"]) <= rtol * abs(out[-1]["latency_s"])
                and abs(r["energy_j"] - out[-1]["energy_j"]) <= rtol * abs(out[-1]["energy_j"])):
            out.append(r)
    return out


def write_front(result: dict, out_dir: str | Path, title: str = "") -> tuple[Path, Path]:
    """front.json and front.png in out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js, png = out / "front.json", out / "front.png"
    js.write_text(json.dumps(result, indent=1))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    pts, front = result["points"], result["front"]
    ax.plot([r["latency_s"] for r in pts], [r["energy_j"] for r in pts], "o", color="0.7", label="per lambda")
    ax.plot([r["latency_s"] for r in front], [r["energy_j"] for r in front], "o-", label="front")
    for r in front:
        ax.annotate(f"{r['lambda']:.2g}", (r["latency_s"], r["energy_j"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set(xlabel="round latency T (s)", ylabel="round energy E (J)", title=title or "latency-energy front")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return js, png
