"""`python -m solvers bench`: solve time, objective vs baselines, gap to the exact reference.

Sweep: N devices, about N/100 edges (at least 1), 3 to 10 modules (drawn from the seed), 3 D2D neighbours.
Exact suite: clusters of 4 devices (the default of docs/network-model.md), 3 or 4 modules, N in --exact-sizes,
every lambda in --lams (every third seed with aggregating relays).
Certified gap: 1 - the joint plan's lower_bound (solvers/bounds.py) / its objective, as `RoundPlan.gap`, at every
sweep size.
Default topology: 40 devices = 10 edges x 4 (docs/network-model.md), 5 modules, joint vs equal bandwidth / no relay.
Tree suite (tree_aggregation): exact vs joint vs its heuristic path vs the fixed best-uplink shortest-path rule.
Every plan is checked by solvers.check; wall times include that check (the `solve` entry point runs it).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from solvers.api import solve
from solvers.check import check_plan
from solvers.generate import random_instance

BASELINES = ("equal", "greedy", "random")


def _run(problem, method: str) -> dict:  # noqa: ANN001
    t0 = time.perf_counter()
    plan = solve(problem, method)
    wall = time.perf_counter() - t0
    bad = check_plan(problem, plan, allow_coverage=plan.fallback)
    return {"method": method, "wall_s": wall, "latency_s": plan.latency_s, "energy_j": plan.energy_j,
            "objective": plan.objective, "feasible": not bad and not plan.fallback, "fallback": plan.fallback,
            "status": plan.status, "lower_bound": plan.lower_bound}


def sweep(sizes: list[int], repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        for r in range(repeats):
            seed = 1000 * n + r
            modules = int(np.random.default_rng(seed).integers(3, 11))
            problem = random_instance(n, max(1, round(n / 100)), modules, seed)
            for method in ("joint", *BASELINES):
                rows.append({"suite": "sweep", "devices": n, "edges": problem.num_edges, "modules": modules,
                             "seed": seed, **_run(problem, method)})
    return rows


def exact_suite(sizes: list[int], seeds: int, lams: tuple[float, ...] = (0.0,)) -> list[dict]:
    rows = []
    for n in sizes:
        for s in range(seeds):
            seed = 77 * n + s
            for lam in lams:
                problem = random_instance(n, max(1, n // 4), 3 + s % 2, seed, lam=lam, relay_aggregates=s % 3 == 2)
                for method in ("exact", "joint", "equal"):
                    rows.append({"suite": "exact", "devices": n, "edges": problem.num_edges, "lam": lam,
                                 "modules": problem.num_modules, "seed": seed, **_run(problem, method)})
    return rows


def tree_suite(seeds: int) -> list[dict]:
    """tree_aggregation: exact vs joint vs its heuristic path (no enumeration) vs the fixed rule."""
    import dataclasses

    from solvers.tree import tree_solve

    rows = []
    for n, e in ((4, 1), (5, 1), (8, 2), (40, 10), (200, 20), (1000, 10)):
        for s in range(seeds):
            for lam in (0.0, 0.5):  # 6 D2D neighbours from 40 devices on: 3 often leave a large cluster unconnected
                problem = dataclasses.replace(random_instance(n, e, 3 + s % 2, 91 * n + s, lam=lam,
                                                              d2d_neighbours=3 if n <= 8 else 6), tree_aggregation=True)
                methods = ("exact", "joint", "equal") if n <= 8 else ("joint", "equal")
                for method in methods:
                    rows.append({"suite": "tree", "devices": n, "edges": e, "lam": lam, "seed": 91 * n + s,
                                 **_run(problem, method)})
                if n <= 8:
                    t0 = time.perf_counter()
                    plan = tree_solve(problem, enum_max=0)
                    rows.append({"suite": "tree", "devices": n, "edges": e, "lam": lam, "seed": 91 * n + s,
                                 "method": "search", "wall_s": time.perf_counter() - t0,
                                 "objective": plan.objective, "feasible": not check_plan(problem, plan)})
    return rows


def default_topology(seeds: int) -> list[dict]:
    rows = []
    for s in range(seeds):
        problem = random_instance(40, 10, 5, s)
        for method in ("joint", *BASELINES):
            rows.append({"suite": "default40", "devices": 40, "edges": 10, "modules": 5, "seed": s,
                         **_run(problem, method)})
    return rows


def _by(rows: list[dict], **keys: object) -> list[dict]:
    return [r for r in rows if all(r[k] == v for k, v in keys.items())]


def summarize(rows: list[dict]) -> dict:
    out: dict = {"sweep": [], "exact": [], "default40": {}}
    for n in sorted({r["devices"] for r in _by(rows, suite="sweep")}):
        joint = _by(rows, suite="sweep", devices=n, method="joint")
        row = {"devices": n, "edges": joint[0]["edges"],
               "joint_median_s": float(np.median([r["wall_s"] for r in joint])),
               "certified_gaps": [1 - r["lower_bound"] / r["objective"] if r["lower_bound"] > 0 else None
                                  for r in joint],
               "all_feasible": all(r["feasible"] for r in _by(rows, suite="sweep", devices=n))}
        for b in BASELINES:
            base = _by(rows, suite="sweep", devices=n, method=b)
            row[f"{b}_median_s"] = float(np.median([r["wall_s"] for r in base]))
            row[f"joint_over_{b}"] = float(np.median([j["objective"] / r["objective"]
                                                      for j, r in zip(joint, base, strict=True)]))
        out["sweep"].append(row)
    for n in sorted({r["devices"] for r in _by(rows, suite="exact")}):
        for lam in sorted({r["lam"] for r in _by(rows, suite="exact", devices=n)}):
            ex = _by(rows, suite="exact", devices=n, method="exact", lam=lam)
            jo = _by(rows, suite="exact", devices=n, method="joint", lam=lam)
            gaps = [j["objective"] / e["objective"] - 1 for j, e in zip(jo, ex, strict=True)]
            out["exact"].append({"devices": n, "lam": lam, "instances": len(gaps), "median_gap": float(np.median(gaps)),
                                 "max_gap": float(np.max(gaps)),
                                 "exact_median_s": float(np.median([e["wall_s"] for e in ex])),
                                 "joint_median_s": float(np.median([j["wall_s"] for j in jo])),
                                 "all_feasible": all(r["feasible"] for r in
                                                     _by(rows, suite="exact", devices=n, lam=lam))})
    out["tree"] = []
    for n in sorted({r["devices"] for r in _by(rows, suite="tree")}):
        for lam in sorted({r["lam"] for r in _by(rows, suite="tree", devices=n)}):
            jo = _by(rows, suite="tree", devices=n, lam=lam, method="joint")
            rule = _by(rows, suite="tree", devices=n, lam=lam, method="equal")
            row = {"devices": n, "edges": jo[0]["edges"], "lam": lam, "instances": len(jo),
                   "joint_median_s": float(np.median([j["wall_s"] for j in jo])),
                   "joint_over_rule": float(np.median([j["objective"] / r["objective"]
                                                       for j, r in zip(jo, rule, strict=True)])),
                   "all_feasible": all(r["feasible"] for r in _by(rows, suite="tree", devices=n, lam=lam))}
            ex = _by(rows, suite="tree", devices=n, lam=lam, method="exact")
            if ex:
                se = _by(rows, suite="tree", devices=n, lam=lam, method="search")
                row["joint_max_gap"] = float(max(j["objective"] / x["objective"] - 1
                                                 for j, x in zip(jo, ex, strict=True)))
                gaps = [h["objective"] / x["objective"] - 1 for h, x in zip(se, ex, strict=True)]
                row["search_median_gap"], row["search_max_gap"] = float(np.median(gaps)), float(np.max(gaps))
            out["tree"].append(row)
    jo, eq = _by(rows, suite="default40", method="joint"), _by(rows, suite="default40", method="equal")
    if jo:
        red = [1 - j["latency_s"] / e["latency_s"] for j, e in zip(jo, eq, strict=True)]
        out["default40"] = {"instances": len(red), "median_latency_reduction": float(np.median(red)),
                            "min_latency_reduction": float(np.min(red)),
                            "joint_median_latency_s": float(np.median([j["latency_s"] for j in jo])),
                            "equal_median_latency_s": float(np.median([e["latency_s"] for e in eq]))}
    return out


def markdown(summary: dict, machine: str) -> str:
    lines = [f"Machine: {machine}", "", "| devices | edges | joint median s | equal s | greedy s | random s | "
             "joint/equal objective | joint/greedy | joint/random | all feasible |", "|" + "---|" * 10]
    for r in summary["sweep"]:
        lines.append(f"| {r['devices']} | {r['edges']} | {r['joint_median_s']:.3f} | {r['equal_median_s']:.3f} | "
                     f"{r['greedy_median_s']:.3f} | {r['random_median_s']:.3f} | {r['joint_over_equal']:.3f} | "
                     f"{r['joint_over_greedy']:.3f} | {r['joint_over_random']:.3f} | {r['all_feasible']} |")
    lines += ["", "| devices | edges | certified gaps of joint (1 - lower_bound / objective) | median |",
              "|" + "---|" * 4]
    for r in summary["sweep"]:
        g = [v for v in r["certified_gaps"] if v is not None]
        shown = ", ".join(f"{100 * v:.2f}%" if v is not None else "none" for v in r["certified_gaps"])
        lines.append(f"| {r['devices']} | {r['edges']} | {shown} | "
                     f"{f'{100 * float(np.median(g)):.2f}%' if g else 'none'} |")
    if summary["exact"]:
        lines += ["", "| devices (clusters of 4) | lambda | instances | median gap to exact | max gap | exact median s "
                  "| joint median s | all feasible |", "|" + "---|" * 8]
        for r in summary["exact"]:
            lines.append(f"| {r['devices']} | {r['lam']:g} | {r['instances']} | {100 * r['median_gap']:.3f}% | "
                         f"{100 * r['max_gap']:.3f}% | {r['exact_median_s']:.2f} | {r['joint_median_s']:.2f} | "
                         f"{r['all_feasible']} |")
    if summary.get("tree"):
        lines += ["", "| tree aggregation: devices | edges | lambda | instances | joint median s | joint / fixed rule "
                  "| joint max gap to exact | heuristic path median / max gap | all feasible |", "|" + "---|" * 9]
        for r in summary["tree"]:
            gap = f"{100 * r['joint_max_gap']:.3f}%" if "joint_max_gap" in r else "n/a"
            sg = (f"{100 * r['search_median_gap']:.2f}% / {100 * r['search_max_gap']:.2f}%"
                  if "search_max_gap" in r else "n/a")
            lines.append(f"| {r['devices']} | {r['edges']} | {r['lam']:g} | {r['instances']} | "
                         f"{r['joint_median_s']:.2f} | {r['joint_over_rule']:.3f} | {gap} | {sg} | "
                         f"{r['all_feasible']} |")
    d = summary["default40"]
    if d:
        lines += ["", f"Default 40-device topology (10 edges x 4, {d['instances']} seeds): joint median latency "
                  f"{d['joint_median_latency_s']:.2f} s vs equal-bandwidth no-relay "
                  f"{d['equal_median_latency_s']:.2f} s; "
                  f"reduction median {100 * d['median_latency_reduction']:.1f}%, "
                  f"worst {100 * d['min_latency_reduction']:.1f}%."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    sizes = [r["devices"] for r in summary["sweep"]]
    for m in ("joint", *BASELINES):
        key = "joint_median_s" if m == "joint" else f"{m}_median_s"
        ax[0].loglog(sizes, [r[key] for r in summary["sweep"]], "o-", label=m)
    ax[0].set(xlabel="devices", ylabel="median wall time (s)", title="solve time")
    ax[0].legend()
    for b in BASELINES:
        ax[1].semilogx(sizes, [r[f"joint_over_{b}"] for r in summary["sweep"]], "o-", label=f"joint / {b}")
    ax[1].axhline(1, color="gray", lw=0.8)
    ax[1].set(xlabel="devices", ylabel="median objective ratio", title="objective vs baselines")
    ax[1].legend()
    ex = summary["exact"]
    if ex:
        data = [[100 * (j["objective"] / e["objective"] - 1)
                 for j, e in zip(_by(rows, suite="exact", devices=r["devices"], lam=r["lam"], method="joint"),
                                 _by(rows, suite="exact", devices=r["devices"], lam=r["lam"], method="exact"),
                                 strict=True)]
                for r in ex]
        ax[2].boxplot(data, tick_labels=[f"{r['devices']}/{r['lam']:g}" for r in ex])
        ax[2].tick_params(axis="x", labelrotation=90)
    ax[2].set(xlabel="devices / lambda", ylabel="gap to exact (%)", title="optimality gap")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_bench(out: str, sizes: list[int], repeats: int, exact_sizes: list[int], exact_seeds: int,
              lams: tuple[float, ...] = (0.0, 0.05, 0.5, 5.0, 10.0)) -> dict:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.platform()}, {os.cpu_count()} CPU cores visible"
    rows = (sweep(sizes, repeats) + exact_suite(exact_sizes, exact_seeds, lams) + tree_suite(exact_seeds)
            + default_topology(max(repeats, 10)))
    summary = summarize(rows)
    (out_dir / "bench.json").write_text(json.dumps({"machine": machine, "summary": summary, "rows": rows}, indent=1))
    (out_dir / "bench.md").write_text(markdown(summary, machine))
    plot(rows, summary, out_dir / "bench.png")
    print(markdown(summary, machine))
    return summary
