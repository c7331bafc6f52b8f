"""The sparse D2D graph and per-link channel against the dense N x N construction they replaced."""

from __future__ import annotations

import numpy as np
import pytest

from hffm.network import ChannelConfig, TopologyConfig, build_topology, draw_channel, make_topology, shannon_rate
from hffm.network.channel import noise_w_per_hz, path_gain
from hffm.network.topology import _spanning_patch


def _dense_reference(device_pos: np.ndarray, device_edge: np.ndarray, radius: float, patch: bool):
    """The dense construction (all N x N pairs, then the patch per cluster), as before the sparse one."""
    dist = np.linalg.norm(device_pos[:, None, :] - device_pos[None, :, :], axis=-1)
    adj = (device_edge[:, None] == device_edge[None, :]) & (dist <= radius)
    np.fill_diagonal(adj, False)
    patched = np.zeros_like(adj)
    if patch:
        for e in np.unique(device_edge):
            idx = np.flatnonzero(device_edge == e)
            if idx.size > 1:
                patched[np.ix_(idx, idx)] = _spanning_patch(dist[np.ix_(idx, idx)], adj[np.ix_(idx, idx)])
    return adj | patched, dist, patched


def _old_place_edges(cfg: TopologyConfig, rng: np.random.Generator) -> np.ndarray:
    """The list-based rejection sampler the vectorized one replaced (same draws, same answers)."""
    for _restart in range(50):
        pts: list[np.ndarray] = []
        for _ in range(cfg.num_edges):
            for _try in range(2000):
                p = rng.uniform(0.0, cfg.side_m, size=2)
                if all(np.hypot(*(p - q)) >= cfg.min_edge_separation_m for q in pts):
                    pts.append(p)
                    break
            else:
                break
        if len(pts) == cfg.num_edges:
            return np.array(pts)
    raise AssertionError("unplaceable")


@pytest.mark.parametrize(("seed", "radius", "patch"), [(0, 300.0, True), (1, 0.0, True), (2, 120.0, False),
                                                       (3, 5000.0, True), (4, 60.0, True)])
def test_links_equal_dense_construction(seed: int, radius: float, patch: bool) -> None:
    cfg = TopologyConfig(num_edges=4, devices_per_edge=9, d2d_radius_m=radius, d2d_spanning_patch=patch)
    t = make_topology(cfg, np.random.default_rng(seed))
    # Devices of a cluster interleaved with others' (the sparse build groups them itself).
    order = np.random.default_rng(seed).permutation(t.num_devices)
    pos, owner = t.device_pos[order], t.device_edge[order]
    s = build_topology(t.edge_pos, pos, owner, d2d_radius_m=radius, spanning_patch=patch)
    adj, dist, patched = _dense_reference(pos, owner, radius, patch)
    np.testing.assert_array_equal(s.adjacency.toarray(), adj)
    iu = np.nonzero(np.triu(adj, 1))
    np.testing.assert_array_equal(s.link_ends, np.stack(iu, axis=1))  # row-major order of the dense upper triangle
    np.testing.assert_array_equal(s.link_dist, dist[iu])  # bit-identical lengths
    np.testing.assert_array_equal(s.link_patched, patched[iu])
    assert patch or not s.link_patched.any()
    for i in range(s.num_devices):
        np.testing.assert_array_equal(s.neighbours(i), np.flatnonzero(adj[i]))
        for j in np.flatnonzero(adj[i]):
            assert tuple(sorted((i, int(j)))) == tuple(s.link_ends[s.link_index(i, int(j))])


def test_edge_placement_unchanged() -> None:
    cfg = TopologyConfig(num_edges=30, area_m=6000.0, min_edge_separation_m=700.0)
    a = make_topology(cfg, np.random.default_rng(11))
    np.testing.assert_array_equal(a.edge_pos, _old_place_edges(cfg, np.random.default_rng(11)))


def test_channel_per_link_deterministic_and_equal_without_fading() -> None:
    t = make_topology(TopologyConfig(num_edges=3, devices_per_edge=6, d2d_radius_m=200.0), np.random.default_rng(0))
    cfg = ChannelConfig()
    a, b = draw_channel(t, cfg, np.random.default_rng(5)), draw_channel(t, cfg, np.random.default_rng(5))
    np.testing.assert_array_equal(a.link_rate, b.link_rate)
    np.testing.assert_array_equal(a.uplink_gain, b.uplink_gain)
    # Rayleigh draws: N uplink values, then one per link in link order.
    fading = np.random.default_rng(5).exponential(1.0, size=t.num_devices + t.num_links)
    loss = path_gain(t.link_dist, cfg.beta0_db, cfg.path_loss_exponent, cfg.d0_m)
    np.testing.assert_array_equal(a.link_gain, loss * fading[t.num_devices:])
    # Without fading no numbers are drawn and the rates are the dense formula's, link by link.
    flat = draw_channel(t, ChannelConfig(fading="none"), np.random.default_rng(5))
    dist = np.linalg.norm(t.device_pos[:, None, :] - t.device_pos[None, :, :], axis=-1)
    n0 = noise_w_per_hz(cfg.noise_dbm_per_hz) * cfg.noise_bandwidth_scale
    gain = path_gain(dist, cfg.beta0_db, cfg.path_loss_exponent, cfg.d0_m)
    dense = np.where(t.adjacency.toarray(), shannon_rate(cfg.d2d_bandwidth_hz, cfg.d2d_tx_power_w, gain, n0), 0.0)
    np.testing.assert_array_equal(flat.rate_matrix().toarray(), dense)
