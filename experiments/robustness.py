"""Robustness study: aggregation rules x defenses x attacks at 0 / 20 / 30 % attackers, and a fault scenario.

    .venv/bin/python experiments/robustness.py                 # docs/faults-and-security.md's table (40 devices)
    .venv/bin/python experiments/robustness.py --rules mean --defenses robust,none   # a subset of the grid
    .venv/bin/python experiments/robustness.py --quick --out /tmp/rb   # a smoke run (4 devices, 1 round)

Every run is ``hffm-train experiment=hffm`` on the default 40-device topology (10 edges x 4 devices) with
the tiny model and small data, composed from conf/ and trained by ``hffm.run.train``. Attack runs use
direct uploads (``federation.d2d=none``: each device's update reaches the edge's rule alone); the fault
scenario uses the D2D tree (its parents are the relays that fail), ``faults=scenario`` (20 % dropout, about
one relay failure and one edge outage every 10 rounds, re-attach on) and a ``federation.deadline_s`` set at
the 90th percentile of every device's update arrival on the ledger's timeline of the clean rounds (so it
cuts the slowest 10 % of a clean round). Each run's final accuracy is compared with the clean run of the
same rule and defense; a run also records whether any non-finite value reached the edge or cloud states, and
which share of the honest devices' and of the attackers' updates the defense accepted (``Acceptance``).

Writes into ``--out``: runs/<name>_s<seed>.json (one per run and seed, reused when rerun with the same overrides
by the same code, ``code_version.code_hash``, so an interrupted sweep resumes but an edit makes every run again),
results.json (all of them) and table.md (cells: means over ``--seeds``; then the clean runs seed by seed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RULES = ("mean", "median", "trimmed_mean", "clip")
DEFENSES = ("robust", "none")
ATTACKS = ("ipm", "alie", "labelflip", "signflip", "scale", "nan", "inf", "random", "labelflip_misreport")
STUDIED = ("ipm", "alie", "labelflip", "signflip", "scale", "nan")
FRACTIONS = (0.2, 0.3)
BASE = ["experiment=hffm", "topology=default", "model=tiny", "data=benchmark", "data.benchmark.num_samples=1200",
        "federation.local_steps=2", "federation.batch_size=32", "logger=none", "progress=none", "plots=false"]
QUICK = ["topology.num_edges=2", "topology.devices_per_edge=2", "data.benchmark.num_samples=300",
         "federation.local_steps=1", "federation.batch_size=16"]
DEADLINE_QUANTILE = 0.9
KEEP = ("accuracy", "cost/cum_latency_s", "cost/cum_energy_j", "faults/cum_rejected_updates")


def compose(overrides: Sequence[str]) -> Any:
    from hydra.core.global_hydra import GlobalHydra

    from hffm.config import compose as hffm_compose

    GlobalHydra.instance().clear()
    return hffm_compose(*overrides)


def clean_deadline(overrides: Sequence[str], quantile: float = DEADLINE_QUANTILE) -> float:
    """The ``quantile`` of every device's update arrival (s into the round) over the clean run's rounds: the same
    channel draws (full participation), plans and ledger timeline the loop would use."""
    from hffm.federation.charging import upload_ends
    from hffm.federation.loop import tier_policy
    from hffm.federation.planning import plan_round
    from hffm.run import make_world

    cfg = compose(overrides)
    fed = cfg.federation
    world, policy = make_world(cfg), tier_policy(fed)
    rng = np.random.default_rng(cfg.seed)  # the loop's stream: one channel draw a round
    ends = []
    for _ in range(fed.rounds):
        channel = world.draw_channel(rng)
        plan = plan_round(world, channel, list(range(world.num_devices)), fed, policy, "none", {})
        ends += upload_ends(world, world.topology, channel, plan, fed, policy, frozenset(), {}).values()
    return float(np.quantile(ends, quantile))


def clean_update_norms(overrides: Sequence[str], rounds: int = 3) -> dict[str, tuple[float, float]]:
    """Module -> (smallest, largest) L2 norm of the honest device updates in ``rounds`` clean rounds, read from the
    screen's own rejections with a bound too small to pass anything: what to set ``federation.max_update_norm`` from."""
    import logging

    from hffm.federation.loop import run_federation
    from hffm.run import make_fabric, make_world

    cfg = compose([*overrides, f"federation.rounds={rounds}", f"federation.eval_every={rounds}",
                   "federation.max_update_norm=1e-12"])
    norms: dict[str, list[float]] = {}

    def grab(metrics, step, plan, outcome) -> None:  # noqa: ANN001 - the loop's logger signature
        for r in outcome.rejected:
            norms.setdefault(r.module, []).append(float(r.detail.split(" >")[0]))

    quiet, level = logging.getLogger("hffm"), logging.getLogger("hffm").level
    quiet.setLevel(logging.ERROR)  # one warning per rejected update otherwise
    try:
        run_federation(make_fabric(cfg), make_world(cfg), cfg, loggers=[grab])
    finally:
        quiet.setLevel(level)
    return {m: (min(v), max(v)) for m, v in sorted(norms.items())}


