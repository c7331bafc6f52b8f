"""hffm-train: a Hydra app. ``hffm-train experiment=hffm_d2d federation.e_agg=8``; sweeps with ``-m``."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hffm.cli.help import help_text, wants_help

CONF = "pkg://hffm.conf"  # the configs ship inside the package (conf/ in a checkout)
log = logging.getLogger("hffm")


# The imports live inside the functions so that --help and a config error answer before torch's heavier
# companions (Lightning, cvxpy, wandb, matplotlib) load: those come with hffm.run, after the config resolved.
@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def _app(dict_cfg: DictConfig) -> float | None:
    from hffm.config import resolve

    cfg = resolve(dict_cfg)

    from hffm.logging.ranks import log_from_rank_zero
    from hffm.run import claim_run_dir, train

    log_from_rank_zero()
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0":
        claim_run_dir(out_dir, cfg)  # once: Fabric's ddp re-runs this command in the other ranks' processes
    result = train(cfg, out_dir)
    final = result.history[-1] if result is not None else json.loads((out_dir / "summary.json").read_text())
    log.info("finished %s: accuracy %.4f, cumulative latency %.2f s, energy %.2f J, %d updates rejected -> %s",
             cfg.name, final.get("accuracy", float("nan")), final["cost/cum_latency_s"], final["cost/cum_energy_j"],
             final.get("faults/cum_rejected_updates", 0), out_dir)
    return final.get("accuracy")


def main() -> None:
    if wants_help(sys.argv[1:]):
        print(help_text("hffm-train", "config"))
        return
    from hffm.config import register_configs

    register_configs()
    _app()


if __name__ == "__main__":
    main()
