"""Metrics as files in the run directory: metrics.csv (one row a round) and metrics.json."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from hffm.safe_io import atomic_write_text


class FileLogger:
    """Appends each round's metrics; both files are rewritten whole (atomically) each round.

    ``history``: the rounds a resumed run already has (its checkpoint's), so the files of a resumed
    run hold the whole history, in the new folder or the old one, and agree with its plots and summary.
    """

    def __init__(self, out_dir: str | Path, history: Sequence[dict[str, float]] = ()) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, float]] = [{"step": int(h.get("round", i + 1)), **h} for i, h in enumerate(history)]

    def __call__(self, metrics: dict[str, float], step: int, plan: object = None, outcome: object = None) -> None:
        self.rows = [r for r in self.rows if r["step"] < step]  # a round run again replaces its old row
        self.rows.append({"step": step, **metrics})
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.dir / "metrics.csv", text.getvalue())
        finite = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
        clean = [{k: finite(v) for k, v in r.items()} for r in self.rows]
        atomic_write_text(self.dir / "metrics.json", json.dumps(clean, indent=1))
