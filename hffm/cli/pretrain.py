"""hffm-pretrain: a Hydra app. ``hffm-pretrain model=small steps=600 out=outputs/pretrained/trunk.pt``.

Pretrains the bank centrally on the training part of the built-in benchmark (the same split that
``hffm-train`` keeps its global test set out of), prints per-task metrics on that held-out test set
and writes a checkpoint for ``hffm-train pretrained=PATH``. Fields are typed (``PretrainConfig``), so
a misspelt key or a wrong type fails at start, naming it.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from hffm.cli.help import help_text, wants_help
from hffm.config import DataConfig, register_configs
from hffm.modules.config import ModelConfig

CONF = "pkg://hffm.conf"  # the configs ship inside the package (conf/ in a checkout)
log = logging.getLogger("hffm")


@dataclass
class PretrainConfig:
    """What hffm-pretrain reads: the model and data groups of hffm-train plus the optimisation."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    """Fixes the benchmark, the split, the bank's initialisation and the batch order; use the federated
    run's seed so the pretraining never sees its global test set."""
    steps: int = 600
    """Optimiser steps (the benchmark's modulation task needs a few hundred to leave chance)."""
    batch_size: int = 64
    lr: float = 2e-3
    out: str = "outputs/pretrained/trunk.pt"
    """Checkpoint path (relative to the working directory)."""
    log_every: int = 50
    """Print the mean training loss every this many steps."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.out:
            raise ValueError("out must be a checkpoint path, e.g. out=outputs/pretrained/trunk.pt")


def register() -> None:
    """The groups of hffm-train plus this app's primary schema."""
    register_configs()
    ConfigStore.instance().store(name="base_pretrain", node=PretrainConfig)


register()


def run_pretrain(cfg: PretrainConfig) -> dict[str, float]:
    """Build the benchmark, pretrain on its training split, evaluate on the held-out split, save.

    Returns the training metrics and, prefixed ``test/``, the held-out metrics (also stored in the
    checkpoint).
    """
    import torch

    from hffm.data import make_benchmark
    from hffm.data.leakage import training_record
    from hffm.modules import ModuleBank
    from hffm.modules.lightning import M3TLightningModule
    from hffm.modules.pretrain import pretrain, save_pretrained

    if cfg.data.source != "benchmark" or cfg.data.faults().any:
        raise ValueError(f"hffm-pretrain pretrains on the built-in benchmark only: data.source={cfg.data.source!r}, "
                         "data.missing_modality / missing_labels / label_noise would not be used; run it with "
                         "data.source=benchmark and no data faults (a federated run can still use real data)")
    data = make_benchmark(cfg.data.benchmark, cfg.seed)
    train, test = data.split(cfg.data.global_test_fraction, cfg.seed)  # the split build_world makes
    bank = ModuleBank(cfg.model, data.modalities, data.tasks, vocab=data.vocab, seed=cfg.seed)
    log.info("pretraining %d modules + trunk on %d samples for %d steps", len(bank.names()), len(train), cfg.steps)
    metrics = pretrain(bank, train, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                       log_every=cfg.log_every)
    lm = M3TLightningModule(bank.full_model().eval())
    with torch.no_grad():
        for batch in test.batches(256, shuffle=False):
            lm.validation_step(batch)
    metrics.update({f"test/{k}": v for k, v in lm.compute_metrics().items()})
    save_pretrained(bank, cfg.out, metrics,
                    data=training_record(cfg.data.benchmark, cfg.seed, cfg.data.global_test_fraction))
    return metrics


@hydra.main(version_base="1.3", config_path=CONF, config_name="pretrain")
def _app(dict_cfg: DictConfig) -> float:
    cfg: PretrainConfig = OmegaConf.to_object(dict_cfg)  # type: ignore[assignment]
    metrics = run_pretrain(cfg)
    log.info("metrics on the %d%% held-out test split:", round(100 * cfg.data.global_test_fraction))
    for key in sorted(k for k in metrics if k.startswith("test/")):
        log.info("  %-22s %.4f", key[5:], metrics[key])
    log.info("saved %s (%.1f s of training); start a federated run from it with:\n  %s",
             cfg.out, metrics["seconds"], train_command(cfg))
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    (out_dir / "pretrain.json").write_text(json.dumps({"config": asdict(cfg), "metrics": metrics}, indent=1,
                                                      default=str))
    return metrics.get("test/modulation/acc", float("nan"))


def train_command(cfg: PretrainConfig) -> str:
    """The hffm-train line that starts from this checkpoint: same model, data and seed as the pretraining
    (a federated run with another model or data could not load it, or would test on what it trained on)."""
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    same = [o for o in hydra_cfg.overrides.task if o.split("=", 1)[0].lstrip("+~").startswith(("model.", "data."))]
    args = [f"model={choices['model']}", f"data={choices['data']}", *same, f"seed={cfg.seed}",
            f"pretrained={Path(cfg.out).resolve()}"]
    return "hffm-train " + " ".join(args)


def main() -> None:
    if wants_help(sys.argv[1:]):
        print(help_text("hffm-pretrain", "pretrain"))
        return
    _app()


if __name__ == "__main__":
    main()
