"""Trace the robust defense's evidence, device by device and round by round, and replay trust rules on it.

    .venv/bin/python experiments/defense_trace.py --seeds 0,1,2 --attacks clean,labelflip --fraction 0.3 --out /tmp/tr
    .venv/bin/python experiments/defense_trace.py --replay /tmp/tr
    .venv/bin/python experiments/defense_trace.py --replay experiments/results/robustness/trace_9449eac --scorings
    .venv/bin/python experiments/defense_trace.py --method hffm_d2d_e8 --seeds 0 --attacks clean --out /tmp/tr
    .venv/bin/python experiments/defense_trace.py --summary /tmp/tr/default_hffm_d2d_e8_clean_s0.json

A run is the robustness study's cell (experiments/robustness.py: 40 devices, tiny model, 16 rounds, rule mean,
``defense=robust``) with the defense's functions wrapped to record, for every wave: each device's pooled direction
cosine and evidence, its median norm ratio, its validation score, its trust after the round, and whether it is an
attacker. ``--replay`` applies trust rules to the recorded evidence offline (the trajectory of a run under another
rule differs, the evidence's distribution much less): the share of honest and of attacker device-rounds each rule
would leave out. ``--method`` traces a paper-table run instead (experiments/paper_table.py's config of that method,
``--preset`` and seed; each device's edge and the edge and cloud defense's drops and clips are recorded too);
``--summary`` says which honest devices a trace left out, by which evidence, and how much of the evidence's spread
lies between edges. A diagnostic: the measured accuracies come from experiments/robustness.py and paper_table.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


TRACED = ("cos", "ratio", "dir", "score", "tasks", "tasks_all", "tasks_held", "tasks_big")
"""What a wave records: pooled cosines, norm ratios, direction evidence, validation scores (mean and per task, as the
run scored them; every sample alike; by the device's label shares; with --reference, on the large fresh set)."""


def trace_run(seed: int, attack: str, fraction: float, sets: Sequence[str], method: str | None = None,
              preset: str = "default", rounds: int = 16, reference: int = 0) -> list[dict[str, Any]]:
    """One robustness cell's waves (or, with ``method``, one paper-table run's: experiments/paper_table.py's
    config of that method, preset and seed): a list of {round, devices: {device: {...}}}."""
    import torch
    from robustness import BASE, compose

    import hffm.federation.defense as defense_mod
    import hffm.federation.loop as loop_mod
    import hffm.federation.validation as validation_mod
    from hffm.federation.loop import run_federation
    from hffm.run import make_fabric, make_world

    overrides = [*BASE, f"seed={seed}", "federation.rounds=16", "federation.eval_every=16", "federation.rule=mean",
                 "defense=robust", *sets]
    if method is not None:
        from paper_table import FULL, run_overrides

        overrides = [*run_overrides(method, preset, seed, rounds, FULL), *sets]
    if attack != "clean":
        overrides += [f"faults.attack={attack}", f"faults.attack_fraction={fraction}", "faults.attack_scale=10"]
    waves: list[dict[str, Any]] = []
    now: dict[str, Any] = {"round": 0, "attackers": []}
    wave: dict[str, Any] = {}
    originals = (defense_mod.pooled_cosines, defense_mod.scale_outliers, defense_mod.direction_evidence,
                 loop_mod.task_evidence, loop_mod.judge_devices, loop_mod.defend, validation_mod.task_gains,
                 loop_mod.validation_task_scores)
    events: list[dict[str, Any]] = []
    gains: list[tuple[dict[str, float], dict[str, float]]] = []

    def both(before, after, targets, shares=None):  # noqa: ANN001, ANN202
        got = originals[6](before, after, targets), originals[6](before, after, targets, shares or {})
        gains.append(got)
        return got[now["by_class"]]

    def scoring(fabric, bank, candidates, data, packed=True, by_class=False, infer_shares=False):  # noqa: ANN001, ANN202
        now["by_class"] = by_class  # the run's choice; both scores are recorded
        if big is not None:
            wave["tasks_big"] = originals[7](fabric, bank, candidates, big, packed, by_class=False)
            gains.clear()
        return originals[7](fabric, bank, candidates, data, packed, by_class=True)

    def cosines(terms):  # noqa: ANN001, ANN202
        out = originals[0](terms)
        wave["cos"] = out
        return out

    def outliers(ratios, band):  # noqa: ANN001, ANN202
        by: dict[int, list[float]] = {}
        for m in ratios.values():
            for n, r in m.items():
                by.setdefault(n, []).append(r)
        wave["ratio"] = {n: statistics.median(r) for n, r in by.items()}
        return originals[1](ratios, band)

    def direction(cos):  # noqa: ANN001, ANN202
        out = originals[2](cos)
        wave["dir"] = dict(out)  # a copy: judge_devices lowers ``out`` in place to the validation evidence
        return out

    def validation(scores, spread, by_task):  # noqa: ANN001, ANN202
        wave["score"] = {d: statistics.mean(g.values()) if g else 0.0 for d, g in scores.items()}
        wave["tasks"] = {d: dict(g) for d, g in scores.items()}
        wave["tasks_all"] = {d: g[0] for d, g in zip(scores, gains)}  # every sample, and by the device's classes
        wave["tasks_held"] = {d: g[1] for d, g in zip(scores, gains)}
        gains.clear()
        return originals[3](scores, spread, by_task)

    def judge(batches, cfg, agreed, memory, validated=None):  # noqa: ANN001, ANN202
        out = originals[4](batches, cfg, agreed, memory, validated)
        senders = sorted({u.node for updates, _ in batches for u in updates})
        waves.append({"round": now["round"], "senders": senders, "trust": {n: memory.trust.get(n) for n in senders},
                      **{k: wave.get(k, {}) for k in TRACED}})
        wave.clear()
        return out

    def defend(updates, reference, cfg, agreed, untrusted=None, untrusted_tasks=None):  # noqa: ANN001, ANN202
        out = originals[5](updates, reference, cfg, agreed, untrusted, untrusted_tasks)
        tier = "edge" if untrusted is not None else "cloud"
        clipped = [u.node for u in out.kept if not any(u.state is v.state for v in updates)]
        events.append({"round": now["round"], "tier": tier, "sent": len(updates), "kept": len(out.kept),
                       "dropped": [[r.node, r.module, r.reason] for r in out.dropped], "clipped": clipped})
        return out

    def logger(metrics, step, plan, outcome) -> None:  # noqa: ANN001
        now["round"] += 1
        kept = {k: v for k, v in metrics.items() if k.startswith(("defense/", "faults/"))}
        now.setdefault("metrics", []).append(kept)
        now["attackers"] = sorted(int(a) for a in outcome.faults.attackers)

    defense_mod.pooled_cosines, defense_mod.scale_outliers = cosines, outliers
    defense_mod.direction_evidence = direction
    loop_mod.task_evidence, loop_mod.judge_devices, loop_mod.defend = validation, judge, defend
    validation_mod.task_gains, loop_mod.validation_task_scores = both, scoring
    try:
        cfg = compose(overrides)
        torch.manual_seed(cfg.seed)
        world = make_world(cfg)
        big = None
        if reference:  # a large fresh set (another seed stream) to see what the small set's scores stand for
            import dataclasses

            big = validation_mod.server_validation_set(cfg.data.benchmark, cfg.data.source, cfg.seed + 7919,
                                                       dataclasses.replace(cfg.defense, validation_samples=reference))
        edge = world.topology.device_edge
        devices = {d: {"modalities": list(p.modalities), "tasks": list(p.tasks), "samples": int(world.num_samples[d]),
                       "edge": int(edge[d])} for d, p in enumerate(world.parts)}
        result = run_federation(make_fabric(cfg), world, cfg, loggers=[logger])
    finally:
        (defense_mod.pooled_cosines, defense_mod.scale_outliers, defense_mod.direction_evidence,
         loop_mod.task_evidence, loop_mod.judge_devices, loop_mod.defend, validation_mod.task_gains,
         loop_mod.validation_task_scores) = originals
    for w in waves:
        w["attackers"] = now["attackers"]
    return [{"accuracy": result.history[-1].get("accuracy"), "overrides": overrides,
             "metrics": now.get("metrics", []), "devices": devices, "events": events}, *waves]


# ---- replay ---------------------------------------------------------------------------------------------------

def _robust_z(scores: dict[int, float]) -> dict[int, float]:
    """Device -> (score - the wave's median) / its MAD (empty with fewer than 3 scores or no spread)."""
    if len(scores) < 3:
        return {}
    center = statistics.median(scores.values())
    mad = statistics.median(abs(s - center) for s in scores.values())
    return {d: (s - center) / mad for d, s in scores.items()} if mad > 0 else {}


def _task_z(wave: dict[str, Any], key: str = "tasks") -> dict[int, float]:
    """Device -> its per-task deviations (in MADs of the devices of the same task) averaged over its tasks."""
    by: dict[str, dict[int, float]] = {}
    for d, gains in wave[key].items():
        for task, g in gains.items():
            by.setdefault(task, {})[int(d)] = g
    z: dict[int, list[float]] = {}
    for scores in by.values():
        for d, v in _robust_z(scores).items():
            z.setdefault(d, []).append(v)
    return {d: statistics.mean(v) for d, v in z.items()}


def evidence(wave: dict[str, Any], spread: float, by_task: bool, direction: bool, band: float = 2.0,
             score: str = "score", against_only: bool = False) -> tuple[dict[int, float], set[int]]:
    """(device -> its evidence, the scale outliers) as ``judge_devices`` computes them from the recorded wave.
    ``score``: the validation score the run used ('score'), or one recorded beside it, averaged over the device's
    tasks ('tasks_all': every sample alike; 'tasks_held': by the device's label shares). ``against_only``: the
    direction evidence recomputed from the pooled cosines as ``agreement.direction_evidence`` does since ccdfdf2
    (1 at a cosine >= 0, else the cosine relative to the median, down to -1), not as recorded."""
    ev = {int(n): e for n, e in wave["dir"].items()} if direction else {}
    if direction and against_only and wave["dir"]:  # "dir" is empty where the wave had no shared direction
        cos = {int(n): c for n, c in wave["cos"].items()}
        median = statistics.median(cos.values())
        ev = {n: 1.0 if c >= 0 else max(-1.0, c / median) for n, c in cos.items()}
    if by_task:
        z = _task_z(wave, "tasks" if score == "score" else score)
    else:
        z = _robust_z({int(n): s for n, s in wave["score"].items()} if score == "score" else
                      {int(d): statistics.mean(g.values()) if g else 0.0 for d, g in wave[score].items()})
    for n, v in z.items():
        ev[n] = min(max(-1.0, min(1.0, 1.0 + v / spread)), ev.get(n, 1.0))
    outliers = {int(n) for n, r in wave["ratio"].items() if not 1 / band <= r <= band}
    return ev | dict.fromkeys(outliers, -1.0), outliers


def replay(waves: list[dict[str, Any]], spread: float, by_task: bool, direction: bool, decay: float,
           min_trust: float, score: str = "score", against_only: bool = False) -> dict[str, float]:
    """Shares of honest and of attacker device-waves left out under a trust rule (scale outliers at once)."""
    trust: dict[int, float] = {}
    sent, out = {"honest": 0, "attacker": 0}, {"honest": 0, "attacker": 0}
    for w in waves:
        ev, outliers = evidence(w, spread, by_task, direction, score=score, against_only=against_only)
        for n, e in ev.items():
            trust[n] = decay * trust.get(n, 1.0) + (1 - decay) * e
        bad = set(w["attackers"])
        for n in w["senders"]:
            side = "attacker" if n in bad else "honest"
            sent[side] += 1
            out[side] += n in outliers or (n in trust and trust[n] < min_trust)
    return {k: out[k] / sent[k] for k in sent if sent[k]}


SCORINGS = (("every sample, direction as recorded (the record to 15a0d12)", "tasks_all", False),
            ("held classes, direction as recorded (15a0d12)", "tasks_held", False),
            ("held classes, direction evidence only against the others (ccdfdf2, the record)", "tasks_held", True))


def scorings(runs: dict[str, list[dict[str, Any]]], spread: float = 1.5, decay: float = 0.6,
             min_trust: float = -0.25) -> list[str]:
    """The validation scores and direction evidences of ``SCORINGS`` replayed with the record's trust on traces
    that record both scores (made since 15a0d12): honest device-waves left out of the clean runs and of the attack
    runs, and attackers', as Markdown rows."""
    lines = ["| scoring | honest left out (clean runs) | honest left out (attack runs) | attackers left out |",
             "|" + " --- |" * 4]
    for name, score, against in SCORINGS:
        got = {n: replay(t[1:], spread, False, True, decay, min_trust, score, against) for n, t in runs.items()}
        cells = [[g["honest"] for n, g in got.items() if "attacker" not in g],
                 [g["honest"] for g in got.values() if "attacker" in g], [g["attacker"] for g in got.values()
                                                                          if "attacker" in g]]
        lines.append(f"| {name} | " + " | ".join(f"{100 * statistics.mean(c):.1f} %" if c else "-" for c in cells)
                     + " |")
    return lines


def summary(trace: list[dict[str, Any]], min_trust: float, band: float = 2.0, spread: float = 1.5) -> list[str]:
    """Which honest device-waves one trace left out (trust below ``min_trust`` after the wave, or a scale outlier),
    by which evidence (direction: the pooled cosine relative to the wave's median; validation: the score's MADs
    below the wave's median), the devices left out most, and the share of each evidence's spread that lies between
    the edges (with no edge effect about (edges - 1) / (devices - 1))."""
    head, waves = trace[0], trace[1:]
    devices = head["devices"]
    sent = left = 0
    by_evidence = {"direction": 0, "validation": 0, "both": 0, "scale": 0, "neither": 0}
    per_device: dict[int, int] = {}
    shares = {"cos": [0.0, 0.0], "z": [0.0, 0.0]}
    for w in waves:
        bad = set(w["attackers"])
        cos = {int(n): c for n, c in w["cos"].items()}
        median = statistics.median(cos.values()) if cos else 0.0
        z = _robust_z({int(n): s for n, s in w["score"].items()})
        for n in w["senders"]:
            if n in bad:
                continue
            sent += 1
            trust = w["trust"].get(str(n))
            outlier = not 1 / band <= w["ratio"].get(str(n), 1.0) <= band
            if not (outlier or (trust is not None and trust < min_trust)):
                continue
            left += 1
            per_device[n] = per_device.get(n, 0) + 1
            low_dir = median >= 0.02 and n in cos and cos[n] < 0
            low_val = z.get(n, 0.0) < -spread  # validation evidence below 0
            key = "scale" if outlier else "both" if low_dir and low_val else "direction" if low_dir else (
                "validation" if low_val else "neither")
            by_evidence[key] += 1
        if "edge" in next(iter(devices.values()), {}):
            for name, values in (("cos", cos), ("z", z)):
                if len(values) < 2:
                    continue
                mean = statistics.mean(values.values())
                edges: dict[int, list[float]] = {}
                for n, v in values.items():
                    edges.setdefault(devices[str(n)]["edge"], []).append(v)
                for vs in edges.values():
                    shares[name][0] += sum((v - mean) ** 2 for v in vs)
                    shares[name][1] += len(vs) * (statistics.mean(vs) - mean) ** 2
    lines = [f"accuracy {head['accuracy']:.4f}; honest device-waves left out: {left} of {sent} "
             f"({100 * left / max(sent, 1):.1f} %); in waves with evidence below 0 (this wave's, not the trust's) by "
             + ", ".join(f"{k} {v}" for k, v in by_evidence.items())]
    for n, k in sorted(per_device.items(), key=lambda x: -x[1])[:8]:
        d = devices[str(n)]
        lines.append(f"  device {n}: left out {k} of {len(waves)} waves; edge {d.get('edge', '?')}, "
                     f"{'+'.join(d['modalities'])}, tasks {'+'.join(d['tasks'])}, {d['samples']} samples")
    for name, (total, between) in shares.items():
        if total > 0:
            lines.append(f"  between-edge share of the {'pooled cosine' if name == 'cos' else 'validation z'}'s "
                         f"spread: {between / total:.2f}")
    events = head.get("events", [])
    for tier in ("edge", "cloud"):
        got = [e for e in events if e["tier"] == tier]
        if got:
            dropped, clipped = sum(len(e["dropped"]) for e in got), sum(len(e["clipped"]) for e in got)
            sent_here = sum(e["sent"] for e in got)
            lines.append(f"  {tier} defense: {sent_here} updates, {dropped} dropped, {clipped} clipped")
    return lines


def frontier(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every rule of a small grid (validation spread, by task, direction evidence on/off, decay, min_trust) replayed
    on every run: honest left out (mean over all runs) and attackers left out (mean over the attack runs); the
    rules no other rule beats on both, as Markdown rows."""
    import itertools

    rows = []
    for spread, by_task, direction, decay, min_trust in itertools.product(
            (1.5, 2.0, 3.0), (False, True), (True, False), (0.5, 0.6, 0.75, 0.85), (0.25, 0.0, -0.25)):
        got = [replay(w[1:], spread, by_task, direction, decay, min_trust) for w in runs.values()]
        honest = statistics.mean(g["honest"] for g in got)
        attackers = [g["attacker"] for g in got if "attacker" in g]
        rows.append((honest, -statistics.mean(attackers) if attackers else 0.0,
                     (spread, by_task, direction, decay, min_trust)))
    lines, best = ["| validation_spread | by task | direction | trust_decay | min_trust | honest left out | "
                   "attackers left out |", "|" + " --- |" * 7], 1.0
    for honest, neg, rule in sorted(rows):
        if neg < best:
            best = neg
            lines.append("| " + " | ".join(str(x) for x in rule) + f" | {100 * honest:.1f} % | {-100 * neg:.1f} % |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0")
    p.add_argument("--attacks", default="clean,labelflip")
    p.add_argument("--fraction", type=float, default=0.3)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--out", default="/tmp/defense_trace")
    p.add_argument("--method", default=None, help="trace a paper-table run of this method (experiments/paper_table.py)"
                   " instead of the robustness cell; --attacks clean")
    p.add_argument("--preset", default="default", help="with --method: the network preset")
    p.add_argument("--replay", default=None, help="a folder of traces: replay a grid of trust rules on them")
    p.add_argument("--reference", type=int, default=0, help="also score every device on this many fresh samples "
                   "(another seed stream; recorded as tasks_big)")
    p.add_argument("--scorings", action="store_true", help="with --replay: the validation scores and direction "
                   "evidences of SCORINGS under the record's trust, not the grid")
    p.add_argument("--summary", nargs="*", default=None, help="trace files: the honest devices each left out")
    p.add_argument("--min-trust", type=float, default=-0.25, help="with --summary: the run's defense.min_trust")
    args = p.parse_args(argv)
    if args.summary:
        for f in args.summary:
            print(f"{f}:", "\n".join(summary(json.loads(Path(f).read_text()), args.min_trust)))
        return
    if args.replay:
        runs = {f.stem: json.loads(f.read_text()) for f in sorted(Path(args.replay).glob("*.json"))}
        if args.scorings:
            print("\n".join(scorings(runs)))
            return
        for name, tr in runs.items():
            now = replay(tr[1:], 1.5, False, True, 0.5, 0.25)
            recorded = {k: statistics.mean(1.0 * (w["trust"].get(str(n)) is not None and w["trust"][str(n)] < 0.25)
                                           for w in tr[1:] for n in w["senders"] if (n in w["attackers"]) == (k == "a"))
                        for k in ("h", "a") if any((n in w["attackers"]) == (k == "a") for w in tr[1:]
                                                   for n in w["senders"])}
            print(f"{name}: accuracy {tr[0]['accuracy']:.4f}; the record's rule replayed: "
                  + ", ".join(f"{k} {100 * v:.1f} % left out" for k, v in now.items()) + f" (recorded {recorded})")
        print("\n".join(frontier(runs)))
        return
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        for attack in args.attacks.split(","):
            got = trace_run(seed, attack, args.fraction, args.set, args.method, args.preset, reference=args.reference)
            tag = attack if attack == "clean" else f"{attack}{round(100 * args.fraction)}"
            tag = tag if args.method is None else f"{args.preset}_{args.method}_{tag}"
            (out / f"{tag}_s{seed}.json").write_text(json.dumps(got))
            print(f"{tag} seed {seed}: accuracy {got[0]['accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
