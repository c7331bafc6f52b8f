"""The typed run configuration: one dataclass per Hydra config group, registered in the ConfigStore.

Hydra YAML -> these dataclasses (a wrong key or type fails at start, naming the field) -> the
constructors in ``hffm.build``. No DictConfig goes further than ``resolve``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import solvers
from hffm.config_checks import ConfigError, numeric_problems, unknown_keys
from hffm.data.benchmark import BenchmarkConfig
from hffm.data.easyvqa import EasyVQAConfig
from hffm.data.faults import DataFaults
from hffm.data.hapt import HaptConfig
from hffm.data.partition import PartitionConfig
from hffm.data.sources import SOURCES
from hffm.federation.config import FederationConfig
from hffm.federation.d2d_modes import MODES as D2D_MODES
from hffm.federation.d2d_modes import mode_of
from hffm.federation.defense import DefenseConfig
from hffm.federation.faults import FaultsConfig
from hffm.federation.planning import POWER_FREQUENCY_SOLVERS, check_power_frequency
from hffm.federation.policy import Mode
from hffm.modules.config import ModelConfig
from hffm.network.config import PRESETS, ChannelConfig, ComputeConfig, NetworkConfig, TopologyConfig
from solvers.fields import check_budget, check_gap, check_time_limit


@dataclass
class DataConfig:
    """Which dataset (``source``), how it is split over devices, and the data faults of devices' training data."""

    source: str = "benchmark"
    """benchmark (the built-in generator), hapt (UCI HAPT) or easyvqa (easy-VQA); the last two need the
    optional extra: ``pip install 'hffm[data]'`` (docs/real-data.md)."""
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    hapt: HaptConfig = field(default_factory=HaptConfig)
    """Used when source=hapt."""
    easyvqa: EasyVQAConfig = field(default_factory=EasyVQAConfig)
    """Used when source=easyvqa."""
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    global_test_fraction: float = 0.2
    """Share of all samples held out as the global test set (source=benchmark; the real datasets hold out
    their own: HAPT's test users, easy-VQA's test split)."""
    device_test_fraction: float = 0.2
    """Share of each device's samples held out for its personalized test."""
    missing_modality: float = 0.0
    """Chance that a device's training sample misses each of its modalities (never all), any dataset."""
    missing_labels: float = 0.0
    """Chance that a device's training sample loses each classification label (the loss skips it)."""
    label_noise: float = 0.0
    """Chance that a device's training label is replaced by a different class drawn uniformly."""

    def faults(self) -> DataFaults:
        return DataFaults(self.missing_modality, self.missing_labels, self.label_noise)


