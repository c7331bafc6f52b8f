"""The grid the solver's edge probes share, and the results file they all write.

Every probe of one edge at a time walks sizes x lambdas x seeds of solver_model_bench's instances and writes
``{"meta": ..., "rows": ...}`` with the commit and the machine; here once, so a probe keeps only what it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from code_version import CODE_PATHS, commit

from solvers import RoundProblem, random_instance


def scale_round(devices: int, seed: int, **kw: Any) -> RoundProblem:
    """solver_scale_gap's seeded round: about 100 devices an edge, its module count (3..10) drawn from the seed;
    ``kw`` goes to random_instance (lam, relay_aggregates, d2d_neighbours, ...)."""
    modules = int(np.random.default_rng(seed).integers(3, 11))
    return random_instance(devices, max(1, round(devices / 100)), modules, seed, **kw)


def add_grid(ap: argparse.ArgumentParser, *, sizes: str = "8,12", lams: str = "0.5,5", seeds: int = 2,
             mode: str | None = "one-hop") -> None:
    """--sizes, --lams, --seeds (and --mode unless None) with this probe's defaults."""
    ap.add_argument("--sizes", default=sizes, help="devices per edge, comma-separated")
    ap.add_argument("--lams", default=lams, help="lambda values, comma-separated")
    ap.add_argument("--seeds", type=int, default=seeds, help="seeds 0 .. N-1 of each (size, lambda)")
    if mode is not None:
        ap.add_argument("--mode", default=mode, help="an instance mode of solver_model_bench.py")


def grid(a: argparse.Namespace) -> Iterator[tuple[int, float, int]]:
    """(devices, lambda, seed) in the order every probe prints them."""
    for n in (int(s) for s in a.sizes.split(",")):
        for lam in (float(s) for s in a.lams.split(",")):
            for seed in range(a.seeds):
                yield n, lam, seed


def show(row: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    """One row as a JSON line (floats to 4 places), as it is measured."""
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k not in skip},
                     default=str), flush=True)


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()}-CPU container (shared)"


def write_results(out: str | Path, rows: list, meta: dict[str, Any] | None = None, **sections: Any) -> None:
    """``{"meta": commit, machine, when, load and ``meta``; then ``sections``; then "rows"}`` at ``out``."""
    head = {"commit": commit(CODE_PATHS), "machine": machine(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_1min_at_end": os.getloadavg()[0]}
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": {**head, **(meta or {})}, **sections, "rows": rows}, indent=1, default=str))
