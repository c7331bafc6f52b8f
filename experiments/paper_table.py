"""The paper's comparison: the seven methods of the published HF-FM table on the built-in benchmark.

    .venv/bin/python experiments/paper_table.py --seeds 0,1,2 --rounds 16 --presets default,prototype

For every network preset x method x seed it composes the Hydra config (conf/, experiment=<method>,
topology=<preset>), trains it with ``hffm.run.train`` and keeps a summary of every round. It writes
into ``--out``: results.json (every run's per-round history), table.md (per preset: latency and energy
per round, final accuracy, mean +- std over seeds, the published table beside it, and PASS/FAIL of
the published ordering claims), accuracy_vs_cost*.png and README.md is written by hand from them.
A run whose cached history (``runs/<preset>/<method>_s<seed>.json``) was made with the same
overrides by the same code (``code_version.code_hash``: every source and config file)
is reused, so an interrupted sweep picks up where it stopped.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METHODS: dict[str, str] = {
    "star": "star topology (plain FedAvg to cloud)",
    "edge_only": "edge aggregation only",
    "edge_only_d2d": "edge only + D2D",
    "hffm": "HF-FM, E_agg = 2",
    "hffm_e8": "HF-FM, E_agg = 8",
    "hffm_d2d": "HF-FM + D2D, E_agg = 2",
    "hffm_d2d_e8": "HF-FM + D2D, E_agg = 8",
}
"""Method key (= the experiment preset in conf/experiment) -> the published table's row name."""

PRESETS = ("default", "prototype")
PUBLISHED = {  # latency (s), "energy (kJ)" (really J, see docs/network-model.md), accuracy (%)
    "star": (12.10, 387.20, 37.89), "edge_only": (3.59, 59.25, 27.48), "edge_only_d2d": (2.00, 14.75, 27.48),
    "hffm": (9.58, 107.65, 38.65), "hffm_e8": (5.04, 71.35, 36.25), "hffm_d2d": (8.86, 67.57, 38.65),
    "hffm_d2d_e8": (3.66, 27.92, 36.25),
}
EQUAL_FLOOR = 0.01
"""Accuracies count as equal when they differ by at most max(this, 2 standard errors of the difference)."""

# Chosen for a 2-core shared CPU (see results/paper_table/README.md): the tiny model, 1200 samples,
# 2 local steps of 32, evaluation every 8 rounds (the points of the accuracy-vs-cost curves).
FULL = ["model=tiny", "data.benchmark.num_samples=1200", "federation.local_steps=2",
        "federation.batch_size=32", "federation.eval_every=8"]
QUICK = ["model=tiny", "data.benchmark.num_samples=400", "topology.num_edges=2", "topology.devices_per_edge=2",
         "federation.local_steps=1", "federation.batch_size=16", "federation.eval_every=1"]
KEEP_PREFIXES = ("cost/", "global/", "edge/")
KEEP = ("round", "cloud_round", "accuracy", "time/round_s", "participants")


def compose_config(method: str, preset: str, seed: int, rounds: int, overrides: Sequence[str]) -> Any:
    """The resolved Config of one run, composed from conf/ exactly as ``hffm-train`` would."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from hffm.config import register_configs, resolve

    if method not in METHODS:
        raise ValueError(f"method {method!r}: choose among {list(METHODS)}")
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}: choose among {list(PRESETS)}")
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="hffm.conf", version_base=None):
        cfg = compose("config", overrides=run_overrides(method, preset, seed, rounds, overrides))
    return resolve(cfg)


def run_overrides(method: str, preset: str, seed: int, rounds: int, overrides: Sequence[str]) -> list[str]:
    """Hydra overrides of one run; the topology group is the preset, user overrides come last."""
    return [f"experiment={method}", "data=benchmark", f"topology={preset}", f"seed={seed}",
            f"federation.rounds={rounds}", "logger=none", "progress=none", "plots=false", *overrides]


def keep_round(metrics: dict[str, float]) -> dict[str, float]:
    """The part of a round's metrics the table and plots need (costs with breakdown, accuracies)."""
    out = {}
    for k, v in metrics.items():
        if k in KEEP or k.startswith(KEEP_PREFIXES):
            if "@" in k:  # single-modality views: not needed for the table
                continue
            out[k] = float(v)
    return out


@functools.lru_cache(maxsize=1)
def engine_commit() -> str:
    """The code the runs were made with: the content hash of the sources (a cached run made by other code, even
    uncommitted edits, is made again) and the commit, for people."""
    from code_version import code_hash, commit

    return f"{code_hash()} at {commit()}"


