"""Uplink power and CPU frequency as the solver's decisions, against the fixed values, in whole training runs.

    .venv/bin/python experiments/power_frequency.py                          # the README numbers (12 devices)
    .venv/bin/python experiments/power_frequency.py --quick --out /tmp/pf    # a smoke run (4 devices, 1 round)

Every run is ``hffm-train experiment=hffm_joint`` (joint solver, D2D relays, cloud every 2nd round) on the small
topology (4 edges x 3 devices, default network preset) with the tiny model, composed from conf/ and trained by
``run_federation``. For each lambda the same run is made twice: with the fixed 1 W uplinks and drawn CPU
frequencies, and with ``solver.max_tx_power_w=1 solver.cpu_scale_min=0.3`` (the same largest power and
frequency, so the solver can only lower them). The numbers are the ledger's charges summed over the run
(downlink and cloud rounds included) and the final accuracy.

Writes ``--out``/results.json and table.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

BASE = ["experiment=hffm_joint", "topology=small", "model=tiny", "data.benchmark.num_samples=600",
        "federation.rounds=4", "federation.local_steps=2", "federation.batch_size=32", "logger=none",
        "progress=none", "plots=false"]
QUICK = ["topology.num_edges=2", "topology.devices_per_edge=2", "data.benchmark.num_samples=300",
         "federation.rounds=1", "federation.local_steps=1", "federation.batch_size=16"]
DECISIONS = ["solver.max_tx_power_w=1", "solver.cpu_scale_min=0.3"]
LAMS = (0.1, 1.0)


def run(overrides: list[str]) -> dict[str, float]:
    import torch
    from hydra.core.global_hydra import GlobalHydra
    from lightning.fabric import Fabric

    from hffm.config import compose
    from hffm.federation.loop import run_federation
    from hffm.run import make_world

    GlobalHydra.instance().clear()
    cfg = compose(*overrides)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)
    tic = time.perf_counter()
    result = run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg)
    last = result.history[-1]
    keep = ("cost/cum_latency_s", "cost/cum_energy_j", "accuracy")
    out = {k: float(last[k]) for k in keep if k in last}
    out["energy_compute_j"] = float(sum(h["cost/energy/compute"] for h in result.history))
    out["energy_uplink_j"] = float(sum(h["cost/energy/uplink"] for h in result.history))
    out["planned_rounds"] = float(sum(h.get("plan/power_frequency", 0.0) for h in result.history))
    out["wall_s"] = time.perf_counter() - tic
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/results/power_frequency")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    base = BASE + (QUICK if args.quick else [])
    rows = []
    for lam in LAMS:
        for on in (False, True):
            overrides = base + [f"solver.lam={lam}"] + (DECISIONS if on else [])
            r = run(overrides)
            r |= {"lam": lam, "decisions": on, "objective": r["cost/cum_latency_s"] + lam * r["cost/cum_energy_j"]}
            rows.append(r)
            print(json.dumps(r), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "overrides": base,
            "decisions": DECISIONS}
    (out / "results.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))
    lines = ["| lambda (s/J) | power / frequency | latency, s | energy, J | compute J | uplink J | T + lambda E | "
             "accuracy |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['lam']:g} | {'decisions' if r['decisions'] else 'fixed'} | "
                     f"{r['cost/cum_latency_s']:.4g} | {r['cost/cum_energy_j']:.4g} | {r['energy_compute_j']:.4g} | "
                     f"{r['energy_uplink_j']:.4g} | {r['objective']:.4g} | {r.get('accuracy', float('nan')):.4f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
