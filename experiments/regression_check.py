"""Bit-for-bit regression check of the engine: the same small runs on two code trees, their histories compared.

    python experiments/regression_check.py run --out /tmp/new.json             # this tree
    PYTHONPATH=/path/to/old/checkout python experiments/regression_check.py run --out /tmp/old.json
    python experiments/regression_check.py compare /tmp/old.json /tmp/new.json

The cases cover every D2D mode, the joint solver with and without power and frequency decisions, faults and a
deadline, and the star baseline (the paper-table runs are ``paper_table.py --seeds 0 --rounds 4``). A refactor that
must not change behaviour shows no difference but wall times; a case that fails records its error on both sides.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Sequence

CASES: dict[str, list[str]] = {
    "tree": ["experiment=demo", "federation.d2d=tree", "federation.rounds=3"],
    "tree_joint": ["experiment=demo", "federation.d2d=tree", "solver=joint", "federation.rounds=3"],
    "relay_joint": ["experiment=demo", "federation.d2d=relay", "solver=joint", "federation.rounds=3"],
    "relay_joint_pf": ["experiment=demo", "federation.d2d=relay", "solver=joint", "solver.lam=1",
                       "solver.max_tx_power_w=2", "solver.cpu_scale_min=0.5", "federation.rounds=3"],
    "gossip_joint": ["experiment=demo", "federation.d2d=gossip", "solver=joint", "federation.rounds=3"],
    "relay_faults": ["experiment=demo", "federation.d2d=relay", "solver=greedy", "faults=scenario",
                     "federation.rounds=3"],
    "tree_deadline": ["experiment=demo", "federation.d2d=tree", "faults=scenario", "federation.deadline_s=0.5",
                      "federation.rounds=3"],
    "star": ["experiment=star", "topology=small", "data=small", "model=tiny", "federation.rounds=2"],
}
TIMES = ("time/round_s", "plan/solve_s")
"""Keys that measure the machine, not the run."""


def run(out: str, only: Sequence[str]) -> None:
    import hffm
    from hffm.run import train

    results: dict[str, object] = {}
    for name, overrides in CASES.items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory() as folder:
            try:
                cfg = hffm.compose(*overrides, "logger=none", "plots=false", "progress=none")
                result = train(cfg, folder)
                results[name] = result.history if result is not None else "no result"
            except Exception as exc:  # noqa: BLE001 - an error is a result to compare, not a reason to stop
                results[name] = f"error {type(exc).__name__}: {exc}"
        print(f"{name}: done", flush=True)
    with open(out, "w") as f:
        json.dump(results, f, default=str)


def compare(old_path: str, new_path: str) -> int:
    with open(old_path) as f:
        old = json.load(f)
    with open(new_path) as f:
        new = json.load(f)
    changed = 0
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            diffs = [(i, k, ra.get(k), rb.get(k)) for i, (ra, rb) in enumerate(zip(a, b))
                     for k in sorted(set(ra) | set(rb)) if k not in TIMES and not _same(ra.get(k), rb.get(k))]
        else:
            diffs = [] if a == b else [("whole run", "", a if not isinstance(a, list) else "history",
                                        b if not isinstance(b, list) else "history")]
        changed += bool(diffs)
        print(f"{name}: {'identical' if not diffs else f'{len(diffs)} differences, first {diffs[:3]}'}")
    return 1 if changed else 0


def _same(a: object, b: object) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the cases on the code importable as hffm; write their histories")
    r.add_argument("--out", required=True, help="JSON file to write")
    r.add_argument("--only", default="", help=f"comma-separated cases among {list(CASES)} (default: all)")
    c = sub.add_parser("compare", help="compare two files written by run; exit 1 on any difference")
    c.add_argument("old")
    c.add_argument("new")
    args = p.parse_args(argv)
    if args.command == "run":
        run(args.out, [x for x in args.only.split(",") if x])
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
