"""What the robust defense costs in CPU time: one clean run of the robustness study's config with the time spent
in the validation scoring and the agreement evidence, and one captured wave scored packed and one model a pass.

    python experiments/validation_cost.py [--seed 0] [--rounds 16] [--repeats 3] [--out FILE.json]

The run is ``experiments/robustness.py``'s clean run (``defense=robust``, rule mean, 40 devices, 16 rounds);
the loop's ``validation_task_scores``, ``consensus`` and ``judge_devices`` are wrapped to add up their process time.
The last wave's arguments are kept and scored again ``--repeats`` times each way (``packed=True`` and
``packed=False``), with the largest difference between the two paths' scores. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def timed(spent: dict[str, float], name: str, fn: Callable) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tic = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.process_time() - tic
    return wrapper


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="write the record here (JSON)")
    args = p.parse_args(argv)

    import torch
    from code_version import CODE_PATHS, code_hash, commit
    from robustness import BASE, compose

    import hffm.federation.loop as loop
    from hffm.federation import validation
    from hffm.run import make_fabric, make_world

    torch.set_num_threads(1)
    made_at = f"{code_hash()} at {commit(CODE_PATHS)}"  # Markdown and results edits do not count as code
    spent = {"validation": 0.0, "consensus": 0.0, "judge": 0.0}
    waves: list[tuple] = []
    score = loop.validation_task_scores

    def keep(*a: Any, **k: Any) -> Any:
        waves[:] = [a]
        return score(*a, **k)

    loop.validation_task_scores = timed(spent, "validation", keep)
    loop.consensus = timed(spent, "consensus", loop.consensus)
    loop.judge_devices = timed(spent, "judge", loop.judge_devices)
    cfg = compose([*BASE, f"seed={args.seed}", f"federation.rounds={args.rounds}",
                   f"federation.eval_every={args.rounds}", "federation.rule=mean", "defense=robust"])
    torch.manual_seed(cfg.seed)
    load = os.getloadavg()[0]
    tic = time.process_time()
    result = loop.run_federation(make_fabric(cfg), make_world(cfg), cfg)
    run_cpu = time.process_time() - tic

    fabric, bank, candidates, data = waves[0]
    per = {}
    for packed in (True, False):
        times = []
        for _ in range(args.repeats):
            tic = time.process_time()
            scores = validation.validation_scores(fabric, bank, candidates, data, packed=packed)
            times.append(time.process_time() - tic)
        per["packed" if packed else "one_model_a_pass"] = (statistics.median(times), scores)
    gap = max(abs(per["packed"][1][d] - per["one_model_a_pass"][1][d]) for d in per["packed"][1])
    record = {
        "commit": made_at, "machine": platform.platform(), "cpus": os.cpu_count(), "load_1min_start": load,
        "load_1min_end": os.getloadavg()[0], "seed": args.seed, "rounds": args.rounds,
        "run_cpu_s": run_cpu, "spent_cpu_s": spent, "accuracy": result.history[-1]["accuracy"],
        "wave_devices_scored": len(per["packed"][1]),
        "wave_cpu_s": {k: v[0] for k, v in per.items()}, "wave_max_score_difference": gap,
    }
    print(json.dumps(record, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
