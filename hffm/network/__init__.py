"""Wireless network model of the device / edge / cloud hierarchy and the per-round cost ledger.

Pure functions over numpy arrays: ``make_topology`` (once per run), ``draw_cpu_hz`` (once per run),
``draw_channel`` (each round, fresh fading) and ``charge_round`` / ``charge_star`` (each round, from
the ``Traffic`` that was sent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hffm.lazy import lazy_getattr

if TYPE_CHECKING:
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
    from hffm.network.ledger import (
        D2DTransfer,
        DeviceUpload,
        RoundCost,
        Traffic,
        charge_round,
        charge_star,
        uplink_queue,
    )
    from hffm.network.topology import Topology, build_topology, make_topology

# Imported on first use (PEP 562), so importing this package stays cheap: a config error or --help
# does not wait for torch, Lightning or cvxpy.
_LAZY = {
    "ChannelState": ("hffm.network.channel", "ChannelState"),
    "draw_channel": ("hffm.network.channel", "draw_channel"),
    "noise_w_per_hz": ("hffm.network.channel", "noise_w_per_hz"),
    "path_gain": ("hffm.network.channel", "path_gain"),
    "rayleigh_fading": ("hffm.network.channel", "rayleigh_fading"),
    "shannon_rate": ("hffm.network.channel", "shannon_rate"),
    "compute_energy": ("hffm.network.compute", "compute_energy"),
    "compute_time": ("hffm.network.compute", "compute_time"),
    "draw_cpu_hz": ("hffm.network.compute", "draw_cpu_hz"),
    "module_cycles": ("hffm.network.compute", "module_cycles"),
    "ChannelConfig": ("hffm.network.config", "ChannelConfig"),
    "ComputeConfig": ("hffm.network.config", "ComputeConfig"),
    "NetworkConfig": ("hffm.network.config", "NetworkConfig"),
    "TopologyConfig": ("hffm.network.config", "TopologyConfig"),
    "D2DTransfer": ("hffm.network.ledger", "D2DTransfer"),
    "DeviceUpload": ("hffm.network.ledger", "DeviceUpload"),
    "RoundCost": ("hffm.network.ledger", "RoundCost"),
    "Traffic": ("hffm.network.ledger", "Traffic"),
    "charge_round": ("hffm.network.ledger", "charge_round"),
    "charge_star": ("hffm.network.ledger", "charge_star"),
    "uplink_queue": ("hffm.network.ledger", "uplink_queue"),
    "Topology": ("hffm.network.topology", "Topology"),
    "build_topology": ("hffm.network.topology", "build_topology"),
    "make_topology": ("hffm.network.topology", "make_topology"),
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


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
