"""Calibrates ``defense.validation_classes=checked``: the distance between each device's reported class shares and
those its update's class-prior shift shows (``hffm.federation.validation.share_mismatch``), honest devices apart
from attackers, on the robustness study's 40-device config (experiments/robustness.py's ``BASE``).

    PYTHONPATH=$PWD .venv/bin/python experiments/share_check_probe.py --attacks labelflip_misreport,labelflip,none \
        --seeds 0 --out experiments/results/robustness/share_check/probe.json

Each run is the study's run with ``defense=robust`` and ``validation_classes=checked``; every scored device-task's
distance of every round is recorded (the loop's own ``validation_task_scores`` call, wrapped to keep its
``mismatches``), then summarised as quantiles and the share above each candidate threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from robustness import BASE, compose  # noqa: E402

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)


def probe(attack: str, fraction: float, seed: int, rounds: int, extra: Sequence[str]) -> dict[str, list[float]]:
    """Distances of one run: 'honest' and 'attacker' lists (one value per device, task and round scored)."""
    import hffm.federation.loop as loop
    from hffm.federation.faults import FaultsConfig, attackers
    from hffm.run import train

    overrides = [*BASE, f"seed={seed}", f"federation.rounds={rounds}", f"federation.eval_every={rounds}",
                 "federation.rule=mean", "defense=robust", "defense.validation_classes=checked", *extra]
    if attack != "none":
        overrides += [f"faults.attack={attack}", f"faults.attack_fraction={fraction}"]
    cfg = compose(overrides)
    real = loop.validation_task_scores
    seen: list[dict[int, dict[str, float]]] = []

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the real call, its distances kept
        out = real(*args, **kwargs)
        seen.append({d: dict(m) for d, m in (kwargs.get("mismatches") or {}).items()})
        return out

    loop.validation_task_scores = recording
    try:
        with tempfile.TemporaryDirectory() as folder:
            train(cfg, Path(folder) / "run")
    finally:
        loop.validation_task_scores = real
    bad = attackers(FaultsConfig(attack=attack, attack_fraction=fraction), 40, seed) if attack != "none" else set()
    out: dict[str, list[float]] = {"honest": [], "attacker": []}
    for wave in seen:
        for d, m in wave.items():
            out["attacker" if d in bad else "honest"].extend(m.values())
    return out


def summary(values: Sequence[float]) -> dict[str, object]:
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return {"n": 0}
    return {"n": len(v), "quantiles (0, 5, 25, 50, 75, 95, 100 %)":
            [round(float(q), 3) for q in np.quantile(v, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])],
            "share above": {str(t): round(float((v > t).mean()), 4) for t in THRESHOLDS}}


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--attacks", default="labelflip_misreport,labelflip,none")
    p.add_argument("--fraction", type=float, default=0.2)
    p.add_argument("--seeds", default="0")
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--set", action="append", default=[], help="an extra Hydra override for every run")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    report: dict[str, object] = {}
    for attack in args.attacks.split(","):
        pooled: dict[str, list[float]] = {"honest": [], "attacker": []}
        for seed in (int(s) for s in args.seeds.split(",")):
            got = probe(attack, args.fraction, seed, args.rounds, args.set)
            pooled["honest"] += got["honest"]
            pooled["attacker"] += got["attacker"]
        report[attack] = {k: summary(v) for k, v in pooled.items()}
        print(attack, json.dumps(report[attack], indent=1), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"argv": sys.argv[1:], "results": report}, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
