"""Metrics as files in the run directory: metrics.csv (one row a round) and metrics.json."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path


class FileLogger:
    """Appends each round's metrics; the CSV is rewritten when a later round brings new columns."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, float]] = []

    def __call__(self, metrics: dict[str, float], step: int, plan: object = None, outcome: object = None) -> None:
        self.rows.append({"step": step, **metrics})
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        with open(self.dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        finite = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
        clean = [{k: finite(v) for k, v in r.items()} for r in self.rows]
        (self.dir / "metrics.json").write_text(json.dumps(clean, indent=1))
