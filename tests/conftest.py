import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load_experiment(name: str):
    """The script experiments/<name>.py as a module (experiments/ is not a package; its helpers, such as
    code_version, are imported as the script itself would: from its folder)."""
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests run on 2 cores: keep torch from oversubscribing them.
    torch.set_num_threads(1)
    yield


def tiny_config(**federation):
    """A run config small enough for a test: 2 edges x 2 devices, width-32 one-layer model, no defense (the loop's
    mechanics as configured; tests of the defense set ``cfg.defense`` themselves)."""
    from hffm.config import Config, resolve
    from hffm.data.benchmark import BenchmarkConfig
    from hffm.federation.defense import DefenseConfig
    from hffm.modules.config import ModelConfig

    cfg = Config()
    cfg.defense = DefenseConfig.off()
    cfg.model = ModelConfig(width=32, trunk_layers=1, trunk_heads=4, num_experts=2, top_k=1, adapter_bottleneck=8,
                            lora_rank=2)
    cfg.data.benchmark = BenchmarkConfig(num_samples=400)
    cfg.topology.num_edges = 2
    cfg.topology.devices_per_edge = 2
    cfg.federation = dataclasses.replace(cfg.federation, **({"rounds": 2, "local_steps": 2, "batch_size": 16} | federation))
    cfg.progress = "none"
    cfg.plots = False
    cfg.logger.kind = "none"
    return resolve(cfg)



def mixed_config(trunk_layers: int = 1):
    """``tiny_config`` (1 round) with 6 devices an edge of different modality and task sets (so different batch
    sizes) and some samples missing a modality: the packed passes' hardest layout."""
    cfg = tiny_config(rounds=1)
    cfg.model.trunk_layers = trunk_layers
    cfg.topology.devices_per_edge = 6
    cfg.data.benchmark.num_samples = 500
    cfg.data.benchmark.missing_prob = 0.3
    cfg.data.partition.modality_sets = [["image"], ["text", "iq"], ["image", "text", "iq"], ["iq"], ["text"]]
    cfg.data.partition.task_sets = [["object"], ["color", "snr"], ["object", "color", "modulation", "snr"],
                                    ["modulation"], ["object"]]
    return cfg

@pytest.fixture
def cli_error(monkeypatch, capsys):
    """Run a Hydra app's ``main`` in this process on a command line that must fail; return what it printed.

    In-process, a bad key costs milliseconds instead of a second or more of interpreter start-up."""
    from hydra.core.global_hydra import GlobalHydra

    def run(main, argv: list[str]) -> str:
        monkeypatch.setattr("sys.argv", argv)
        monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
        try:
            with pytest.raises(SystemExit) as stop:
                main()
        finally:
            GlobalHydra.instance().clear()
        assert stop.value.code not in (0, None), f"{argv}: exited {stop.value.code}"
        out = capsys.readouterr()
        return out.err + out.out

    return run


LEVEL_NAMES = ("none", "int8", "topk")
LEVEL_FACTOR = (1.0, 0.26, 0.12)
LEVEL_DISTORTION = (0.0, 0.01, 0.4)


def offer_levels(p, budget: float | None, penalty: float = 0.0, factor=LEVEL_FACTOR):
    """Round problem ``p`` offering three compression levels (none, int8, top-k) under a distortion budget or
    penalty: the solver level tests' common instance."""
    import numpy as np

    return dataclasses.replace(p, level_names=LEVEL_NAMES, level_factor=np.array(factor, dtype=float),
                               level_distortion=np.array(LEVEL_DISTORTION), distortion_budget=budget,
                               distortion_penalty=penalty)


def aggregating_edge(n: int, seed: int, dense: bool, cap: int | None = None):
    """One seeded edge of n devices with aggregating relays, D2D links dense (every pair) or sparse (2 neighbours),
    band, D2D rate and gamma drawn from the seed: the instances the union and aggregate bounds are checked on against
    exact_solve."""
    import numpy as np

    from solvers import random_instance

    rng = np.random.default_rng(seed)
    p = random_instance(n, 1, int(rng.integers(2, 5)), 7300 + seed, relay_aggregates=True,
                        d2d_neighbours=n - 1 if dense else 2, d2d_bandwidth_hz=float(10 ** rng.uniform(6, 8)),
                        bandwidth_per_device_hz=float(10 ** rng.uniform(5.0, 6.5)), gamma=float(rng.uniform(0.3, 0.9)))
    return dataclasses.replace(p, relay_capacity=cap)


def model_at_plan(p, x, relay, share, want, extra=lambda var: []):
    """solvers/model.py's round model with a plan's placement, relays and band shares fixed (and ``extra(var)``'s
    rows) and one tangent of each upload time at its share: where the cuts touch, its optimum is the plan's cost
    (``want``). Returns the model and its scale (``m.problem.value * scale.t0`` is in the round's units)."""
    import numpy as np

    from solvers.model import RoundModel, load

    def fix(var, par):
        cons = [var["x"] == x.astype(float), var["beta"] == share, *extra(var)]
        if "r" in var:
            cons.append(var["r"] == (relay[p.d2d_src] == p.d2d_dst).astype(float))
        return cons

    m = RoundModel.build(p, 1, [fix])
    sc, beta_min = load(m, p, want)
    dev = np.arange(p.num_devices)
    at = np.maximum(share, beta_min)  # devices without an upload: any valid tangent
    slope = sc.dg(at, dev)
    m.par["cut_s"].value = slope[:, None]
    m.par["cut_a"].value = (sc.g(at, dev) - slope * at)[:, None]
    return m, sc
