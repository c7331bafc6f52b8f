"""Ledger: a hand-built two-device round (one direct, one relayed) checked term by term by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hffm.network import (
    ChannelConfig,
    ComputeConfig,
    D2DTransfer,
    DeviceUpload,
    NetworkConfig,
    TopologyConfig,
    Traffic,
    build_topology,
    charge_round,
    charge_star,
    draw_channel,
    make_topology,
)
from hffm.network.ledger import uplink_ends

# Hand-computed numbers of the scene below (no fading):
N0 = 10 ** (-20.4)  # -174 dBm/Hz in W/Hz
G_UP0 = 1e-3 * 100.0**-3  # device 0 is 100 m from the edge: 1e-9
G_D2D = 1e-3 * 50.0**-3  # devices 0 and 1 are 50 m apart: 8e-9
R_UP_1MHZ = 1e6 * math.log2(1 + 1.0 * G_UP0 / (N0 * 1e6))  # ~17.94 Mbit/s at 1 W
R_UP_4MHZ = 4e6 * math.log2(1 + 1.0 * G_UP0 / (N0 * 4e6))
R_D2D = 1e6 * math.log2(1 + 0.2 * G_D2D / (N0 * 1e6))  # ~18.62 Mbit/s at 0.2 W
TAU0, E_COMP0 = 2e9 / 2e9, 1e-28 * 2e9 * (2e9) ** 2  # 1 s, 0.8 J
TAU1, E_COMP1 = 0.5e9 / 1e9, 1e-28 * 0.5e9 * (1e9) ** 2  # 0.5 s, 0.05 J
P0, P1 = 1_000_000, 2_000_000  # bytes


def _scene(**channel: object) -> tuple[NetworkConfig, object, object, np.ndarray]:
    net = NetworkConfig(channel=ChannelConfig(fading="none", **channel), compute=ComputeConfig())
    topo = build_topology(
        np.array([[0.0, 0.0], [5000.0, 0.0]]),
        np.array([[100.0, 0.0], [100.0, 50.0], [4900.0, 0.0]]),  # device 2 sits in another cluster
        np.array([0, 0, 1]),
        d2d_radius_m=60.0,
    )
    ch = draw_channel(topo, net.channel, np.random.default_rng(0))
    return net, topo, ch, np.array([2e9, 1e9, 1.5e9])


def _round(net, topo, ch, cpu, uploads, uplink_bandwidth_hz=None, **traffic):  # noqa: ANN001, ANN202
    """One hierarchical round of ``uploads`` with the rest of its Traffic given by keyword."""
    return charge_round(net, topo, ch, cpu, Traffic(uploads, **traffic), uplink_bandwidth_hz)


def _uploads(relay_of_1: int = 0) -> list[DeviceUpload]:
    return [DeviceUpload(0, P0, 0, 2e9), DeviceUpload(1, P1, relay_of_1, 0.5e9)]


def test_hand_rates_match_channel() -> None:
    _, _, ch, _ = _scene()
    assert ch.uplink_gain[0] == pytest.approx(1e-9)
    assert ch.d2d_gain_of(0, 1) == pytest.approx(8e-9)
    assert ch.uplink_rate_at(1e6)[0] == pytest.approx(R_UP_1MHZ)
    assert R_UP_1MHZ == pytest.approx(17.94e6, rel=1e-3)
    assert ch.d2d_rate_of(0, 1) == pytest.approx(R_D2D) and ch.d2d_rate_of(1, 0) == pytest.approx(R_D2D)
    assert R_D2D == pytest.approx(18.62e6, rel=1e-3)
    assert ch.d2d_rate_of(0, 2) == 0.0  # other cluster: no link


def test_two_device_round_direct_plus_relayed() -> None:
    net, topo, ch, cpu = _scene()
    cost = _round(net, topo, ch, cpu, _uploads(), cloud_round=False,
                        uplink_bandwidth_hz=np.array([1e6, 0.0, 0.0]))
    d2d_t = 8 * P1 / R_D2D  # device 1 -> relay 0, starts after its 0.5 s of compute
    arrive = TAU1 + d2d_t  # 1.359 s, later than relay 0's own compute (1 s): the relay waits for it
    assert arrive > TAU0
    up_t = 8 * (P0 + P1) / R_UP_1MHZ  # relay uploads both payloads
    assert cost.latency_s == pytest.approx(arrive + up_t)
    assert cost.latency_s == pytest.approx(2.697, abs=1e-3)
    b = cost.breakdown
    assert b["latency/compute"] == pytest.approx(TAU1)
    assert b["latency/d2d"] == pytest.approx(d2d_t)
    assert b["latency/uplink"] == pytest.approx(up_t)
    assert b["latency/backhaul"] == 0.0 and b["latency/downlink"] == 0.0
    assert b["energy/compute"] == pytest.approx(E_COMP0 + E_COMP1)
    assert b["energy/d2d"] == pytest.approx(0.2 * d2d_t)
    assert b["energy/uplink"] == pytest.approx(1.0 * up_t)
    total = E_COMP0 + E_COMP1 + 0.2 * d2d_t + 1.0 * up_t
    assert cost.energy_j == pytest.approx(total)
    assert b["energy/device"] == pytest.approx(total) and b["energy/edge"] == 0.0
    np.testing.assert_allclose(cost.device_energy_j, [E_COMP0 + up_t, E_COMP1 + 0.2 * d2d_t, 0.0])
    assert b["bytes/uplink"] == P0 + P1 and b["bytes/d2d"] == P1 and b["bytes/backhaul"] == 0
    m = cost.as_metrics()
    assert m["cost/latency_s"] == cost.latency_s and m["cost/energy/d2d"] == b["energy/d2d"]


def test_relay_compute_on_critical_path_and_default_share() -> None:
    # Device 1 computes instantly, so relay 0's own 1 s of compute is the critical path; with no plan the
    # single uploader of edge 0 gets the whole 4 MHz.
    net, topo, ch, cpu = _scene()
    ups = [DeviceUpload(0, P0, 0, 2e9), DeviceUpload(1, P1, 0, 0.0)]
    cost = _round(net, topo, ch, cpu, ups, cloud_round=False)
    assert 8 * P1 / R_D2D < TAU0
    up_t = 8 * (P0 + P1) / R_UP_4MHZ
    assert cost.latency_s == pytest.approx(TAU0 + up_t)
    assert cost.breakdown["latency/compute"] == pytest.approx(TAU0)
    assert cost.breakdown["latency/d2d"] == 0.0


def test_both_direct_share_the_edge_band() -> None:
    net, topo, ch, cpu = _scene()
    cost = _round(net, topo, ch, cpu, _uploads(relay_of_1=1), cloud_round=False)
    r1 = 2e6 * math.log2(1 + 1e-3 * math.hypot(100, 50) ** -3 / (N0 * 2e6))
    r0 = 2e6 * math.log2(1 + G_UP0 / (N0 * 2e6))
    assert cost.latency_s == pytest.approx(max(TAU0 + 8 * P0 / r0, TAU1 + 8 * P1 / r1))
    assert cost.breakdown["energy/uplink"] == pytest.approx(8 * P0 / r0 + 8 * P1 / r1)


def test_planned_power_and_frequency_by_hand() -> None:
    """A plan's uplink power sets the uplink's rate and energy, its CPU frequency the compute time and energy;
    the deadline timeline (uplink_ends) runs at them too."""
    net, topo, ch, _ = _scene()
    power, cpu = np.array([0.25, 0.7, 1.0]), np.array([1e9, 0.25e9, 1.5e9])
    ups = _uploads(relay_of_1=1)
    band = np.array([1e6, 3e6, 0.0])
    cost = charge_round(net, topo, ch, cpu, Traffic(ups), band, power)
    r0 = 1e6 * math.log2(1 + 0.25 * G_UP0 / (N0 * 1e6))
    r1 = 3e6 * math.log2(1 + 0.7 * 1e-3 * math.hypot(100, 50) ** -3 / (N0 * 3e6))
    tau0, tau1 = 2e9 / 1e9, 0.5e9 / 0.25e9
    up0, up1 = 8 * P0 / r0, 8 * P1 / r1
    assert cost.latency_s == pytest.approx(max(tau0 + up0, tau1 + up1), rel=1e-12)
    b = cost.breakdown
    assert b["energy/uplink"] == pytest.approx(0.25 * up0 + 0.7 * up1, rel=1e-12)
    assert b["energy/compute"] == pytest.approx(1e-28 * (2e9 * 1e9**2 + 0.5e9 * 0.25e9**2), rel=1e-12)
    ends = uplink_ends(net, topo, ch, cpu, Traffic(ups), band, power)
    assert ends == pytest.approx({0: tau0 + up0, 1: tau1 + up1}, rel=1e-12)


def test_fixed_values_as_a_plan_charge_exactly_the_default() -> None:
    """Passing the fixed power and the drawn frequencies as if planned changes no bit of the charge."""
    net, topo, ch, cpu = _scene()
    traffic = Traffic(_uploads(), cloud_round=True, edge_to_cloud_bytes=np.array([P0, 0.0]),
                      cloud_to_edge_bytes=np.array([P0, 0.0]), edge_to_device_bytes=np.array([P1, 0.0]))
    default = charge_round(net, topo, ch, cpu, traffic)
    planned = charge_round(net, topo, ch, cpu.copy(), traffic, None, np.full(3, net.channel.device_tx_power_w))
    assert planned.latency_s == default.latency_s and planned.energy_j == default.energy_j
    assert planned.breakdown == default.breakdown
    assert np.array_equal(planned.device_energy_j, default.device_energy_j)


def test_planned_power_refuses_a_fixed_energy_power() -> None:
    net, topo, ch, cpu = _scene(device_energy_power_w=0.6)
    with pytest.raises(ValueError, match="device_energy_power_w = 0.6 W"):
        charge_round(net, topo, ch, cpu, Traffic(_uploads()), None, np.ones(3))
    net, topo, ch, cpu = _scene()
    with pytest.raises(ValueError, match="uplink_power_w must hold 3 finite powers > 0"):
        charge_round(net, topo, ch, cpu, Traffic(_uploads()), None, np.array([1.0, 0.0, 1.0]))


def test_cloud_round_adds_backhaul_and_downlink() -> None:
    net, topo, ch, cpu = _scene()
    kw = {"uplink_bandwidth_hz": np.array([1e6, 0.0, 0.0])}
    edge = _round(net, topo, ch, cpu, _uploads(), cloud_round=False, **kw)
    cloud = _round(net, topo, ch, cpu, _uploads(), cloud_round=True, **kw,
                         edge_to_cloud_bytes=np.array([1e6, 0.0]), cloud_to_edge_bytes=np.array([1e6, 1e6]),
                         edge_to_device_bytes=np.array([1e6, 0.0]))
    bh = 0.1 + 8e6 / 4e6  # 2.1 s each way
    dl = 8e6 / 20e6  # 0.4 s broadcast
    assert cloud.latency_s == pytest.approx(edge.latency_s + bh + bh + dl)
    b = cloud.breakdown
    assert b["latency/backhaul"] == pytest.approx(2 * bh) and b["latency/downlink"] == pytest.approx(dl)
    assert b["energy/backhaul"] == pytest.approx(0.8 * bh * 3)  # one up, two down
    assert b["energy/edge"] == pytest.approx(0.8 * bh + 1.0 * dl) and b["energy/cloud"] == pytest.approx(0.8 * bh * 2)
    assert cloud.energy_j == pytest.approx(edge.energy_j + 0.8 * bh * 3 + dl)
    assert b["bytes/backhaul"] == 3e6 and b["bytes/downlink"] == 1e6
    with pytest.raises(ValueError, match="cloud_round=False"):
        _round(net, topo, ch, cpu, _uploads(), cloud_round=False, edge_to_cloud_bytes=np.array([1e6, 0.0]))


def test_relay_aggregates_and_fixed_payload() -> None:
    net, topo, ch, cpu = _scene()
    kw = {"cloud_round": False, "uplink_bandwidth_hz": np.array([1e6, 0.0, 0.0])}
    agg = _round(net, topo, ch, cpu, _uploads(), relay_aggregates=True, **kw)
    assert agg.breakdown["bytes/uplink"] == max(P0, P1)
    sized = _round(net, topo, ch, cpu, _uploads(), relay_aggregates=True, relay_payload_bytes={0: 2_500_000}, **kw)
    assert sized.breakdown["bytes/uplink"] == 2_500_000
    fixed = NetworkConfig(channel=net.channel, compute=net.compute, fixed_payload_bytes=6_000_000)
    f = _round(fixed, topo, ch, cpu, _uploads(), **kw)
    assert f.breakdown["bytes/uplink"] == 12_000_000 and f.breakdown["bytes/d2d"] == 6_000_000


def test_gossip_steps_run_in_sequence() -> None:
    net, topo, ch, cpu = _scene()
    gossip = [D2DTransfer(0, 1, P0, 0), D2DTransfer(1, 0, P0, 0), D2DTransfer(0, 1, P0, 1), D2DTransfer(1, 0, P0, 1)]
    ups = [DeviceUpload(0, P0, 0, 2e9), DeviceUpload(1, 0, 1, 0.5e9)]
    cost = _round(net, topo, ch, cpu, ups, cloud_round=False, d2d=gossip,
                        uplink_bandwidth_hz=np.array([1e6, 0.0, 0.0]))
    step = 8 * P0 / R_D2D  # both directions in parallel within a step
    assert cost.latency_s == pytest.approx(TAU0 + 2 * step + 8 * P0 / R_UP_1MHZ)
    assert cost.breakdown["energy/d2d"] == pytest.approx(4 * 0.2 * step)
    assert cost.breakdown["bytes/d2d"] == 4 * P0


def test_invalid_rounds_raise_clear_errors() -> None:
    net, topo, ch, cpu = _scene()
    with pytest.raises(ValueError, match="not its D2D neighbour"):
        _round(net, topo, ch, cpu, [DeviceUpload(0, P0, 2, 0.0)], cloud_round=False)
    with pytest.raises(ValueError, match="itself relays"):
        _round(net, topo, ch, cpu, [DeviceUpload(0, P0, 1, 0.0), DeviceUpload(1, P1, 0, 0.0)], cloud_round=False)
    with pytest.raises(ValueError, match="budget"):
        _round(net, topo, ch, cpu, _uploads(), cloud_round=False, uplink_bandwidth_hz=np.array([3e6, 2e6, 0.0]))
    with pytest.raises(ValueError, match=r"uplink_bandwidth_hz\[0\] = 0"):
        _round(net, topo, ch, cpu, _uploads(), cloud_round=False, uplink_bandwidth_hz=np.zeros(3))
    with pytest.raises(ValueError, match="two DeviceUploads"):
        _round(net, topo, ch, cpu, [DeviceUpload(0, P0, 0), DeviceUpload(0, P1, 0)], cloud_round=False)
    with pytest.raises(ValueError, match="payload_bytes"):
        _round(net, topo, ch, cpu, [DeviceUpload(0, -5, 0)], cloud_round=False)
    with pytest.raises(ValueError, match="device_cpu_hz"):
        _round(net, topo, ch, np.zeros(3), _uploads(), cloud_round=False)
    with pytest.raises(ValueError, match="not a D2D link"):
        _round(net, topo, ch, cpu, _uploads(), cloud_round=False, d2d=[D2DTransfer(0, 2, 10)])


def test_prototype_star_and_edge_round_match_published_scale() -> None:
    # Star baseline of the prototype: 40 devices x (0.1 s + 6 MB / 4 Mbit/s) at 0.8 W = 12.1 s, 387.2 J,
    # exactly the published star row.
    net = NetworkConfig.preset("prototype")
    rng = np.random.default_rng(0)
    topo = make_topology(net.topology, rng)
    ch = draw_channel(topo, net.channel, rng)
    cpu = np.full(40, 1e9)
    ups = [DeviceUpload(i, 38_000_000, i, 1e10) for i in range(40)]  # real size ignored: fixed 6 MB
    star = charge_star(net, topo, cpu, ups)
    assert star.latency_s == pytest.approx(12.1) and star.energy_j == pytest.approx(387.2)
    # A cloud round adds 10 edges x 12.1 s x 0.8 W = 96.8 J of backhaul to the edge-only round.
    e = _round(net, topo, ch, cpu, ups, cloud_round=False)
    c = _round(net, topo, ch, cpu, ups, cloud_round=True, edge_to_cloud_bytes=1.0, cloud_to_edge_bytes=1.0)
    assert c.energy_j - e.energy_j == pytest.approx(96.8)
    assert c.latency_s - e.latency_s == pytest.approx(12.1)  # no downlink in the prototype
    assert e.breakdown["energy/compute"] == 0.0  # no computation charged
    with pytest.raises(ValueError, match="direct"):
        charge_star(net, topo, cpu, [DeviceUpload(0, 1, int(topo.neighbours(0)[0]))])


def test_cost_sum_over_rounds() -> None:
    net, topo, ch, cpu = _scene()
    a = _round(net, topo, ch, cpu, _uploads(), cloud_round=False)
    total = a + a
    assert total.latency_s == pytest.approx(2 * a.latency_s) and total.energy_j == pytest.approx(2 * a.energy_j)
    assert total.breakdown["bytes/uplink"] == 2 * a.breakdown["bytes/uplink"]


def test_default_round_is_deterministic() -> None:
    net = NetworkConfig(topology=TopologyConfig(num_edges=3, devices_per_edge=3))
    out = []
    for _ in range(2):
        rng = np.random.default_rng(11)
        topo = make_topology(net.topology, rng)
        ch = draw_channel(topo, net.channel, rng)
        ups = [DeviceUpload(i, 100_000, i, 1e8) for i in range(9)]
        out.append(_round(net, topo, ch, np.full(9, 1.5e9), ups, cloud_round=False).as_metrics())
    assert out[0] == out[1]
