"""Top-k (and int8) variants against the uncompressed run, same seeds on both sides, on the 40-device preset.

    .venv/bin/python experiments/compression_variants.py --out experiments/results/compression/variants \
        --seeds 0 1 2 --variants none topk topk_module topk_momentum0.5 topk_warmup4

The ``auto`` variant is ``experiments/compression.py``'s (the distortions of ``--distortion``, budget 0.05);
``auto_feedback`` is the same with top-k's distortion measured with error feedback (``--feedback``);
``auto_budget0.2`` (and 0.1, 0.5) is ``auto`` with that budget (mean distortion per device and round). ``--set``
adds overrides to every run (e.g. ``solver.lam=0.1``: energy in the solver's objective, where the level model
prices it).
``front.png``: the accuracy change against ``none`` against total latency and energy, the mean over the seeds with
their range
(``--replot`` redraws it and the table from ``results.json`` without running). Each variant is a level plus
overrides (``VARIANTS``); every run is ``experiments/compression.py``'s run (the
same base overrides: ``experiment=hffm model=tiny``, 10 edges x 4 devices, 2 local steps, the joint solver) for
``--rounds`` rounds, cached in ``runs/<variant>-s<seed>.json`` (an interrupted study resumes; a run whose overrides
changed, or whose code changed, is run again). Writes ``results.json`` (every run, the commit, the machine and its
load) and ``table.md``:
per variant the mean accuracy change against ``none`` of the same seed (with its range), the uplink cut and the
total latency and energy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compression import BASE, KEEP, run_one  # noqa: E402 - the sibling script's runs

VARIANTS: dict[str, list[str]] = {
    "none": ["federation.compression=none"],
    "fp16": ["federation.compression=fp16"],
    "int8": ["federation.compression=int8"],
    "int8_channel": ["federation.compression=int8_channel"],
    "topk": ["federation.compression=topk"],
    "topk_plain": ["federation.compression=topk", "federation.compression_momentum=0"],
    "topk_module": ["federation.compression=topk", "federation.compression_topk_scope=module"],
    "topk_momentum0.5": ["federation.compression=topk", "federation.compression_momentum=0.5"],
    "topk_momentum0.3": ["federation.compression=topk", "federation.compression_momentum=0.3"],
    "topk_momentum0.7": ["federation.compression=topk", "federation.compression_momentum=0.7"],
    "topk_momentum0.9": ["federation.compression=topk", "federation.compression_momentum=0.9"],
    "topk_momentum0.5_warmup2": ["federation.compression=topk", "federation.compression_momentum=0.5",
                                 "federation.compression_topk_warmup=2"],
    "topk_warmup2": ["federation.compression=topk", "federation.compression_topk_warmup=2"],
    "topk_warmup4": ["federation.compression=topk", "federation.compression_topk_warmup=4"],
    "topk_ef21": ["federation.compression=topk", "federation.compression_feedback=ef21"],
}
"""Variant name -> its overrides on top of the base run (``auto`` also gets the measured distortions)."""
AUTO_BUDGET = 0.05
AUTO_BUDGETS = {f"auto_budget{b:g}": b for b in (0.1, 0.2, 0.5)}
"""``auto`` at other budgets: how far the budget, not the solver, keeps it from top-k's latency."""


def auto_overrides(distortion: Path) -> list[str]:
    """``auto`` as ``experiments/compression.py`` runs it: the distortions its ``--measure`` wrote, budget 0.05."""
    dist = json.loads(distortion.read_text())["distortion"]
    return ["federation.compression=auto", *[f"federation.compression_distortion.{c}={v:.6g}" for c, v in dist.items()],
            f"federation.compression_budget={AUTO_BUDGET}"]


def auto_feedback_overrides(distortion: Path, feedback: Path) -> list[str]:
    """``auto`` with top-k's distortion measured with error feedback (``distortion_feedback`` of
    experiments/compression.py --measure-only: top-k with the default momentum, the mean over a device's sends
    1..R of the relative error of what the edge has decoded from it so far) in place of the one-send figure."""
    fb = json.loads(feedback.read_text())["distortion_feedback"]["topk_momentum0.7"]
    topk = sum(fb.values()) / len(fb)
    return [o if not o.startswith("federation.compression_distortion.topk=") else
            f"federation.compression_distortion.topk={topk:.6g}" for o in auto_overrides(distortion)]


