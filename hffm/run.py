"""From a resolved Config to a finished run: Fabric launch, world, loggers, the loop, plots.

``train`` is what ``hffm-train`` calls after Hydra composed the config; tests and scripts call it
directly with a Config.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric

from hffm.config import Config, network_config
from hffm.engine import Trainer, train_devices
from hffm.federation.checkpoint import config_dict, load_checkpoint
from hffm.federation.loop import FederationResult, run_federation
from hffm.federation.world import World, build_world
from hffm.logging.files import FileLogger
from hffm.logging.progress import make_progress
from hffm.run_folder import FolderExtras, RunFolder, RunFolderError, claim

log = logging.getLogger("hffm")


def make_world(cfg: Config) -> World:
    from hffm.data.sources import source

    prepared = None if cfg.data.source == "benchmark" else source(cfg.data.source).prepare(cfg.data, cfg.seed)
    return build_world(
        prepared=prepared,
        data_faults=cfg.data.faults(),
        benchmark=cfg.data.benchmark,
        partition_cfg=cfg.data.partition,
        model=cfg.model,
        network=network_config(cfg.topology),
        seed=cfg.seed,
        global_test_fraction=cfg.data.global_test_fraction,
        device_test_fraction=cfg.data.device_test_fraction,
        device_memory_bytes=cfg.topology.device_memory_mb * 1e6,
        pretrained=cfg.pretrained,
    )


def make_fabric(cfg: Config) -> Fabric:
    f = cfg.fabric
    return Fabric(accelerator=f.accelerator, devices=f.devices, strategy=f.strategy, num_nodes=f.num_nodes)


def claim_on_rank_zero(fabric: Fabric, cfg: Config, out_dir: Path, extras: FolderExtras | None) -> RunFolder | None:
    """Global rank 0 claims the folder; every rank learns the outcome through the collective, so a refused
    claim stops all of them with the same message, and no other rank ever reads or writes the folder."""
    folder, error, failure = None, None, None
    if fabric.global_rank == 0:
        try:
            folder = claim(out_dir, json.dumps(config_dict(cfg), indent=1), cfg.federation.resume, extras)
        except Exception as exc:  # every failure is told to the other ranks, which would otherwise wait forever
            failure, error = exc, str(exc)
    if fabric.world_size > 1:
        error = fabric.broadcast(error, src=0)
    if failure is not None:
        raise failure
    if error is not None:
        raise RunFolderError(f"global rank 0 could not claim the run folder: {error}")
    return folder


def run_in_fabric(
    fabric: Fabric, cfg: Config, out_dir: Path, trainer: Trainer = train_devices,
    extras: FolderExtras | None = None, caller_pid: int | None = None,
) -> FederationResult | None:
    """What every Fabric process runs; global rank 0 claims the folder, writes files and logs."""
    folder = claim_on_rank_zero(fabric, cfg, out_dir, extras)
    try:
        result = _run_claimed(fabric, cfg, out_dir, trainer)
    except BaseException:
        if folder is not None:
            log.error(folder.fail())
            folder.close()
        raise
    if folder is not None:
        folder.close()
    # Every process that called train() gets the result (the history is the same on every rank). A spawned
    # worker returns nothing: its return value would cross a queue that deadlocks on large objects.
    return result if caller_pid in (None, os.getpid()) else None


def _run_claimed(fabric: Fabric, cfg: Config, out_dir: Path, trainer: Trainer) -> FederationResult:
    torch.manual_seed(cfg.seed)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    world = make_world(cfg)
    world.bank.to(fabric.device)
    loggers: list[Any] = []
    wandb_logger = None
    fed = cfg.federation
    if fabric.global_rank == 0:
        resumed = load_checkpoint(fed.resume)["state"]["history"] if fed.resume else []
        loggers.append(FileLogger(out_dir, history=resumed))
        if cfg.logger.kind == "wandb":
            from hffm.logging.wandb_logger import WandbLogger

            wandb_logger = WandbLogger(cfg, out_dir, world)
            loggers.append(wandb_logger)
    try:
        result = run_federation(fabric, world, cfg, out_dir=out_dir, loggers=loggers, trainer=trainer,
                                progress=make_progress(cfg.progress, fed.rounds, fabric.global_rank))
    except BaseException:
        if wandb_logger is not None:
            wandb_logger.finish([], exit_code=1)
        raise
    if fabric.global_rank == 0:
        summary = {k: v for k, v in result.history[-1].items()}
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        log.info("finished %s: accuracy %.4f, cumulative latency %.2f s, energy %.2f J; updates lost: %d rejected "
                 "by the screen, %d dropped by the defense, %d late, %d from dropped devices -> %s",
                 cfg.name, summary.get("accuracy", float("nan")), summary["cost/cum_latency_s"],
                 summary["cost/cum_energy_j"], summary.get("faults/cum_rejected_updates", 0),
                 summary.get("defense/cum_dropped_updates", 0), summary.get("faults/cum_stragglers", 0),
                 summary.get("faults/cum_dropped", 0), out_dir)
        if cfg.plots:
            from hffm.plots import save_run_plots

            paths = save_run_plots(result.history, world, out_dir, outcome=result.last_outcome, name=cfg.name)
            if wandb_logger is not None:
                wandb_logger.log_images(paths)
        if wandb_logger is not None:
            wandb_logger.finish(result.history)
    fabric.barrier()  # leave together: a rank that exits while its peer still talks to it can abort the peer
    return result


def train(cfg: Config, out_dir: str | Path, *, trainer: Trainer = train_devices,
          extras: FolderExtras | None = None) -> FederationResult | None:
    """Run one experiment into ``out_dir`` (config, metrics, checkpoints, plots); ``trainer``: the local-training
    engine (``hffm.engine.Trainer``), e.g. ``train_devices`` wrapped by an attack or a profiler; ``extras``: what
    a launcher adds to the folder once claimed (the CLI: Hydra's ``.hydra/`` record and the log).

    The folder is claimed first (hffm.run_folder): a folder holding another run is refused, and so is one in
    use by a running resume. Returns the result in every process that called it; None where the ranks are
    spawned processes (``fabric.strategy=ddp_spawn``): read ``out_dir/summary.json`` there.
    """
    out_dir = Path(out_dir)
    fabric = make_fabric(cfg)
    if fabric.world_size > 1 or cfg.fabric.strategy != "auto":
        args = (cfg, out_dir, trainer, extras, os.getpid())
        return fabric.launch(run_in_fabric, *args)  # type: ignore[arg-type]  # launch passes *args on
    return run_in_fabric(fabric, cfg, out_dir, trainer, extras)