def _overrides(name: str, cls: type, skip: tuple[str, ...] = ()) -> type:
    """A dataclass with every field of ``cls`` typed Any and None by default (None keeps the preset's
    value), so ``topology.channel.<field>=...`` works from the command line without a leading ``+``
    and an unknown name fails, naming the known ones."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    made = dataclasses.make_dataclass(name, [(n, Any, None) for n in names])
    made.__module__ = __name__  # picklable (spawned Fabric processes receive the config)
    return made


LayoutOverrides = _overrides("LayoutOverrides", TopologyConfig, skip=("num_edges", "devices_per_edge"))
ChannelOverrides = _overrides("ChannelOverrides", ChannelConfig)
ComputeOverrides = _overrides("ComputeOverrides", ComputeConfig)


@dataclass
class TopologyGroup:
    """The wireless network: a preset plus field overrides.

    ``preset``: default (physically consistent) or prototype (the published prototype's assumptions).
    ``layout`` / ``channel`` / ``compute`` override fields of TopologyConfig / ChannelConfig /
    ComputeConfig (unset fields keep the preset's value; unknown names fail at start).
    """

    preset: str = "default"
    """default (physically consistent) or prototype (the published prototype's assumptions, flaws included)."""
    num_edges: int = 10
    """Edge servers, one cluster of devices each."""
    devices_per_edge: int = 4
    """Devices per cluster (devices in all: num_edges x devices_per_edge)."""
    device_memory_mb: float = 64.0
    """Memory per device for training modules (the solver's M_i)."""
    layout: Any = field(default_factory=LayoutOverrides)
    """Fields of hffm.network.TopologyConfig (area_m, d2d_radius_m, ...), e.g. ``topology.layout.d2d_radius_m=100``."""
    channel: Any = field(default_factory=ChannelOverrides)
    """Fields of hffm.network.ChannelConfig, e.g. ``topology.channel.device_tx_power_w=0.5``."""
    compute: Any = field(default_factory=ComputeOverrides)
    """Fields of hffm.network.ComputeConfig, e.g. ``topology.compute.kappa=1e-27``."""


@dataclass
class SolverConfig:
    """The per-round planner (see solvers/README.md)."""

    name: str = "none"
    """none (full placement, direct uploads, equal bandwidth) or a method of ``solvers.METHODS``
    (joint, greedy, equal, random, exact)."""
    gamma: float = 0.5
    """Coverage: per edge and module, the share of eligible samples that must train it."""
    lam: float = 0.0
    """Weight of energy in the objective T + lam * E (s/J)."""
    max_tx_power_w: float | None = None
    """Uplink transmit power becomes a decision in (0, max_tx_power_w] W per device (>=
    topology.channel.device_tx_power_w); None keeps device_tx_power_w fixed."""
    cpu_scale_min: float = 1.0
    """CPU frequency becomes a decision in [cpu_scale_min, cpu_scale_max] x each device's drawn cpu_hz
    (cpu_scale_min <= 1 <= cpu_scale_max); 1 and 1 keep the drawn frequency fixed."""
    cpu_scale_max: float = 1.0
    """Upper end of the CPU frequency decision, as a multiple of each device's drawn cpu_hz (>= 1)."""
    time_limit_s: float = 2.0
    """joint: seconds per round for its model to improve and certify the plan (0: heuristics only); what a second
    is: ``budget``."""
    budget: str = "work"
    """joint: what time_limit_s counts. work (default): deterministic work units, calibrated to about a CPU second
    each, so the same seed gives the same plans and numbers on any machine load; time: wall-clock seconds (the plan,
    and then the training, depend on the machine's speed and load)."""
    gap: float = 0.01
    """joint: the target relative gap; the plan is certified once lower_bound >= (1 - gap) x objective."""

    def power_frequency(self) -> dict[str, float]:
        """The options that make power / frequency decisions (empty when both stay fixed)."""
        out = {} if self.max_tx_power_w is None else {"max_tx_power_w": self.max_tx_power_w}
        if (self.cpu_scale_min, self.cpu_scale_max) != (1.0, 1.0):
            out |= {"cpu_scale_min": self.cpu_scale_min, "cpu_scale_max": self.cpu_scale_max}
        return out

    def options(self) -> dict[str, float]:
        """What the round loop passes to ``build_problem`` (``hffm.federation.planning``)."""
        return {"gamma": self.gamma, "lam": self.lam, **self.power_frequency()}

    def solve_options(self) -> dict[str, float | str]:
        """The method's own options, passed to ``solvers.solve`` when the method takes them (joint)."""
        return {"time_limit_s": self.time_limit_s, "gap": self.gap, "budget": self.budget}


@dataclass
class LoggerConfig:
    """Where metrics go. ``kind``: none, csv or wandb (offline unless ``mode=online``)."""

    kind: str = "csv"
    """none (nothing), csv (metrics.csv / metrics.json in the run folder) or wandb (those files and a wandb run)."""
    mode: str = "offline"
    """wandb mode: offline (no account needed; ``wandb sync`` uploads later), online or disabled."""
    project: str = "hffm"
    """wandb project."""
    group: str | None = None
    """wandb group; defaults to the experiment name so a sweep lands in one dashboard."""
    tags: list[str] = field(default_factory=list)
    """wandb tags."""


@dataclass
class FabricConfig:
    """How Lightning Fabric launches the loop: processes share the round's devices."""

    accelerator: str = "cpu"
    """cpu or gpu (any accelerator name Lightning Fabric accepts)."""
    devices: int = 1
    """Processes (ranks) per node; each round's devices are sharded over them."""
    strategy: str = "auto"
    """auto for one process; ddp (or ddp_spawn) for several (gloo on CPU, NCCL on GPU)."""
    num_nodes: int = 1
    """Machines; run the same command on each with Fabric's MASTER_ADDR / MASTER_PORT / NODE_RANK environment."""


@dataclass
class Config:
    name: str = "demo"
    """Name of the experiment preset that made this config (the wandb group, the output folder)."""
    seed: int = 0
    """Fixes the data, its partition, the topology, every round's channel and participants, faults and training."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    topology: TopologyGroup = field(default_factory=TopologyGroup)
    federation: FederationConfig = field(default_factory=FederationConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    fabric: FabricConfig = field(default_factory=FabricConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    """Dropouts, stragglers, relay failures, edge outages and attackers, seeded from ``seed`` (all off by default)."""
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    """What stands between the screened updates and the aggregation rule (conf/defense: none, screen (refuses an
    update 100 x the median size), robust (the default: per-device trust from agreement and a server validation
    set, clipping and the same screen; docs/faults-and-security.md))."""
    threads: int | None = 1
    """CPU threads per process (None: torch's default), set as torch's intra-op threads. The packed engine
    spends them on whole passes (evaluation passes, training waves), one intra-op thread each, so 2 never run
    slower than 1 on a busy machine (hffm/engine/workers.py); one-device-at-a-time paths split each operation.
    Evaluation gives the same numbers with any count; packed training splits its devices into equal waves, at
    least one a thread (float noise apart from 1 thread's numbers). Raise it for big models or idle cores."""
    pretrained: str | None = None
    """Checkpoint from hffm-pretrain to start the trunk and modules from."""
    progress: str = "bar"
    """bar (a progress bar), lines (one line a round) or none (quiet, for CI)."""
    plots: bool = True
    """Save learning-curve, cost and topology plots with every run."""

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed; a group's fields by a mapping (the group's checks run again), e.g.
        ``cfg.replace(federation={"rounds": 3}, solver={"name": "joint"}, seed=1)``."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"Config.replace: unknown field(s) {unknown}; fields are {sorted(known)}")
        for name, value in changes.items():
            group = getattr(self, name)
            if dataclasses.is_dataclass(group) and isinstance(value, Mapping):
                changes[name] = dataclasses.replace(group, **value)  # type: ignore[type-var]
        return dataclasses.replace(self, **changes)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, node in (
        ("model", ModelConfig),
        ("data", DataConfig),
        ("topology", TopologyGroup),
        ("federation", FederationConfig),
        ("solver", SolverConfig),
        ("logger", LoggerConfig),
        ("faults", FaultsConfig),
        ("defense", DefenseConfig),
    ):
        cs.store(group=group, name=f"base_{group}", node=node)


def resolve(cfg: DictConfig | Config) -> Config:
    """A Config of real dataclasses (their checks run here), with cross-group checks."""
    if isinstance(cfg, DictConfig):
        unknown = unknown_keys(cfg, Config())
        if unknown:
            raise ConfigError("invalid config (a key no field reads, added with + or ++):\n  " + "\n  ".join(unknown))
        try:
            obj = OmegaConf.to_object(cfg)
        except ValueError as exc:  # a group's own checks (__post_init__)
            raise ConfigError(str(exc)) from None
    else:
        obj = cfg
    if not isinstance(obj, Config):
        raise TypeError(f"resolve: expected a Config (or its DictConfig), got {type(obj).__name__}")
    try:
        channel = network_config(obj.topology).channel
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid config:\n  {exc}") from None
    problems = numeric_problems(obj, channel)
    if obj.solver.name != "none" and obj.solver.name not in solvers.METHODS:
        problems.append(f"solver.name={obj.solver.name!r}: choose none or one of {sorted(solvers.METHODS)}")
    checks: list[tuple[Callable[[Any], None], object]] = [
        (check_time_limit, obj.solver.time_limit_s), (check_gap, obj.solver.gap), (check_budget, obj.solver.budget)]
    for check, value in checks:
        try:  # the solver's own checks of its limits and budget, so the two never disagree
            check(value)
        except ValueError as exc:
            problems.append(f"solver.{exc}")
    if obj.topology.preset not in PRESETS:
        problems.append(f"topology.preset={obj.topology.preset!r}: choose one of {list(PRESETS)}")
    if obj.logger.kind not in ("none", "csv", "wandb"):
        problems.append(f"logger.kind={obj.logger.kind!r}: choose none, csv or wandb")
    if obj.logger.mode not in ("offline", "online", "disabled"):
        problems.append(f"logger.mode={obj.logger.mode!r}: choose offline, online or disabled")
    if obj.progress not in ("bar", "lines", "none"):
        problems.append(f"progress={obj.progress!r}: choose bar, lines or none")
    if obj.threads is not None and obj.threads < 1:
        problems.append(f"threads={obj.threads}: must be >= 1 (or null for torch's default)")
    problems += _power_frequency_problems(obj)
    problems += _compression_problems(obj)
    problems += _data_problems(obj.data)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return obj


def _data_problems(data: DataConfig) -> list[str]:
    """A source that exists; no setting the chosen source would not use."""
    if data.source not in SOURCES:
        return [f"data.source={data.source!r}: choose one of {list(SOURCES)}"]
    out = []
    try:
        data.faults()
    except ValueError as exc:
        out.append(str(exc))
    natural = data.source == "hapt" and data.hapt.split != "pooled"
    if natural and data.partition.alpha is not None:
        out.append(f"data.partition.alpha={data.partition.alpha}: data.hapt.split={data.hapt.split} gives each device "
                   "a whole user or session (no label skew); set data.partition.alpha=null, or "
                   "data.hapt.split=pooled to split the pooled windows by Dirichlet label skew")
    return out


def _power_frequency_problems(obj: Config) -> list[str]:
    """Power / frequency decisions need a solver that plans them, in a mode where they apply, on a network
    that can charge them."""
    options = obj.solver.power_frequency()
    if not options:
        return []
    out = []
    if obj.solver.name not in POWER_FREQUENCY_SOLVERS:
        out.append(f"solver.name={obj.solver.name!r}: only {' or '.join(POWER_FREQUENCY_SOLVERS)} plans uplink power "
                   "and CPU frequency; pick it, or unset solver.max_tx_power_w and solver.cpu_scale_min|max")
    fed = obj.federation
    if fed.mode != Mode.hierarchical or not mode_of(fed.d2d).plans_power_frequency:
        able = " or ".join(sorted(m.name for m in D2D_MODES.values() if m.plans_power_frequency))
        out.append(f"federation.mode={fed.mode}, federation.d2d={fed.d2d}: power and frequency are planned in "
                   f"hierarchical rounds with d2d {able} (the solver's one-hop uploads); other D2D modes "
                   "keep the fixed values, so unset solver.max_tx_power_w and solver.cpu_scale_min|max")
    try:
        check_power_frequency(network_config(obj.topology), **options)
    except ValueError as exc:
        out.append(str(exc))
    return out


def _compression_problems(obj: Config) -> list[str]:
    """``federation.compression=auto`` needs the joint solver to choose, in one-hop hierarchical rounds at fixed
    power and frequency (what solvers/levels.py models)."""
    fed = obj.federation
    if not fed.codebook().auto and "auto" not in fed.compression_kinds.values():
        return []
    out = []
    if obj.solver.name != "joint":
        out.append(f"federation.compression=auto: solver.name={obj.solver.name!r} does not choose levels; use "
                   "solver=joint, or a fixed level (e.g. federation.compression=int8)")
    if fed.mode != Mode.hierarchical or not mode_of(fed.d2d).plans_power_frequency:
        able = " or ".join(sorted(m.name for m in D2D_MODES.values() if m.plans_power_frequency))
        out.append(f"federation.compression=auto with federation.mode={fed.mode}, federation.d2d={fed.d2d}: levels "
                   f"are planned in hierarchical rounds with d2d {able}; use one, or a fixed level")
    if obj.solver.power_frequency():
        out.append("federation.compression=auto with planned power or frequency: levels are planned at fixed power "
                   "and frequency; unset solver.max_tx_power_w and solver.cpu_scale_min|max, or use a fixed level")
    return out


def compose(*overrides: str) -> Config:
    """The resolved Config that ``hffm-train OVERRIDES...`` would run, for scripts and notebooks."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    register_configs()
    with initialize_config_module(config_module="hffm.conf", version_base="1.3"):
        return resolve(hydra_compose(config_name="config", overrides=list(overrides)))


def network_config(group: TopologyGroup) -> NetworkConfig:
    """The NetworkConfig of a preset with the group's overrides applied."""
    base = NetworkConfig.preset(group.preset)
    layout = _override(
        base.topology, TopologyConfig, "topology.layout",
        {"num_edges": group.num_edges, "devices_per_edge": group.devices_per_edge, **_set(group.layout)},
    )
    channel = _override(base.channel, ChannelConfig, "topology.channel", _set(group.channel))
    compute = _override(base.compute, ComputeConfig, "topology.compute", _set(group.compute))
    return dataclasses.replace(base, topology=layout, channel=channel, compute=compute)


def _set(overrides: Any) -> dict[str, Any]:
    """The fields an overrides object (or a plain dict, from Python) sets."""
    values = overrides if isinstance(overrides, dict) else dataclasses.asdict(overrides)
    return {k: v for k, v in values.items() if v is not None}


def _override(obj: Any, cls: type, where: str, values: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known fields are {sorted(known)}")
    values = {k: tuple(v) if isinstance(getattr(obj, k), tuple) else v for k, v in values.items()}
    return dataclasses.replace(obj, **values)