class Acceptance:
    """A loop logger: how many device updates of honest devices and of attackers were sent (not silent) and how many
    of them the defense dropped (at the edges; the edges' own updates at the cloud are not counted)."""

    def __init__(self) -> None:
        self.sent = {"honest": 0, "attacker": 0}
        self.dropped = {"honest": 0, "attacker": 0}

    def __call__(self, metrics, step, plan, outcome) -> None:  # noqa: ANN001 - the loop's logger signature
        bad, silent = set(outcome.faults.attackers), outcome.faults.silent
        who = lambda node: "attacker" if node in bad else "honest"  # noqa: E731
        for r in outcome.results:
            if r.device not in silent:
                self.sent[who(r.device)] += len(r.modules)
        for r in outcome.defended:
            self.dropped[who(r.node)] += 1

    def shares(self) -> dict[str, float | None]:
        """Share of each side's sent updates the defense accepted (None: that side sent nothing)."""
        return {f"{k}_accepted": (1 - self.dropped[k] / n if n else None) for k, n in self.sent.items()}


def cached_run(path: Path, overrides: Sequence[str], code: str) -> dict[str, Any] | None:
    """The run record at ``path`` if it was made with these overrides by this code (``code_version.code_hash``),
    else None: a result made by other code is never reused."""
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return saved if saved.get("overrides") == list(overrides) and saved.get("code") == code else None


def run_one(name: str, overrides: Sequence[str], cache: Path) -> dict[str, Any]:
    """Train one run (or reuse its cached record made with the same overrides)."""
    import torch
    from code_version import code_hash, commit

    from hffm.federation.loop import run_federation
    from hffm.run import make_fabric, make_world

    path = cache / f"{name}.json"
    saved = cached_run(path, overrides, code_hash())
    if saved is not None:
        return saved
    cfg = compose(overrides)
    tic, cpu = time.perf_counter(), time.process_time()
    counts = Acceptance()
    torch.manual_seed(cfg.seed)  # as hffm.run.train does before building the world
    result = run_federation(make_fabric(cfg), make_world(cfg), cfg, loggers=[counts])
    states = [*result.state.group_states, result.state.cloud_state]
    finite = all(bool(torch.isfinite(v).all()) for s in states for m in s.values() for v in m.values()
                 if v.is_floating_point())
    history = result.history
    faults = {k: float(sum(h.get(k, 0.0) for h in history)) for k in history[-1] if k.startswith("faults/")
              and "/cum_" not in k}
    record = {"name": name, "overrides": list(overrides), "final": {k: history[-1].get(k) for k in KEEP},
              "faults_total": faults, "rounds": len(history), "state_finite": finite, "acceptance": counts.shares(),
              "seconds": time.perf_counter() - tic, "cpu_seconds": time.process_time() - cpu,
              "code": code_hash(), "commit": commit()}
    path.write_text(json.dumps(record, indent=1))
    return record


