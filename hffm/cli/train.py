"""hffm-train: a Hydra app. ``hffm-train experiment=hffm_d2d federation.e_agg=8``; sweeps with ``-m``.

The same command runs under Fabric's own launcher (``fabric.devices=N fabric.strategy=ddp``), torchrun,
srun and on several nodes: global rank 0 claims the run folder and writes it, including Hydra's ``.hydra/``
record and the log; the other ranks write nothing and get the final metrics through the collective.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from hffm.cli.help import help_text, wants_help

if TYPE_CHECKING:
    from hffm.run_folder import FolderExtras

CONF = "pkg://hffm.conf"  # the configs ship inside the package (conf/ in a checkout)
HYDRA_SUBDIR = ".hydra"


def hydra_extras(dict_cfg: DictConfig) -> FolderExtras:
    """Hydra's record of the run (what it writes to .hydra/ itself) and its log file, for rank 0 to write
    once the folder is claimed; hffm's config sets hydra.output_subdir to null so Hydra does not write first."""
    from hffm.run_folder import FolderExtras

    hc = HydraConfig.get()
    if hc.output_subdir is not None:
        raise ValueError(
            f"hydra.output_subdir={hc.output_subdir!r}: hffm-train writes Hydra's files to "
            f"{HYDRA_SUBDIR}/ itself, after the run has claimed its folder; leave hydra.output_subdir unset"
        )
    files = {
        f"{HYDRA_SUBDIR}/config.yaml": OmegaConf.to_yaml(dict_cfg),
        f"{HYDRA_SUBDIR}/hydra.yaml": OmegaConf.to_yaml(HydraConfig.instance().cfg),
        f"{HYDRA_SUBDIR}/overrides.yaml": OmegaConf.to_yaml(hc.overrides.task),
    }
    return FolderExtras(files=files, log_name=f"{hc.job.name}.log")


# The imports live inside the functions so that --help and a config error answer before torch's heavier
# companions (Lightning, cvxpy, wandb, matplotlib) load: those come with hffm.run, after the config resolved.
@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def _app(dict_cfg: DictConfig) -> float | None:
    from hffm.config import resolve

    cfg = resolve(dict_cfg)

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from hffm.logging.ranks import log_from_rank_zero
    from hffm.run import train

    log_from_rank_zero()
    extras = hydra_extras(dict_cfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = train(cfg, out_dir, extras=extras)
    finally:
        if getattr(rank_zero_only, "rank", 0) != 0:
            _remove_if_empty(out_dir)
    # None only where the ranks were spawned processes (ddp_spawn): this process is not a rank and reads the file
    final = result.history[-1] if result is not None else json.loads((out_dir / "summary.json").read_text())
    return final.get("accuracy")  # what a sweeper (e.g. Optuna's) optimises


def _remove_if_empty(folder: Path) -> None:
    """Hydra made a folder in every process; a rank other than 0 leaves none behind (its own time-stamped one,
    or the run's on a node without a shared file system). rmdir refuses a folder that holds anything."""
    try:
        folder.rmdir()
    except OSError:
        pass


def main() -> None:
    if wants_help(sys.argv[1:]):
        print(help_text("hffm-train", "config"))
        return
    from hffm.config import register_configs

    register_configs()
    _app()


if __name__ == "__main__":
    main()
