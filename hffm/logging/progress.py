"""Progress over rounds: a tqdm bar with the current loss / accuracy / latency, plain lines, or quiet."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm


def _summary(metrics: dict[str, float]) -> dict[str, str]:
    shown = {}
    for key, label in (("train/loss", "loss"), ("accuracy", "acc"), ("cost/latency_s", "lat_s"),
                       ("cost/energy_j", "E_J")):
        if key in metrics:
            shown[label] = f"{metrics[key]:.3g}"
    return shown


def make_progress(kind: str, total: int, rank: int = 0) -> Callable[[int, int, dict[str, float]], None] | None:
    """Only rank 0 reports; ``kind`` is bar, lines or none."""
    if kind == "none" or rank != 0:
        return None
    if kind == "lines":
        def line(done: int, total: int, metrics: dict[str, float]) -> None:
            text = " ".join(f"{k}={v}" for k, v in _summary(metrics).items())
            print(f"round {done}/{total} {text}", file=sys.stderr, flush=True)

        return line
    bar = tqdm(total=total, desc="rounds", unit="round", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int, metrics: dict[str, float]) -> None:
        bar.n = done
        bar.set_postfix(_summary(metrics), refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()

    return update
