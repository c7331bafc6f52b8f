"""Compare two runs of the paper table (``paper_table.py``'s results.json): each method's accuracy, edge-tier
accuracy, latency and energy per round, seed means, and their differences. Made for the defaults' check
(issue 19: a new default may move the paper table's accuracies by at most 0.5 points).

    python experiments/paper_table_compare.py A/results.json B/results.json --names screen,robust [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METRICS = (("accuracy", "accuracy (%)", 100.0, ".2f"), ("edge_accuracy", "edge-tier acc (%)", 100.0, ".2f"),
           ("latency_s", "latency (s/round)", 1.0, ".4g"), ("energy_j", "energy (J/round)", 1.0, ".4g"))


def compare(a: dict[str, Any], b: dict[str, Any], names: Sequence[str]) -> str:
    """Markdown: per preset, one row a method, for each metric A, B and B - A (seed means); then the largest
    accuracy change."""
    lines = [f"A = {names[0]}: `{a.get('command', '?')}` ({_made(a)}); B = {names[1]}: "
             f"`{b.get('command', '?')}` ({_made(b)}). Seed means; seeds A {a['settings']['seeds']}, "
             f"B {b['settings']['seeds']}.", ""]
    worst = []
    for preset in [p for p in a["table"] if p in b["table"]]:
        head = ["method"] + [f"{label} {n}" for _, label, _, _ in METRICS for n in (*names, "change")]
        head.append("accuracy change per seed")
        lines += [f"## Preset `{preset}`", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for method in [m for m in a["table"][preset] if m in b["table"][preset]]:
            row = [method]
            for key, _, scale, fmt in METRICS:
                x, y = (scale * t["table"][preset][method][key]["mean"] for t in (a, b))
                row += [format(x, fmt), format(y, fmt), f"{y - x:+{fmt}}"]
                if key == "accuracy":
                    worst.append((abs(y - x), y - x, preset, method))
            row.append(", ".join(f"{seed}: {change:+.2f}" for seed, change in seed_changes(a, b, preset, method)))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    if worst:
        size, change, preset, method = max(worst)
        lines.append(f"Largest accuracy change: {change:+.2f} points ({preset}, {method}); "
                     f"{sum(1 for w in worst if w[0] > 0.5)} of {len(worst)} cells move by more than 0.5.")
    return "\n".join(lines) + "\n"


def seed_changes(a: dict[str, Any], b: dict[str, Any], preset: str, method: str) -> list[tuple[int, float]]:
    """(seed, B's final accuracy - A's, in points) for every seed both ran."""
    def final(results: dict[str, Any]) -> dict[int, float]:
        runs = results.get("runs", {}).get(preset, {}).get(method, [])
        runs = list(runs.values()) if isinstance(runs, dict) else runs
        return {int(r["seed"]): 100.0 * float(r["history"][-1]["accuracy"]) for r in runs
                if isinstance(r, dict) and r.get("history") and "accuracy" in r["history"][-1]}

    x, y = final(a), final(b)
    return [(seed, y[seed] - x[seed]) for seed in sorted(set(x) & set(y))]


def _made(results: dict[str, Any]) -> str:
    commits = sorted({o[len("(engine "):-1] for r in _runs(results) for o in r.get("overrides", [])
                      if o.startswith("(engine ")})
    return "made at " + ", ".join(commits) if commits else "commit not recorded"


def _runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    runs = results.get("runs", {})
    out = []
    for by_method in runs.values():
        for seeds in by_method.values():
            out += list(seeds.values()) if isinstance(seeds, dict) else list(seeds)
    return [r for r in out if isinstance(r, dict)]


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", help="results.json of the first table")
    p.add_argument("b", help="results.json of the second table")
    p.add_argument("--names", default="A,B", help="comma-separated names of the two tables")
    p.add_argument("--out", default=None, help="write the Markdown here too")
    args = p.parse_args(argv)
    a, b = (json.loads(Path(x).read_text()) for x in (args.a, args.b))
    md = compare(a, b, args.names.split(","))
    if args.out:
        Path(args.out).write_text(md)
    print(md)
    return md


if __name__ == "__main__":
    main()
