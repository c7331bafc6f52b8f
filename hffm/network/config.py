"""Configuration of the wireless network model: topology, channel, computation, and presets.

Two presets exist. ``default`` is physically consistent (noise over the real bandwidth in Hz, one
transmit power per link used both for rates and energies, computation charged). ``prototype`` keeps
the assumptions of the published HF-FM prototype, flaws included (docs/network-model.md, "The published
prototype, and its flaws"), so its numbers can be reproduced and compared honestly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace


def _positive(owner: str, name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {value!r}")


def _non_negative(owner: str, name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{owner}.{name} must be a finite number >= 0, got {value!r}")


DEFAULT_SIDE_M = 5000.0
"""The area's side when `TopologyConfig.area_m` is unset and the servers fit in it."""


@dataclass
class TopologyConfig:
    """Where edge servers and devices sit. Defaults are the published prototype's (40 devices)."""

    num_edges: int = 10
    """Number of edge (fog) servers, one device cluster each."""
    devices_per_edge: int = 4
    """Devices in each server's cluster (total devices = num_edges * devices_per_edge)."""
    area_m: float | None = None
    """Side of the square area [0, area_m]^2 holding servers and devices (positions are clipped to it).
    None: 5,000 m, grown only when num_edges servers cannot fit min_edge_separation_m apart in it (to
    twice the densest packing's side, rounded up to 1 km), so 1,000 edges work without a setting; `side_m`."""
    min_edge_separation_m: float = 500.0
    """Minimum distance between any two edge servers (rejection sampling; impossible packings raise)."""
    cluster_center_distance_m: float = 1000.0
    """A cluster centre is drawn uniformly in the disc of this radius around its server."""
    cluster_radius_m: float = 500.0
    """Devices are drawn uniformly in the disc of this radius around their cluster centre."""
    d2d_radius_m: float = 300.0
    """D2D connectivity radius: two devices of the same cluster are linked when at most this far apart.

    The prototype used 30 m, but with 4 devices spread over a 500 m-radius disc two devices are
    almost never within 30 m, so its D2D graph is empty and only the spanning-tree patch (see
    ``d2d_spanning_patch``) connects the cluster, with links of hundreds of metres anyway. 300 m links
    a fair share of pairs directly (a 300 m D2D link at 0.2 W on 1 MHz still carries about 10 Mbit/s),
    so the radius means something. The ``prototype`` preset keeps 30 m.
    """
    d2d_spanning_patch: bool = True
    """Add the shortest extra links (the long edges of the cluster's minimum spanning tree) so every
    cluster's D2D graph is connected, whatever the radius. Links never cross clusters."""
    max_edge_distance_m: float = 2000.0
    """A device farther than this from its server has no reachable edge: building the topology raises.
    Default exceeds cluster_center_distance_m + cluster_radius_m (1500 m), the farthest a device can be."""

    def __post_init__(self) -> None:
        o = "TopologyConfig"
        for name in ("num_edges", "devices_per_edge"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{o}.{name} must be an integer >= 1, got {v!r}")
        if self.area_m is not None:
            _positive(o, "area_m", self.area_m)
        _non_negative(o, "min_edge_separation_m", self.min_edge_separation_m)
        _non_negative(o, "cluster_center_distance_m", self.cluster_center_distance_m)
        _non_negative(o, "cluster_radius_m", self.cluster_radius_m)
        _non_negative(o, "d2d_radius_m", self.d2d_radius_m)
        _positive(o, "max_edge_distance_m", self.max_edge_distance_m)
        reach = self.cluster_center_distance_m + self.cluster_radius_m
        if reach > self.max_edge_distance_m:
            raise ValueError(
                f"{o}: cluster_center_distance_m + cluster_radius_m = {reach:g} m exceeds "
                f"max_edge_distance_m = {self.max_edge_distance_m:g} m, so some devices could have no reachable "
                "edge; raise max_edge_distance_m or shrink the clusters"
            )
        # Necessary condition for the packing: discs of diameter s around the servers fit in the
        # area grown by s/2 on each side, at most at the hexagonal packing density pi / (2 sqrt 3).
        if self.area_m is not None and not self._packs(self.area_m):
            raise ValueError(
                f"{o}.min_edge_separation_m = {self.min_edge_separation_m:g} m is impossible for {self.num_edges} "
                f"servers in a {self.area_m:g} m square; grow area_m (e.g. topology.layout.area_m="
                f"{self._roomy_side():g}, or leave it unset to size it), lower the separation or lower num_edges"
            )

    def _packs(self, side: float) -> bool:
        s = self.min_edge_separation_m
        return self.num_edges <= 1 or self.num_edges * math.pi * s * s / 4 <= 0.9069 * (side + s) ** 2

    def _roomy_side(self) -> float:
        """Twice the side of the densest packing (rejection sampling needs room), rounded up to 1 km."""
        s = self.min_edge_separation_m
        side = math.sqrt(self.num_edges * math.pi * s * s / 4 / 0.9069) - s
        return float(math.ceil(2 * side / 1000) * 1000)

    @property
    def side_m(self) -> float:
        """The area's side in metres: area_m, or when unset 5,000 m grown as its docstring says."""
        if self.area_m is not None:
            return float(self.area_m)
        return DEFAULT_SIDE_M if self._packs(DEFAULT_SIDE_M) else self._roomy_side()

    @property
    def num_devices(self) -> int:
        return self.num_edges * self.devices_per_edge


@dataclass
class ChannelConfig:
    """Radio links: path loss, fading, noise, powers, bandwidths, backhaul and downlink."""

    beta0_db: float = -30.0
    """Path gain at the reference distance d0_m, in dB (beta0 = -30 dB at 1 m)."""
    d0_m: float = 1.0
    """Reference distance of beta0; distances below it are clipped to it."""
    path_loss_exponent: float = 3.0
    """alpha in gain = beta0 * (d / d0)^-alpha."""
    noise_dbm_per_hz: float = -174.0
    """Noise power spectral density N0 (thermal noise at room temperature)."""
    noise_bandwidth_scale: float = 1.0
    """Noise power = N0 * bandwidth_hz * this. 1 is physical; the prototype used the bandwidth in kHz
    with N0 per Hz (1e-3), which makes every SNR 30 dB too high."""
    fading: str = "rayleigh"
    """"rayleigh": |h|^2 ~ Exp(1), redrawn each round (each draw_channel call); "none": |h|^2 = 1."""
    device_tx_power_w: float = 1.0
    """Device uplink transmit power (rates, and energies unless device_energy_power_w is set)."""
    d2d_tx_power_w: float = 0.2
    """Device D2D transmit power (rates, and energies unless d2d_energy_power_w is set)."""
    device_energy_power_w: float | None = None
    """Power charged for uplink energy; None: device_tx_power_w (physical). Prototype: 0.6 W."""
    d2d_energy_power_w: float | None = None
    """Power charged for D2D energy; None: d2d_tx_power_w (physical). Prototype: 0.8 W."""
    edge_bandwidth_hz: float = 4e6
    """Uplink band of each edge server, shared by FDMA among the devices that upload to it
    (default 4 MHz = the prototype's 1 MHz x 4 devices)."""
    uplink_bandwidth_per_device_hz: float | None = None
    """Fixed uplink band per uploading device instead of an equal share of edge_bandwidth_hz when no
    bandwidth plan is given. None in the default; the prototype gives every device 1 MHz."""
    d2d_bandwidth_hz: float = 1e6
    """Band of one D2D link (links use orthogonal channels). The prototype used 8 MHz, eight times a
    device's uplink band, one of its listed flaws; the default gives D2D the same 1 MHz as an uplink."""
    backhaul_latency_s: float = 0.1
    """Fixed latency of one edge <-> cloud transfer (prototype: 0.1 s)."""
    backhaul_rate_bps: float = 4e6
    """Edge <-> cloud backhaul rate (prototype: 4 Mbit/s), one link per edge."""
    backhaul_power_w: float = 0.8
    """Power charged while a backhaul link sends. 0.8 W reproduces the prototype's star energy
    (40 devices x 12.1 s x 0.8 W = 387.2) and its HF-FM energy increments (10 edges x 12.1 s x 0.8 W
    per cloud round), so it is kept in both presets."""
    downlink_rate_bps: float = 20e6
    """Rate of the edge's broadcast of the aggregated modules to its cluster. An edge sending 1 W over
    its 4 MHz band to a device 1 km away (no fading) gets 4e6 * log2(1 + 1e-12 / (4e-21 * 4e6)),
    about 24 Mbit/s; 20 Mbit/s is a round figure below it. Not faded: broadcasts use robust coding."""
    edge_tx_power_w: float = 1.0
    """Edge broadcast transmit power, charged as edge-tier energy for the downlink."""
    charge_downlink: bool = True
    """Charge the way back down (cloud -> edge backhaul and edge -> device broadcast). The prototype
    charged no downlink at all."""

    def __post_init__(self) -> None:
        o = "ChannelConfig"
        for name in ("d0_m", "path_loss_exponent", "noise_bandwidth_scale", "device_tx_power_w",
                     "d2d_tx_power_w", "edge_bandwidth_hz", "d2d_bandwidth_hz", "backhaul_rate_bps",
                     "downlink_rate_bps"):
            _positive(o, name, getattr(self, name))
        for name in ("backhaul_latency_s", "backhaul_power_w", "edge_tx_power_w"):
            _non_negative(o, name, getattr(self, name))
        for name in ("device_energy_power_w", "d2d_energy_power_w"):
            if getattr(self, name) is not None:
                _non_negative(o, name, getattr(self, name))
        if self.uplink_bandwidth_per_device_hz is not None:
            _positive(o, "uplink_bandwidth_per_device_hz", self.uplink_bandwidth_per_device_hz)
            if self.uplink_bandwidth_per_device_hz > self.edge_bandwidth_hz:
                raise ValueError(
                    f"{o}.uplink_bandwidth_per_device_hz = {self.uplink_bandwidth_per_device_hz:g} exceeds "
                    f"edge_bandwidth_hz = {self.edge_bandwidth_hz:g}"
                )
        for name in ("beta0_db", "noise_dbm_per_hz"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{o}.{name} must be finite, got {getattr(self, name)!r}")
        if self.fading not in ("rayleigh", "none"):
            raise ValueError(f"{o}.fading must be 'rayleigh' or 'none', got {self.fading!r}")

    @property
    def uplink_energy_power_w(self) -> float:
        return self.device_tx_power_w if self.device_energy_power_w is None else self.device_energy_power_w

    @property
    def d2d_energy_power(self) -> float:
        return self.d2d_tx_power_w if self.d2d_energy_power_w is None else self.d2d_energy_power_w


@dataclass
class ComputeConfig:
    """Local training cost: cycles = cycles_per_sample_per_param x module parameters x samples."""

    cycles_per_sample_per_param: float = 6.0
    """CPU cycles to train one sample per module parameter: forward + backward is about 6 FLOPs per
    parameter per sample, counted at one FLOP per cycle (a plain mobile CPU core)."""
    kind_cycles_per_sample: dict[str, float] = field(default_factory=dict)
    """Explicit cycles per sample for a module kind (e.g. {"head": 2e4}), overriding the factor."""
    cpu_hz_range: tuple[float, float] = (1e9, 2e9)
    """Each device's CPU frequency f is drawn uniformly in this range, seeded (draw_cpu_hz)."""
    kappa: float = 1e-28
    """Effective switched capacitance of the CPU: energy = kappa * cycles * f^2, so kappa is in
    J / (cycle * Hz^2) = J s^2 per cycle; 1e-28 is the usual mobile-CPU figure."""
    enabled: bool = True
    """Charge computation time and energy. The prototype charged none (False in that preset)."""

    def __post_init__(self) -> None:
        o = "ComputeConfig"
        _non_negative(o, "cycles_per_sample_per_param", self.cycles_per_sample_per_param)
        _non_negative(o, "kappa", self.kappa)
        self.kind_cycles_per_sample = dict(self.kind_cycles_per_sample)
        for kind, v in self.kind_cycles_per_sample.items():
            _non_negative(o, f"kind_cycles_per_sample[{kind!r}]", v)
        rng = tuple(float(x) for x in self.cpu_hz_range)
        if len(rng) != 2 or not (0 < rng[0] <= rng[1] < math.inf):
            raise ValueError(f"{o}.cpu_hz_range must be (low, high) with 0 < low <= high, got {self.cpu_hz_range!r}")
        self.cpu_hz_range = rng

    def cycles_per_sample(self, kind: str, num_params: int) -> float:
        """Cycles to train one sample of a module of this kind and size."""
        if kind in self.kind_cycles_per_sample:
            return float(self.kind_cycles_per_sample[kind])
        return self.cycles_per_sample_per_param * float(num_params)


PRESETS = ("default", "prototype")


@dataclass
class NetworkConfig:
    """Everything the network model and the ledger need, under a preset name."""

    topology: TopologyConfig = field(default_factory=TopologyConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    fixed_payload_bytes: int | None = None
    """If set, every model transfer (upload, D2D, backhaul, broadcast) is charged as this many bytes
    instead of the real size. The prototype took 6 MB while its adapters weigh about 38 MB in fp32."""
    name: str = "default"
    """Preset this config came from (for logs); free text if built by hand."""

    def __post_init__(self) -> None:
        for f, cls in (("topology", TopologyConfig), ("channel", ChannelConfig), ("compute", ComputeConfig)):
            v = getattr(self, f)
            if isinstance(v, dict):
                setattr(self, f, cls(**v))
            elif not isinstance(v, cls):
                raise ValueError(f"NetworkConfig.{f} must be a {cls.__name__}, got {type(v).__name__}")
        if self.fixed_payload_bytes is not None:
            if not isinstance(self.fixed_payload_bytes, int) or self.fixed_payload_bytes <= 0:
                raise ValueError(
                    f"NetworkConfig.fixed_payload_bytes must be None or an int > 0, got {self.fixed_payload_bytes!r}"
                )

    @classmethod
    def preset(cls, name: str, **overrides: object) -> NetworkConfig:
        """Build a preset: "default" (physically consistent) or "prototype" (the published one's
        assumptions: noise over kHz, rates at 1000/200 mW but energies at 600/800 mW, D2D 8 MHz within
        30 m, 1 MHz per uploading device, no computation, no downlink, 6 MB models)."""
        if name == "default":
            cfg = cls(name="default")
        elif name == "prototype":
            cfg = cls(
                topology=TopologyConfig(d2d_radius_m=30.0),
                channel=ChannelConfig(
                    noise_bandwidth_scale=1e-3,
                    device_tx_power_w=1.0,
                    d2d_tx_power_w=0.2,
                    device_energy_power_w=0.6,
                    d2d_energy_power_w=0.8,
                    edge_bandwidth_hz=4e6,
                    uplink_bandwidth_per_device_hz=1e6,
                    d2d_bandwidth_hz=8e6,
                    charge_downlink=False,
                ),
                compute=ComputeConfig(enabled=False),
                fixed_payload_bytes=6_000_000,
                name="prototype",
            )
        else:
            raise ValueError(f"unknown network preset {name!r}; choose one of {PRESETS}")
        known = {f.name for f in fields(cls)}
        bad = set(overrides) - known
        if bad:
            raise ValueError(f"NetworkConfig.preset: unknown override(s) {sorted(bad)}; known: {sorted(known)}")
        return replace(cfg, **overrides) if overrides else cfg  # type: ignore[arg-type]  # names checked above
