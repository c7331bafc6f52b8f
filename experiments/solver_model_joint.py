"""`joint` with and without the round's cvxpy model on power / frequency and tree rounds (solvers/model_gate.py):
two checkouts, A (the reference) and B, solve each instance of experiments/solver_model_bench.py in turn, each in
a fresh process (experiments/solver_ab.py's `run_one`, --cpu-clock: the deadlines in CPU s, HiGHS's limits scaled),
for every time limit, mode and size given. Writes one JSON line per instance (both checkouts' objective, certified
gap, status, wall and CPU s, load) and a table of medians per (limit, mode, size).

    python experiments/solver_model_joint.py --a /work/main --b . --limits 2 5 20 --sizes 4 8 12 \
        --out experiments/results/solver_model/m24/ab.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.solver_ab import commit_of, run_one  # noqa: E402


def table(rows: list[dict]) -> str:
    """Medians per (limit, mode, devices): A and B certified gaps, B's objective / A's, CPU and wall s."""
    out = [
        "| limit s | mode | devices | n | gap A (median / worst) | gap B (median / worst) | B better / worse "
        "gap | obj B / A (worst) | CPU s A / B (max) | wall s A / B (max) | load |",
        "|" + "---|" * 11,
    ]
    keys = sorted({(r["limit"], r["mode"], r["devices"]) for r in rows})
    for key in keys:
        rs = [r for r in rows if (r["limit"], r["mode"], r["devices"]) == key]
        ga, gb = [r["A"]["gap"] for r in rs], [r["B"]["gap"] for r in rs]
        ratio = [r["B"]["objective"] / r["A"]["objective"] for r in rs]
        better = sum(b < a - 1e-4 for a, b in zip(ga, gb, strict=True))
        worse = sum(b > a + 1e-4 for a, b in zip(ga, gb, strict=True))
        cpu = {k: [r[k]["cpu_s"] for r in rs] for k in "AB"}
        wall = {k: [r[k]["wall_s"] for r in rs] for k in "AB"}
        load = statistics.median(r["B"]["load_1min"] for r in rs)
        out.append(
            f"| {key[0]:g} | {key[1]} | {key[2]} | {len(rs)} | {100 * statistics.median(ga):.2f} / "
            f"{100 * max(ga):.2f} % | {100 * statistics.median(gb):.2f} / {100 * max(gb):.2f} % | "
            f"{better} / {worse} | {statistics.median(ratio):.4f} ({max(ratio):.4f}) | "
            f"{statistics.median(cpu['A']):.2f} / {statistics.median(cpu['B']):.2f} ({max(cpu['A']):.2f} / "
            f"{max(cpu['B']):.2f}) | {statistics.median(wall['A']):.2f} / {statistics.median(wall['B']):.2f} "
            f"({max(wall['A']):.2f} / {max(wall['B']):.2f}) | {load:.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="checkout root A (the reference)")
    ap.add_argument("--b", required=True, help="checkout root B")
    ap.add_argument("--limits", type=float, nargs="+", default=[2.0, 5.0, 20.0])
    ap.add_argument("--modes", nargs="+", default=["power-frequency", "tree"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 12])
    ap.add_argument("--lams", type=float, nargs="+", default=[0.05, 0.5, 5.0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", required=True, type=Path, help="JSON lines, appended; the table beside it (.md)")
    a = ap.parse_args()
    roots = {"A": str(Path(a.a).resolve()), "B": str(Path(a.b).resolve())}
    commits = {k: commit_of(v) for k, v in roots.items()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with a.out.open("a") as f:
        for limit in a.limits:
            for mode in a.modes:
                for n in a.sizes:
                    for lam in a.lams:
                        for seed in range(a.seeds):
                            row: dict = {
                                "limit": limit,
                                "mode": mode,
                                "devices": n,
                                "lambda": lam,
                                "seed": seed,
                                "commits": commits,
                            }
                            for k in ("A", "B"):
                                row[k] = run_one(roots[k], n, lam, seed, limit, None, True, [], mode, True)
                            print(json.dumps(row), flush=True)
                            f.write(json.dumps(row) + "\n")
                            f.flush()
    rows = [json.loads(line) for line in a.out.read_text().splitlines() if line.strip()]
    md = table(rows)
    print(md)
    a.out.with_suffix(".md").write_text(md + "\n")


if __name__ == "__main__":
    main()