def run_one(
    method: str, preset: str, seed: int, rounds: int, overrides: Sequence[str], cache: Path
) -> dict:
    """Train one run (or reuse its cached history made with the same overrides by the same code)."""
    from hffm.run import train

    key = [*run_overrides(method, preset, seed, rounds, overrides), f"(engine {engine_commit()})"]
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("overrides") == key:
            return cached
    cfg = compose_config(method, preset, seed, rounds, overrides)
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="paper_table_") as tmp:
        result = train(cfg, tmp)
    if result is None:
        raise RuntimeError("paper_table runs one process (fabric.devices=1); several returned no history")
    record = {
        "method": method, "preset": preset, "seed": seed, "overrides": key,
        "wall_s": time.perf_counter() - tic,
        "history": [keep_round(m) for m in result.history],
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(record))
    return record


def edge_accuracy(metrics: dict[str, float]) -> float:
    """Mean over classification tasks of edge/<task>/acc: the modules each cluster ends with."""
    accs = [v for k, v in metrics.items() if k.startswith("edge/") and k.endswith("/acc")]
    return float(np.mean(accs)) if accs else math.nan


def summarize_run(record: dict) -> dict[str, float]:
    """Per-round means of latency and energy, and the last round's accuracies."""
    hist = record["history"]
    last = hist[-1]
    return {
        "latency_s": float(np.mean([h["cost/latency_s"] for h in hist])),
        "energy_j": float(np.mean([h["cost/energy_j"] for h in hist])),
        "accuracy": float(last.get("accuracy", math.nan)),
        "edge_accuracy": edge_accuracy(last),
        "cum_latency_s": float(last["cost/cum_latency_s"]),
        "cum_energy_j": float(last["cost/cum_energy_j"]),
        "wall_s": float(record["wall_s"]),
    }


