"""Network model: formulas against hand computations, topology properties, config validation, presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from hffm.network import (
    ChannelConfig,
    ComputeConfig,
    NetworkConfig,
    Topology,
    TopologyConfig,
    build_topology,
    compute_energy,
    compute_time,
    draw_channel,
    draw_cpu_hz,
    make_topology,
    module_cycles,
    noise_w_per_hz,
    path_gain,
    rayleigh_fading,
    shannon_rate,
)

# ---------------------------------------------------------------- formulas


def test_path_gain_by_hand() -> None:
    # beta0 = -30 dB = 1e-3; (100 m)^-3 = 1e-6 -> 1e-9.
    assert path_gain(100.0, -30.0, 3.0) == pytest.approx(1e-9, rel=1e-12)
    # 50 m, alpha 2: 1e-3 / 2500 = 4e-7.
    assert path_gain(50.0, -30.0, 2.0) == pytest.approx(4e-7, rel=1e-12)
    # Below d0 = 1 m the distance is clipped: gain is beta0 itself, never more.
    np.testing.assert_allclose(path_gain(np.array([0.0, 0.5, 1.0]), -30.0, 3.0), [1e-3, 1e-3, 1e-3])


def test_noise_conversion_by_hand() -> None:
    # -174 dBm/Hz = 10^(-17.4) mW/Hz = 10^(-20.4) W/Hz ~ 3.98e-21.
    assert noise_w_per_hz(-174.0) == pytest.approx(10 ** (-20.4), rel=1e-12)
    assert noise_w_per_hz(-174.0) == pytest.approx(3.981e-21, rel=1e-3)
    assert noise_w_per_hz(0.0) == pytest.approx(1e-3)  # 0 dBm = 1 mW


def test_shannon_rate_by_hand() -> None:
    n0 = 1e-21
    # p g = N0 b -> SNR 1 -> log2(2) = 1: rate = b.
    assert shannon_rate(1e6, 1.0, 1e-15, n0) == pytest.approx(1e6)
    # SNR 3 -> log2(4) = 2.
    assert shannon_rate(1e6, 3.0, 1e-15, n0) == pytest.approx(2e6)
    # SNR 255 -> 8 bit/s/Hz on 2 MHz: p g = 255 * 1e-21 * 2e6.
    assert shannon_rate(2e6, 1.0, 255 * 2e-15, n0) == pytest.approx(16e6)
    # Zero bandwidth gives exactly zero, also inside arrays, and the rate grows with b (concave, bounded).
    r = shannon_rate(np.array([0.0, 1e5, 1e6, 1e7, 1e9]), 1.0, 1e-12, n0)
    assert r[0] == 0.0
    assert np.all(np.diff(r) > 0)
    assert r[-1] < 1e-12 / (n0 * math.log(2))
    with pytest.raises(ValueError, match="bandwidth"):
        shannon_rate(-1.0, 1.0, 1e-12, n0)


def test_compute_formulas_by_hand() -> None:
    assert compute_time(2e9, 2e9) == pytest.approx(1.0)
    # kappa * cycles * f^2 = 1e-28 * 2e9 * 4e18 = 0.8 J.
    assert compute_energy(2e9, 2e9, 1e-28) == pytest.approx(0.8)
    assert compute_energy(1e9, 1e9, 1e-28) == pytest.approx(0.1)
    assert module_cycles(1_000_000, 10, 6.0) == pytest.approx(6e7)
    cfg = ComputeConfig(kind_cycles_per_sample={"head": 2e4})
    assert cfg.cycles_per_sample("head", 10**6) == 2e4
    assert cfg.cycles_per_sample("adapter", 1000) == 6000.0
    with pytest.raises(ValueError, match="cpu_hz"):
        compute_time(1.0, 0.0)


def test_rayleigh_fading_is_exponential_mean_one() -> None:
    h = rayleigh_fading(np.random.default_rng(0), 20000)
    assert h.min() >= 0
    assert h.mean() == pytest.approx(1.0, abs=0.03)
    assert np.mean(h < 1.0) == pytest.approx(1 - math.exp(-1), abs=0.02)


def test_cpu_draw_in_range_and_seeded() -> None:
    cfg = ComputeConfig()
    a = draw_cpu_hz(cfg, 40, np.random.default_rng(3))
    b = draw_cpu_hz(cfg, 40, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 1e9 and a.max() <= 2e9


# ---------------------------------------------------------------- topology


def _pair_dist(t: Topology) -> np.ndarray:
    return np.linalg.norm(t.device_pos[:, None, :] - t.device_pos[None, :, :], axis=-1)


def _pairs(t: Topology, values: np.ndarray) -> np.ndarray:
    """A per-link array as a symmetric dense [N, N] matrix (test-sized topologies only)."""
    out = np.zeros((t.num_devices, t.num_devices), dtype=values.dtype)
    out[tuple(t.link_ends.T)] = out[tuple(t.link_ends[:, ::-1].T)] = values
    return out


def test_topology_deterministic_by_seed() -> None:
    cfg = TopologyConfig()
    a = make_topology(cfg, np.random.default_rng(7))
    b = make_topology(cfg, np.random.default_rng(7))
    c = make_topology(cfg, np.random.default_rng(8))
    np.testing.assert_array_equal(a.device_pos, b.device_pos)
    np.testing.assert_array_equal(a.link_ends, b.link_ends)
    assert not np.array_equal(a.device_pos, c.device_pos)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_topology_geometry(seed: int) -> None:
    cfg = TopologyConfig()
    t = make_topology(cfg, np.random.default_rng(seed))
    assert t.edge_pos.shape == (10, 2) and t.device_pos.shape == (40, 2)
    assert np.bincount(t.device_edge).tolist() == [4] * 10
    ed = np.linalg.norm(t.edge_pos[:, None] - t.edge_pos[None], axis=-1)
    assert ed[~np.eye(10, dtype=bool)].min() >= 500.0
    assert np.all((t.device_pos >= 0) & (t.device_pos <= 5000)) and np.all((t.edge_pos >= 0) & (t.edge_pos <= 5000))
    assert t.edge_dist.max() <= 1000.0 + 500.0 + 1e-9
    for e in range(10):
        idx = t.cluster(e)
        assert _pair_dist(t)[np.ix_(idx, idx)].max() <= 2 * 500.0 + 1e-9  # all within one 500 m disc


@pytest.mark.parametrize("radius", [0.0, 30.0, 300.0, 5000.0])
def test_d2d_graph_connected_per_cluster_never_across(radius: float) -> None:
    t = make_topology(TopologyConfig(d2d_radius_m=radius), np.random.default_rng(1))
    adj, dist, patched = t.adjacency.toarray(), _pair_dist(t), _pairs(t, t.link_patched)
    assert np.array_equal(adj, adj.T) and not adj.diagonal().any()
    assert not (adj & (t.device_edge[:, None] != t.device_edge[None, :])).any()
    for e in range(t.num_edges):
        idx = t.cluster(e)
        n_comp, _ = connected_components(adj[np.ix_(idx, idx)], directed=False)
        assert n_comp == 1
    # Radius links are exactly the close pairs; patched links are all longer than the radius.
    assert np.all(dist[patched] > radius) and np.array_equal(t.link_dist, dist[tuple(t.link_ends.T)])
    close = (dist <= radius) & (t.device_edge[:, None] == t.device_edge[None, :]) & ~np.eye(40, dtype=bool)
    assert np.array_equal(adj & ~patched, close)
    if radius == 0.0:  # nothing within the radius: the patch is each cluster's minimum spanning tree
        assert adj.sum() // 2 == 10 * 3
    for i in range(40):
        assert t.neighbours(i).tolist() == np.flatnonzero(adj[i]).tolist()
        assert [t.linked(i, j) for j in range(40)] == adj[i].tolist()


def test_spanning_patch_adds_shortest_link() -> None:
    # Three devices on a line: 0-1 within radius, 2 is 100 m from 1 and 150 m from 0 -> patch adds 1-2.
    t = build_topology(np.zeros((1, 2)), [[10, 0], [20, 0], [120, 0]], np.array([0, 0, 0]), d2d_radius_m=30)
    assert t.linked(0, 1) and t.linked(2, 1) and not t.linked(0, 2)
    assert t.link_ends.tolist() == [[0, 1], [1, 2]] and t.link_patched.tolist() == [False, True]
    unpatched = build_topology(
        np.zeros((1, 2)), [[10, 0], [20, 0], [120, 0]], np.array([0, 0, 0]), d2d_radius_m=30, spanning_patch=False
    )
    assert not unpatched.linked(1, 2) and unpatched.num_links == 1


# ---------------------------------------------------------------- invalid configs


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"device_tx_power_w": -1.0}, "device_tx_power_w"),
        ({"d2d_tx_power_w": 0.0}, "d2d_tx_power_w"),
        ({"edge_bandwidth_hz": 0.0}, "edge_bandwidth_hz"),
        ({"d2d_bandwidth_hz": 0.0}, "d2d_bandwidth_hz"),
        ({"backhaul_rate_bps": 0.0}, "backhaul_rate_bps"),
        ({"device_energy_power_w": -0.6}, "device_energy_power_w"),
        ({"fading": "rician"}, "fading"),
        ({"uplink_bandwidth_per_device_hz": 5e6}, "uplink_bandwidth_per_device_hz"),
    ],
)
def test_invalid_channel_config(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ChannelConfig(**kwargs)


def test_invalid_topology_and_compute_config() -> None:
    with pytest.raises(ValueError, match="num_edges"):
        TopologyConfig(num_edges=0)
    with pytest.raises(ValueError, match="area_m"):
        TopologyConfig(area_m=-5.0)
    with pytest.raises(ValueError, match=r"min_edge_separation_m.*topology\.layout\.area_m=\d+"):
        TopologyConfig(num_edges=100, min_edge_separation_m=1000.0, area_m=5000.0)  # a set area is kept
    with pytest.raises(ValueError, match="max_edge_distance_m"):
        TopologyConfig(max_edge_distance_m=1200.0)
    with pytest.raises(ValueError, match="kappa"):
        ComputeConfig(kappa=-1.0)
    with pytest.raises(ValueError, match="cpu_hz_range"):
        ComputeConfig(cpu_hz_range=(2e9, 1e9))
    with pytest.raises(ValueError, match="unknown network preset"):
        NetworkConfig.preset("fancy")


def test_device_with_no_reachable_edge() -> None:
    with pytest.raises(ValueError, match="no reachable edge"):
        build_topology(
            np.zeros((1, 2)), [[100, 0], [3000, 0]], np.array([0, 0]), d2d_radius_m=30, max_edge_distance_m=2000
        )


# ---------------------------------------------------------------- channel and presets


def test_draw_channel_shapes_and_links() -> None:
    net = NetworkConfig.preset("default")
    rng = np.random.default_rng(0)
    t = make_topology(net.topology, rng)
    ch = draw_channel(t, net.channel, rng)
    assert ch.uplink_gain.shape == (40,) and ch.link_rate.shape == ch.link_gain.shape == (t.num_links,)
    assert np.all(ch.link_rate > 0)
    rates = ch.rate_matrix().toarray()
    assert np.array_equal(rates > 0, t.adjacency.toarray()) and np.array_equal(rates, rates.T)
    i, j = (int(x) for x in t.link_ends[3])
    assert ch.d2d_rate_of(i, j) == ch.d2d_rate_of(j, i) == ch.link_rate[3] and ch.d2d_gain_of(j, i) == ch.link_gain[3]
    far = int(np.flatnonzero(t.device_edge != t.device_edge[0])[0])
    assert ch.d2d_rate_of(0, far) == 0.0 and ch.d2d_rate_of(0, 0) == 0.0
    ch2 = draw_channel(t, net.channel, rng)  # next round: fresh fading, same positions
    assert not np.allclose(ch.uplink_gain, ch2.uplink_gain, rtol=1e-6, atol=0)
    # Without fading the gain is the path gain itself.
    flat = draw_channel(t, ChannelConfig(fading="none"), rng)
    np.testing.assert_allclose(flat.uplink_gain, path_gain(t.edge_dist, -30.0, 3.0))


def test_prototype_preset_differs_as_documented() -> None:
    d, p = NetworkConfig.preset("default"), NetworkConfig.preset("prototype")
    td = make_topology(d.topology, np.random.default_rng(5))
    tp = make_topology(p.topology, np.random.default_rng(5))
    np.testing.assert_array_equal(td.device_pos, tp.device_pos)  # same positions, other D2D radius
    cd = draw_channel(td, d.channel, np.random.default_rng(6))
    cp = draw_channel(tp, p.channel, np.random.default_rng(6))
    np.testing.assert_allclose(cp.uplink_snr_db(1e6) - cd.uplink_snr_db(1e6), 30.0)  # noise over kHz
    assert np.median(cp.uplink_rate_at(1e6)) > np.median(cd.uplink_rate_at(1e6)) + 5e6
    assert (p.channel.device_tx_power_w, p.channel.d2d_tx_power_w) == (1.0, 0.2)
    assert (p.channel.uplink_energy_power_w, p.channel.d2d_energy_power) == (0.6, 0.8)
    assert (d.channel.uplink_energy_power_w, d.channel.d2d_energy_power) == (1.0, 0.2)
    assert (p.channel.d2d_bandwidth_hz, d.channel.d2d_bandwidth_hz) == (8e6, 1e6)
    assert p.channel.uplink_bandwidth_per_device_hz == 1e6 and d.channel.uplink_bandwidth_per_device_hz is None
    assert p.topology.d2d_radius_m == 30.0 and not p.compute.enabled and d.compute.enabled
    assert p.fixed_payload_bytes == 6_000_000 and d.fixed_payload_bytes is None
    assert not p.channel.charge_downlink and d.channel.charge_downlink
    assert NetworkConfig.preset("default", fixed_payload_bytes=1000).fixed_payload_bytes == 1000


def test_configs_work_as_hydra_structured_configs() -> None:
    from omegaconf import OmegaConf

    node = OmegaConf.structured(NetworkConfig.preset("prototype"))
    node.channel.d2d_bandwidth_hz = 2e6
    back = OmegaConf.to_object(node)
    assert isinstance(back, NetworkConfig) and back.channel.d2d_bandwidth_hz == 2e6
    assert back.channel.noise_bandwidth_scale == 1e-3 and back.compute.cpu_hz_range == (1e9, 2e9)


def test_unset_area_keeps_5km_and_grows_only_when_servers_cannot_fit() -> None:
    """Topologies that fit in 5 km stay exactly as they were; 1,000 edges (the scale issue's command) need no setting."""
    assert TopologyConfig().side_m == 5000.0
    assert TopologyConfig(num_edges=100).side_m == 5000.0  # fits: unchanged draws
    big = TopologyConfig(num_edges=1000, devices_per_edge=2)
    assert big.side_m > 5000.0 and big.area_m is None
    assert TopologyConfig(num_edges=1000, devices_per_edge=2, area_m=big.side_m)._packs(big.side_m)
    topo = make_topology(big, np.random.default_rng(0))
    gaps = topo.edge_pos[:, None, :] - topo.edge_pos[None, :, :]
    dist = np.hypot(gaps[..., 0], gaps[..., 1]) + np.eye(1000) * 1e9
    assert dist.min() >= big.min_edge_separation_m
    assert topo.edge_pos.max() <= big.side_m
