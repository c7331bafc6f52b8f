"""From a resolved Config to a finished run: Fabric launch, world, loggers, the loop, plots.

``train`` is what ``hffm-train`` calls after Hydra composed the config; tests and scripts call it
directly with a Config.
"""

from __future__ import annotations

import json
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


def claim_run_dir(out_dir: str | Path, cfg: Config) -> None:
    """Refuse a folder that already holds another run (two runs must never mix their files).

    The claim is an exclusive creation of config.json, so of two runs racing for one folder exactly one
    wins. Resuming from a checkpoint inside ``out_dir`` continues that run there and is allowed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resume = cfg.federation.resume
    if resume and Path(resume).resolve().is_relative_to(out_dir.resolve()):
        return
    try:
        with open(out_dir / "config.json", "x") as f:
            f.write(json.dumps(config_dict(cfg), indent=1))
    except FileExistsError:
        raise FileExistsError(
            f"output folder {str(out_dir)!r} already holds a run (config.json); runs never share a folder: "
            "choose another hydra.run.dir, or resume that run there with "
            f"federation.resume={out_dir / 'checkpoints' / 'federation.pt'}"
        ) from None


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


def run_in_fabric(
    fabric: Fabric, cfg: Config, out_dir: Path, trainer: Trainer = train_devices
) -> FederationResult | None:
    """What every Fabric process runs; rank 0 writes files and logs."""
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
        if cfg.plots:
            from hffm.plots import save_run_plots

            paths = save_run_plots(result.history, world, out_dir, outcome=result.last_outcome, name=cfg.name)
            if wandb_logger is not None:
                wandb_logger.log_images(paths)
        if wandb_logger is not None:
            wandb_logger.finish(result.history)
    fabric.barrier()  # other ranks wait until rank 0 has written the run's files
    # Only one process hands its result back: a spawned process's return value goes through a queue
    # that deadlocks on large objects; rank 0 has written everything to out_dir anyway.
    return result if fabric.world_size == 1 else None


def train(cfg: Config, out_dir: str | Path, *, trainer: Trainer = train_devices) -> FederationResult | None:
    """Run one experiment into ``out_dir`` (config, metrics, checkpoints, plots); ``trainer``: the local-training
    engine (``hffm.engine.Trainer``), e.g. ``train_devices`` wrapped by an attack or a profiler.

    Returns the result on one process; on several, None (read ``out_dir/summary.json``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config_dict(cfg), indent=1))
    fabric = make_fabric(cfg)
    if fabric.world_size > 1 or cfg.fabric.strategy != "auto":
        return fabric.launch(run_in_fabric, cfg, out_dir, trainer)  # type: ignore[arg-type]  # launch passes *args on
    return run_in_fabric(fabric, cfg, out_dir, trainer)