def aggregate(summaries: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample std (ddof=1; 0 for one seed) of every summary field over seeds."""
    out = {}
    for key in summaries[0]:
        vals = np.array([s[key] for s in summaries], dtype=float)
        out[key] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                    "n": len(vals)}
    return out


def check_claims(table: dict[str, dict]) -> list[dict[str, str]]:
    """The published ordering, claim by claim, on seed means: PASS, FAIL, or n/a (a method not run)."""
    def m(method: str, key: str) -> float:
        return table[method][key]["mean"]

    out: list[dict[str, str]] = []

    def claim(text: str, need: Sequence[str], test) -> None:
        if any(x not in table for x in need):
            out.append({"claim": text, "status": "n/a", "detail": "not every method involved was run"})
            return
        ok, detail = test()
        out.append({"claim": text, "status": "PASS" if ok else "FAIL", "detail": detail})

    def extreme(method: str, key: str, largest: bool) -> tuple[bool, str]:
        others = {k: m(k, key) for k in table if k != method}
        worst = max(others, key=others.get) if largest else min(others, key=others.get)
        ok = m(method, key) > others[worst] if largest else m(method, key) < others[worst]
        return ok, f"{method} {m(method, key):.4g} vs the next, {worst} {others[worst]:.4g}"

    def below(group: Sequence[str], rest: Sequence[str], key: str) -> tuple[bool, str]:
        hi = max(group, key=lambda k: m(k, key))
        lo = min(rest, key=lambda k: m(k, key))
        detail = f"highest of {list(group)}: {hi} {m(hi, key):.4g}; lowest other: {lo} {m(lo, key):.4g}"
        return m(hi, key) < m(lo, key), detail

    edge, non_edge = ["edge_only", "edge_only_d2d"], ["star", "hffm", "hffm_e8", "hffm_d2d", "hffm_d2d_e8"]
    claim("star is the slowest (latency per round)", list(METHODS), lambda: extreme("star", "latency_s", True))
    claim("star is the costliest (energy per round)", list(METHODS), lambda: extreme("star", "energy_j", True))
    claim("the fastest method is an edge-only variant", list(METHODS), lambda: (
        min(table, key=lambda k: m(k, "latency_s")) in edge,
        f"fastest: {min(table, key=lambda k: m(k, 'latency_s'))}"))
    claim("edge only is faster than HF-FM (E_agg 2 and 8), without D2D", ["edge_only", "hffm", "hffm_e8"],
          lambda: below(["edge_only"], ["hffm", "hffm_e8"], "latency_s"))
    claim("edge only + D2D is faster than HF-FM + D2D (E_agg 2 and 8)", ["edge_only_d2d", "hffm_d2d", "hffm_d2d_e8"],
          lambda: below(["edge_only_d2d"], ["hffm_d2d", "hffm_d2d_e8"], "latency_s"))
    claim("edge-only variants are the least accurate", list(METHODS), lambda: below(edge, non_edge, "accuracy"))
    for e, (a, b) in {2: ("hffm_d2d", "hffm"), 8: ("hffm_d2d_e8", "hffm_e8")}.items():
        for key, what in (("energy_j", "energy"), ("latency_s", "latency")):
            claim(f"HF-FM + D2D has lower {what} than HF-FM at E_agg {e}", [a, b], lambda a=a, b=b, key=key: (
                m(a, key) < m(b, key), f"{a} {m(a, key):.4g} vs {b} {m(b, key):.4g}"))
        claim(f"HF-FM + D2D is as accurate as HF-FM at E_agg {e} (within noise)", [a, b],
              lambda a=a, b=b: equal_accuracy(table[a]["accuracy"], table[b]["accuracy"], a, b))
    return out


def equal_accuracy(x: dict[str, float], y: dict[str, float], a: str, b: str) -> tuple[bool, str]:
    """|difference of means| <= max(EQUAL_FLOOR, 2 standard errors of the difference)."""
    diff = x["mean"] - y["mean"]
    se = math.sqrt(x["std"] ** 2 / x["n"] + y["std"] ** 2 / y["n"])
    tol = max(EQUAL_FLOOR, 2 * se)
    return abs(diff) <= tol, f"{a} - {b} = {diff:+.4f} (tolerance {tol:.4f} = max({EQUAL_FLOOR}, 2 SE))"


def _pm(stat: dict[str, float], scale: float = 1.0, digits: int = 3) -> str:
    return f"{stat['mean'] * scale:.{digits}g} ± {stat['std'] * scale:.2g}"


def write_table(results: dict, path: Path) -> Path:
    """table.md: per preset, ours (mean ± std over seeds) beside the published row, then the claims."""
    st = results["settings"]
    lines = ["# The paper's comparison on the built-in benchmark", "",
             f"Command: `{results['command']}`  ", f"Machine: {results['machine']}  ",
             f"Seeds {st['seeds']}, {st['rounds']} edge rounds, overrides `{' '.join(st['overrides'])}`.  ",
             f"Sweep wall time {results['sweep_wall_s'] / 60:.1f} min "
             f"(training runs {results['run_wall_s_total'] / 60:.1f} min, cached runs count their original time).", "",
             "Ours: latency and energy are means over rounds of the loop's ledger (s and J per edge round); "
             "accuracy is the headline `accuracy` (device models on the global test set, mean over "
             "classification tasks) after the last round; edge-tier accuracy is the mean of `edge/<task>/acc`. "
             "Each cell is mean ± std over seeds. Published: the prototype's table (its energy column is "
             "labelled kJ but holds J/1000 of a mislabelled column; see docs/network-model.md).", ""]
    for preset, rows in results["table"].items():
        lines += [f"## Preset `{preset}`", "",
                  "| method | latency (s/round) | energy (J/round) | accuracy (%) | edge-tier acc (%) "
                  "| published latency (s) | published energy | published acc (%) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for method, row in rows.items():
            pub = PUBLISHED[method]
            lines.append(f"| {results['labels'][method]} | {_pm(row['latency_s'])} | {_pm(row['energy_j'])} | "
                         f"{_pm(row['accuracy'], 100)} | {_pm(row['edge_accuracy'], 100)} | "
                         f"{pub[0]:.2f} | {pub[1]:.2f} | {pub[2]:.2f} |")
        lines += ["", "Published ordering, checked on these means:", ""]
        lines += [f"- **{c['status']}** {c['claim']}: {c['detail']}" for c in results["claims"][preset]]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def mean_curve(records: list[dict]) -> list[dict[str, float]]:
    """Seed-mean history at the evaluated rounds: accuracy and cumulative latency and energy."""
    rounds = [i for i, h in enumerate(records[0]["history"]) if "accuracy" in h]
    rows = []
    for i in rounds:
        hs = [r["history"][i] for r in records if "accuracy" in r["history"][i]]
        rows.append({"round": float(i + 1)} | {
            k: float(np.mean([h[k] for h in hs])) for k in ("accuracy", "cost/cum_latency_s", "cost/cum_energy_j")})
    return rows


def write_plots(results: dict, out: Path) -> list[Path]:
    """accuracy_vs_cost_<preset>.png (hffm.plots, seed means) and accuracy_vs_cost.png (all presets, ±std, log x)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hffm.plots import plot_accuracy_vs_cost

    paths = []
    presets = list(results["runs"])
    fig = Figure(figsize=(11, 4 * len(presets)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(presets), 2, squeeze=False)
    for row, preset in enumerate(presets):
        curves = {results["labels"][m]: mean_curve(rs) for m, rs in results["runs"][preset].items()}
        p = plot_accuracy_vs_cost(curves, out / f"accuracy_vs_cost_{preset}.png")
        paths += [p] if p is not None else []
        for ax, key, label in zip(axes[row], ("cost/cum_latency_s", "cost/cum_energy_j"),
                                  ("cumulative latency (s)", "cumulative energy (J)")):
            for method, rs in results["runs"][preset].items():
                idx = [i for i, h in enumerate(rs[0]["history"]) if "accuracy" in h]
                x = np.array([[r["history"][i][key] for i in idx] for r in rs])
                y = np.array([[r["history"][i]["accuracy"] * 100 for i in idx] for r in rs])
                ax.errorbar(x.mean(0), y.mean(0), xerr=x.std(0), yerr=y.std(0), marker="o", ms=3, capsize=2,
                            label=results["labels"][method])
            ax.set(xscale="log", xlabel=label, ylabel="accuracy (%)", title=f"preset {preset}: accuracy vs {label}")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize="x-small")
    fig.savefig(out / "accuracy_vs_cost.png", dpi=110)
    return [*paths, out / "accuracy_vs_cost.png"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--rounds", type=int, default=16, help="edge rounds per run (default 16)")
    p.add_argument("--presets", default="default,prototype", help=f"network presets among {PRESETS}")
    p.add_argument("--methods", default=",".join(METHODS), help=f"methods among {list(METHODS)}")
    p.add_argument("--out", default="experiments/results/paper_table", help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (2 edges x 2 devices)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Hydra override for every run (repeatable), e.g. --set federation.local_steps=5")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    args = p.parse_args(argv)
    args.seed_list = [_int("--seeds", s) for s in args.seeds.split(",") if s.strip()]
    args.preset_list = [s.strip() for s in args.presets.split(",") if s.strip()]
    args.method_list = [s.strip() for s in args.methods.split(",") if s.strip()]
    bad = [s for s in args.preset_list if s not in PRESETS]
    if bad or not args.preset_list:
        p.error(f"--presets {args.presets!r}: choose among {list(PRESETS)}")
    bad = [m for m in args.method_list if m not in METHODS]
    if bad or not args.method_list:
        p.error(f"--methods: unknown {bad}; choose among {list(METHODS)}")
    if not args.seed_list:
        p.error("--seeds: give at least one seed, e.g. --seeds 0,1,2")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    for s in args.sets:
        if "=" not in s:
            p.error(f"--set {s!r}: expected KEY=VALUE (a Hydra override)")
    return args


def _int(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SystemExit(f"{flag}: {text!r} is not an integer seed") from None


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the sweep, write results.json, table.md and the plots; returns the results dict."""
    import torch

    args = parse_args(argv)
    engine_commit()  # digest the sources now: a record names the code that ran, not what the files hold later
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = [*(QUICK if args.quick else FULL), *args.sets]
    tic = time.perf_counter()
    runs: dict[str, dict[str, list[dict]]] = {}
    total = len(args.preset_list) * len(args.method_list) * len(args.seed_list)
    done = 0
    for preset in args.preset_list:
        for method in args.method_list:
            for seed in args.seed_list:
                cache = out / "runs" / preset / f"{method}_s{seed}.json"
                record = run_one(method, preset, seed, args.rounds, overrides, cache)
                runs.setdefault(preset, {}).setdefault(method, []).append(record)
                done += 1
                s = summarize_run(record)
                print(f"[{done}/{total}] {preset:9s} {method:13s} seed {seed}: latency {s['latency_s']:.3f} s/round "
                      f"energy {s['energy_j']:.3f} J/round accuracy {s['accuracy']:.4f} "
                      f"({s['wall_s']:.0f} s)", flush=True)
    table = {p: {m: aggregate([summarize_run(r) for r in rs]) for m, rs in ms.items()} for p, ms in runs.items()}
    claims = {p: check_claims(table[p]) for p in table}
    results = {
        "command": "python experiments/paper_table.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {"seeds": args.seed_list, "rounds": args.rounds, "presets": args.preset_list,
                     "methods": args.method_list, "overrides": overrides, "quick": args.quick},
        "machine": f"2-core CPU container, shared ({platform.machine()}, torch threads {args.threads})",
        "sweep_wall_s": time.perf_counter() - tic,
        "run_wall_s_total": float(sum(r["wall_s"] for ms in runs.values() for rs in ms.values() for r in rs)),
        "labels": METHODS,
        "table": table,
        "claims": claims,
        "runs": runs,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write_table(results, out / "table.md")
    write_plots(results, out)
    for preset, cs in claims.items():
        for c in cs:
            print(f"{preset:9s} {c['status']:4s} {c['claim']}: {c['detail']}")
    return results


if __name__ == "__main__":
    main()
