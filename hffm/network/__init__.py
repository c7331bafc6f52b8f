"""Wireless network model of the device / edge / cloud hierarchy and the per-round cost ledger.

Pure functions over numpy arrays: ``make_topology`` (once per run), ``draw_cpu_hz`` (once per run),
``draw_channel`` (each round, fresh fading) and ``charge_round`` / ``charge_star`` (each round, from
the ``Traffic`` that was sent).
"""

from hffm.network.channel import (
    ChannelState,
    draw_channel,
    noise_w_per_hz,
    path_gain,
    rayleigh_fading,
    shannon_rate,
)
from hffm.network.compute import compute_energy, compute_time, draw_cpu_hz, module_cycles
from hffm.network.config import ChannelConfig, ComputeConfig, NetworkConfig, TopologyConfig
from hffm.network.ledger import D2DTransfer, DeviceUpload, RoundCost, Traffic, charge_round, charge_star, uplink_queue
from hffm.network.topology import Topology, build_topology, make_topology

__all__ = [
    "ChannelConfig",
    "ChannelState",
    "ComputeConfig",
    "D2DTransfer",
    "DeviceUpload",
    "NetworkConfig",
    "RoundCost",
    "Topology",
    "TopologyConfig",
    "build_topology",
    "Traffic",
    "charge_round",
    "charge_star",
    "uplink_queue",
    "compute_energy",
    "compute_time",
    "draw_channel",
    "draw_cpu_hz",
    "make_topology",
    "module_cycles",
    "noise_w_per_hz",
    "path_gain",
    "rayleigh_fading",
    "shannon_rate",
]