def table(runs: dict[str, dict[int, dict[str, Any]]], seeds: Sequence[int]) -> str:
    import numpy as np

    base = runs["none"]
    lines = [f"Seeds {list(seeds)}; change: per seed against that seed's `none`, then the mean [min, max].", "",
             "| variant | accuracy (%) | change (points) | total latency (s) | total energy (J) | uplink cut | "
             "CPU s / run |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, per_seed in runs.items():
        acc = np.array([per_seed[s]["final"]["accuracy"] for s in seeds])
        ch = 100 * (acc - np.array([base[s]["final"]["accuracy"] for s in seeds]))
        lat = np.mean([per_seed[s]["final"]["cost/cum_latency_s"] for s in seeds])
        en = np.mean([per_seed[s]["final"]["cost/cum_energy_j"] for s in seeds])
        cut = np.mean([base[s]["uplink_bytes"] / per_seed[s]["uplink_bytes"] for s in seeds])
        cpu = np.mean([per_seed[s]["cpu_s"] for s in seeds])
        lines.append(f"| {name} | {100 * acc.mean():.2f} | {ch.mean():+.2f} [{ch.min():+.2f}, {ch.max():+.2f}] | "
                     f"{lat:.2f} | {en:.1f} | {cut:.2f}x | {cpu:.0f} |")
    return "\n".join(lines) + "\n"


def plot_means(runs: dict[str, dict[int, dict[str, Any]]], seeds: Sequence[int], path: Path) -> None:
    """Accuracy change against `none` of the same seed (points) against total latency and energy: the mean over
    the seeds, bars the seeds' range (paired, so the seeds' own spread of accuracy does not hide the levels')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, label in ((axes[0], "cost/cum_latency_s", "total latency (s)"),
                           (axes[1], "cost/cum_energy_j", "total energy (J)")):
        for name, per_seed in runs.items():
            acc = 100 * np.array([per_seed[s]["final"]["accuracy"] - runs["none"][s]["final"]["accuracy"]
                                  for s in seeds])
            cost = np.array([per_seed[s]["final"][key] for s in seeds])
            ax.errorbar(cost.mean(), acc.mean(), yerr=[[acc.mean() - acc.min()], [acc.max() - acc.mean()]],
                        xerr=[[cost.mean() - cost.min()], [cost.max() - cost.mean()]], fmt="o", capsize=3)
            ax.annotate(name, (cost.mean(), acc.mean()), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel(f"accuracy change vs none (points), {len(seeds)} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=["none", "topk"],
                    choices=sorted([*VARIANTS, "auto", "auto_feedback", *AUTO_BUDGETS]))
    ap.add_argument("--distortion", type=Path,
                    default=Path(__file__).parent / "results/compression/r16/distortion.json",
                    help="auto's measured distortions (experiments/compression.py --measure-only)")
    ap.add_argument("--feedback", type=Path,
                    default=Path(__file__).parent / "results/compression/feedback16/distortion.json",
                    help="auto_feedback's top-k distortion with error feedback (compression.py --measure-only)")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every run, e.g. solver.lam=0.1")
    ap.add_argument("--replot", action="store_true",
                    help="rewrite table.md and front.png from --out's results.json (no runs)")
    args = ap.parse_args(argv)
    if args.replot:
        saved = json.loads((args.out / "results.json").read_text())
        runs_saved = {n: {int(s): r for s, r in per.items()} for n, per in saved["runs"].items()}
        (args.out / "table.md").write_text(table(runs_saved, saved["seeds"]))
        plot_means(runs_saved, saved["seeds"], args.out / "front.png")
        print(table(runs_saved, saved["seeds"]))
        return
    if "auto" in args.variants:
        VARIANTS["auto"] = auto_overrides(args.distortion)
    for name, budget in AUTO_BUDGETS.items():
        if name in args.variants:
            VARIANTS[name] = [o if not o.startswith("federation.compression_budget=") else
                              f"federation.compression_budget={budget}" for o in auto_overrides(args.distortion)]
    if "auto_feedback" in args.variants:
        VARIANTS["auto_feedback"] = auto_feedback_overrides(args.distortion, args.feedback)
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    names = ["none", *[v for v in args.variants if v != "none"]]
    runs: dict[str, dict[int, dict[str, Any]]] = {n: {} for n in names}
    for name in names:
        for seed in args.seeds:
            overrides = [*BASE, f"seed={seed}", *VARIANTS[name], f"federation.rounds={args.rounds}",
                         f"federation.eval_every={args.rounds}", *args.set]
            r = runs[name][seed] = run_one(f"{name}-s{seed}", overrides, args.out / "runs")
            print(f"{name} seed {seed}: accuracy {r['final']['accuracy']:.4f}, "
                  f"{r['cpu_s']:.0f} CPU s, {r['wall_s']:.0f} s wall, load {os.getloadavg()[0]:.1f}", flush=True)
    from code_version import CODE_PATHS, commit

    machine = {"python": sys.version.split()[0], "platform": platform.platform(), "load_avg": list(os.getloadavg()),
               "cpus_note": "2-core CPU container shared with other jobs: CPU seconds are this process's"}
    (args.out / "results.json").write_text(json.dumps(
        {"commit": commit(CODE_PATHS), "rounds": args.rounds, "seeds": args.seeds, "keep": KEEP, "machine": machine,
         "set": args.set,
         "variants": {n: VARIANTS[n] for n in names}, "runs": runs}, indent=1))
    (args.out / "table.md").write_text(table(runs, args.seeds))
    plot_means(runs, args.seeds, args.out / "front.png")
    print(table(runs, args.seeds))


if __name__ == "__main__":
    main()