def plan_runs(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(name, overrides) of every run, clean runs first, for every seed (a run's name ends in ``_s<seed>``)."""
    runs = []
    for seed in args.seeds:
        base = [*BASE, *(QUICK if args.quick else []), f"seed={seed}", *args.set]
        attack_base = [*base, f"federation.rounds={args.rounds}", f"federation.eval_every={args.rounds}"]
        for defense in args.defenses:
            for rule in args.rules:
                cell = [*attack_base, f"federation.rule={rule}", f"defense={defense}"]
                runs.append((f"{defense}_{rule}_clean_s{seed}", cell))
                for frac in args.fractions:
                    for attack in args.attacks:
                        runs.append((f"{defense}_{rule}_{attack}_{round(100 * frac)}_s{seed}", [
                            *cell, f"faults.attack={attack}", f"faults.attack_fraction={frac}",
                            f"faults.attack_scale={args.attack_scale}"]))
        scenario_base = [*base, "federation.d2d=tree", f"federation.rounds={args.scenario_rounds}",
                         f"federation.eval_every={args.scenario_rounds}"]
        deadline = clean_deadline(scenario_base) if args.scenario_rules and not args.table_only else math.nan
        for rule in args.scenario_rules:
            cell = [*scenario_base, f"federation.rule={rule}", f"defense={args.defenses[0]}"]
            runs.append((f"tree_{rule}_clean_s{seed}", cell))
            runs.append((f"tree_{rule}_scenario_s{seed}", [*cell, "faults=scenario",
                                                           f"federation.deadline_s={deadline:.6g}"]))
    return runs


def table(records: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    """Markdown: final accuracy (%), the mean over the seeds run, and its change from the same rule and defense's
    clean run over the same seeds, per rule x defense x attack x share (cells not run show as -); then the clean
    runs seed by seed, with each defense's cost against ``none``'s clean runs."""
    def seeds(*names: str) -> list[int]:  # the seeds every one of ``names`` was run with
        return [s for s in args.seeds if all(f"{n}_s{s}" in records for n in names)]

    def acc(name: str, over: Sequence[int]) -> float:
        return float(np.mean([100.0 * float(records[f"{name}_s{s}"]["final"]["accuracy"]) for s in over]))

    def cell(name: str, clean: str, mixed: bool = False) -> str:
        both = seeds(name, clean)
        if not both:
            return "-"
        mark = "" if all(records[f"{name}_s{s}"]["state_finite"] for s in both) else " **NaN/Inf in state**"
        many = f" [{len(both)} seeds]" if mixed and len(both) > 1 else ""
        return f"{acc(name, both):.1f} ({acc(name, both) - acc(clean, both):+.1f}){many}{mark}"

    def honest(name: str) -> float | None:
        got = [(records[f"{name}_s{s}"].get("acceptance") or {}).get("honest_accepted") for s in seeds(name)]
        got = [x for x in got if x is not None]
        return float(np.mean(got)) if got else None

    cols = [(a, f) for f in args.fractions for a in args.attacks]
    notes: set[str] = set()
    lines = ["| " + " | ".join(["defense", "rule", "clean", *(f"{a} {round(100 * f)} %" for a, f in cols),
                                "worst 20 %", "worst 30 %", "honest accepted: clean, lowest", "CPU s a run"]) + " |",
             "| " + " | ".join("---" for _ in range(len(cols) + 7)) + " |"]
    for defense in args.defenses:
        for rule in args.rules:
            clean = f"{defense}_{rule}_clean"
            if not seeds(clean):
                continue
            worst = []
            for frac in (0.2, 0.3):
                names = [f"{defense}_{rule}_{a}_{round(100 * frac)}" for a in args.attacks]
                drops = [acc(n, seeds(n, clean)) - acc(clean, seeds(n, clean)) for n in names if seeds(n, clean)]
                worst.append(f"{min(drops):+.1f}" if drops else "-")
            shares = [honest(n) for n in [clean, *(f"{defense}_{rule}_{a}_{round(100 * f)}" for a, f in cols)]
                      if seeds(n)]
            known = [x for x in shares if x is not None]
            accepted = (f"{100 * shares[0]:.0f} %, {100 * min(known):.0f} %" if known and shares[0] is not None
                        else "-")
            names = [f"{defense}_{rule}_{a}_{round(100 * f)}" for a, f in cols]
            cpus = [records[f"{n}_s{s}"]["cpu_seconds"] for n in [clean, *names] for s in seeds(n)]
            row_cpu = f"{np.mean(cpus):.1f}" if cpus else "-"  # the mean over every run of the row
            counts = {len(seeds(n, clean)) for n in names if seeds(n, clean)} | {len(seeds(clean))}
            mixed = len(counts) > 1  # cells made over different seeds: say which
            first = seeds(clean)[0]
            clean_cell = (f"{acc(clean, seeds(clean)):.1f}" if not mixed else
                          f"{acc(clean, seeds(clean)):.1f} [{len(seeds(clean))} seeds; seed {first}: "
                          f"{acc(clean, [first]):.1f}]")
            notes |= {"mixed"} if mixed else set()
            lines.append("| " + " | ".join([defense, rule, clean_cell, *(cell(n, clean, mixed) for n in names),
                                             worst[0], worst[1], accepted, row_cpu]) + " |")
    if notes:
        lines += ["", "Cells made over different seeds: each is the mean over the seeds it was run with ([n seeds] "
                  "where more than one, else the clean column's single seed) and its change from the clean runs "
                  "of those same seeds."]
    lines += ["", "| clean run: defense | rule | " + " | ".join(f"seed {s}" for s in args.seeds)
              + " | mean | cost vs none | honest accepted | CPU s |",
              "| --- | --- | " + " | ".join("---" for _ in args.seeds) + " | --- | --- | --- | --- |"]
    for defense in args.defenses:
        for rule in args.rules:
            clean, bare = f"{defense}_{rule}_clean", f"none_{rule}_clean"
            if not seeds(clean):
                continue
            per = " | ".join(f"{acc(clean, [s]):.1f}" if f"{clean}_s{s}" in records else "-" for s in args.seeds)
            both = seeds(clean, bare)
            cost = f"{acc(clean, both) - acc(bare, both):+.1f}" if both and defense != "none" else "-"
            share = honest(clean)
            cpu = np.mean([records[f"{clean}_s{s}"]["cpu_seconds"] for s in seeds(clean)])
            lines.append(f"| {defense} | {rule} | {per} | {acc(clean, seeds(clean)):.1f} | {cost} | "
                         f"{'-' if share is None else f'{100 * share:.0f} %'} | {cpu:.1f} |")
    if not args.scenario_rules:
        return "\n".join(lines) + "\n"
    lines += ["", f"| fault scenario (D2D tree, defense={args.defenses[0]}) | clean | scenario | dropped "
              "| late (deadline) | failed relays | down edges | re-attached |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rule in args.scenario_rules:
        clean, hit = f"tree_{rule}_clean", f"tree_{rule}_scenario"
        over = seeds(clean, hit)
        if not over:
            continue
        total = {k: float(np.mean([records[f"{hit}_s{s}"]["faults_total"][f"faults/{k}"] for s in over]))
                 for k in ("dropped", "stragglers", "failed_relays", "down_edges", "reattached")}
        lines.append(f"| {rule} | {acc(clean, over):.1f} | {cell(hit, clean)}"
                     f" | {total['dropped']:.0f} | {total['stragglers']:.0f} | {total['failed_relays']:.0f}"
                     f" | {total['down_edges']:.0f} | {total['reattached']:.0f} |")
    return "\n".join(lines) + "\n"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke sizes: 2 edges x 2 devices, 1-2 rounds, 2 rules")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "robustness"))
    p.add_argument("--seeds", default="0", help="comma-separated seeds; every run is made for each (default 0); "
                   "table cells are means over the seeds")
    p.add_argument("--seed", type=int, default=None, help="one seed (the same as --seeds SEED)")
    p.add_argument("--clean-only", action="store_true", help="only the clean runs (no attacks, no fault scenario)")
    p.add_argument("--rounds", type=int, default=None, help="rounds of the attack runs (default 16; quick 1)")
    p.add_argument("--scenario-rounds", type=int, default=None, help="rounds of the fault scenario (default 20)")
    p.add_argument("--attack-scale", type=float, default=10.0)
    p.add_argument("--attacks", default=None, help=f"comma-separated subset of {','.join(ATTACKS)}")
    p.add_argument("--fractions", default=None, help="comma-separated attacker shares (default 0.2,0.3)")
    p.add_argument("--rules", default=None, help=f"comma-separated subset of {','.join(RULES)}")
    p.add_argument("--defenses", default=None, help="comma-separated defenses of conf/defense (default robust,none)")
    p.add_argument("--norms", action="store_true", help="only print the honest update norms of 3 clean rounds")
    p.add_argument("--no-scenario", action="store_true", help="skip the fault scenario runs")
    p.add_argument("--table-only", action="store_true",
                   help="write results.json and table.md from the runs already in --out/runs (whatever code made "
                        "them: each record names its code hash and commit), running nothing")
    p.add_argument("--set", action="append", default=[], help="an extra Hydra override for every run")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 16)
    args.seeds = (args.seed,) if args.seed is not None else tuple(int(x) for x in args.seeds.split(","))
    args.scenario_rounds = args.scenario_rounds or (2 if args.quick else 20)
    args.rules = tuple(args.rules.split(",")) if args.rules else ("mean", "median") if args.quick else RULES
    args.defenses = tuple(args.defenses.split(",")) if args.defenses else ("robust",) if args.quick else DEFENSES
    args.attacks = tuple(args.attacks.split(",")) if args.attacks else ("ipm", "nan") if args.quick else STUDIED
    unknown = sorted(set(args.attacks) - set(ATTACKS))
    if unknown:
        p.error(f"--attacks: unknown {unknown}; choose among {list(ATTACKS)}")
    args.fractions = (tuple(float(f) for f in args.fractions.split(",")) if args.fractions
                      else (0.25,) if args.quick else FRACTIONS)
    if args.clean_only:
        args.fractions, args.no_scenario = (), True
    args.scenario_rules = () if args.no_scenario else ("mean",) if args.quick else (args.rules[0],)
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    import torch
    from code_version import code_hash

    torch.set_num_threads(1)
    code_hash()  # digest the sources now: a record names the code that ran, not what the files hold later
    args = parse(argv)
    if args.norms:
        base = [*BASE, *(QUICK if args.quick else []), f"seed={args.seeds[0]}", *args.set]
        found = clean_update_norms(base)
        for module, (lo, hi) in found.items():
            print(f"{module}: {lo:.3g} .. {hi:.3g}")
        return {"norms": found}
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    runs = plan_runs(args)
    for k, (name, overrides) in enumerate(runs):
        if args.table_only:
            path = out / "runs" / f"{name}.json"
            if path.exists():
                records[name] = json.loads(path.read_text())
            continue
        records[name] = run_one(name, overrides, out / "runs")
        r = records[name]
        print(f"[{k + 1}/{len(runs)}] {name}: accuracy {r['final']['accuracy']:.4f}, rejected "
              f"{r['final']['faults/cum_rejected_updates']:.0f}, finite {r['state_finite']}, {r['seconds']:.0f} s",
              flush=True)
        (out / "table.md").write_text(table(records, args))  # a partial table as the sweep goes
    md = table(records, args)
    from code_version import code_hash, commit

    settings = {"argv": list(sys.argv[1:] if argv is None else argv), "machine": platform.platform(),
                "python": platform.python_version(), "base": BASE, "quick": args.quick, "code": code_hash(),
                "commit": commit(), "cpus": os.cpu_count(),
                "runs_made_by": sorted({f"{r.get('code')} at {r.get('commit')}" for r in records.values()})}
    (out / "results.json").write_text(json.dumps({"settings": settings, "runs": records}, indent=1))
    (out / "table.md").write_text(md)
    print(md)
    made_by = sorted({f"{r.get('code', 'unknown')} at {r.get('commit', 'unknown')}" for r in records.values()})
    print(f"runs made by code {', '.join(made_by)}")
    bad = [n for n, r in records.items() if not math.isfinite(r["final"]["accuracy"] or math.nan)]
    if bad:
        print(f"runs with a non-finite accuracy: {bad}", file=sys.stderr)
    return {"records": records, "table": md}


if __name__ == "__main__":
    main()
