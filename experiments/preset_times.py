"""Seconds per round of every experiment preset, as `hffm-train experiment=NAME` runs it.

    .venv/bin/python experiments/preset_times.py --rounds 2 --out experiments/results/preset_times

Each preset runs ``--rounds`` rounds (evaluation every round included, as by default) in this process
with the preset's own settings plus ``threads=`` each value of ``--threads``; the table reports the mean
of ``time/round_s`` over the rounds after the first (the first also pays one-off costs), or the first
round's time with ``--rounds 1``. Writes ``times.json`` and ``README.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from hffm.config import compose
from hffm.run import train


def presets() -> list[str]:
    return sorted(p.name[:-5] for p in (files("hffm.conf") / "experiment").iterdir() if p.name.endswith(".yaml"))


def time_preset(name: str, rounds: int, threads: int, extra: list[str]) -> dict:
    overrides = [f"experiment={name}", f"federation.rounds={rounds}", f"threads={threads}", "progress=none",
                 "plots=false", "logger=none", *extra]
    cfg = compose(*overrides)
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="preset_times_") as tmp:
        result = train(cfg, tmp)
    wall = time.perf_counter() - tic
    per_round = [h["time/round_s"] for h in result.history]
    steady = per_round[1:] or per_round
    return {"preset": name, "threads": threads, "devices": result.history[-1]["participants"],
            "model": cfg.model.width, "seconds_per_round": sum(steady) / len(steady), "first_round_s": per_round[0],
            "wall_s": wall, "accuracy": result.history[-1].get("accuracy")}


def markdown(rows: list[dict], machine: str) -> str:
    lines = ["# Seconds per round of each preset", "", f"Machine: {machine}.", "",
             "| preset | threads | devices | s / round | first round (s) |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| `{r['preset']}` | {r['threads']} | {r['devices']:.0f} | {r['seconds_per_round']:.1f} | "
                     f"{r['first_round_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", default="1", help="comma-separated torch thread counts to time")
    p.add_argument("--presets", default=",".join(presets()))
    p.add_argument("--out", default="experiments/results/preset_times")
    p.add_argument("--machine", default=f"{platform.machine()} CPU, {os.cpu_count()} cores")
    p.add_argument("extra", nargs="*", help="more Hydra overrides for every run")
    args = p.parse_args(argv)
    rows = []
    for name in args.presets.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            rows.append(time_preset(name, args.rounds, threads, args.extra))
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "times.json").write_text(json.dumps({"machine": args.machine, "command": " ".join(sys.argv), "rows": rows},
                                               indent=1))
    (out / "README.md").write_text(markdown(rows, args.machine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
