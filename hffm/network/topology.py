"""Positions of edge servers and devices, device-to-edge assignment and the D2D graph.

Each edge server heads one cluster of devices. D2D links exist only inside a cluster, between
devices within the connectivity radius, plus (by default) the shortest extra links that make each
cluster's D2D graph connected (the long edges of its minimum spanning tree), so a relay or a
cooperative aggregation can always reach every device of its cluster.

The graph is kept as a list of links (and a CSR index over them), built cluster by cluster: memory
and time are O(devices + links), never O(devices^2), so 100,000-device worlds fit in memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

import numpy as np

from hffm.lazy import LazyModule
from hffm.network.config import TopologyConfig

if TYPE_CHECKING:
    import scipy.sparse as sp
else:  # a config error builds no topology: it need not load scipy
    sp = LazyModule("scipy.sparse")


@dataclass(frozen=True, eq=False)
class Topology:
    """A drawn network. Arrays are read-only.

    edge_pos [E, 2] and device_pos [N, 2] in metres; device_edge [N] the server of each device's
    cluster. The D2D graph is undirected, inside clusters only, as L links: link_ends [L, 2] the
    two devices of each link (i < j, rows sorted), link_dist [L] their distance, link_patched [L]
    whether the spanning-tree patch added the link beyond the radius. indptr [N + 1] / nbr [2L] /
    nbr_link [2L] index them by device (CSR): device i's neighbours are nbr[indptr[i]:indptr[i+1]]
    (ascending), over the links nbr_link[...].
    """

    edge_pos: np.ndarray
    device_pos: np.ndarray
    device_edge: np.ndarray
    link_ends: np.ndarray
    link_dist: np.ndarray
    link_patched: np.ndarray
    indptr: np.ndarray
    nbr: np.ndarray
    nbr_link: np.ndarray

    @property
    def num_edges(self) -> int:
        return int(self.edge_pos.shape[0])

    @property
    def num_devices(self) -> int:
        return int(self.device_pos.shape[0])

    @property
    def num_links(self) -> int:
        return int(self.link_ends.shape[0])

    @property
    def edge_dist(self) -> np.ndarray:
        """[N] distance of each device to its own edge server (the uplink distance)."""
        return np.linalg.norm(self.device_pos - self.edge_pos[self.device_edge], axis=1)

    @cached_property
    def adjacency(self) -> sp.csr_array:
        """The D2D graph as a symmetric sparse bool matrix [N, N] (for scipy.sparse.csgraph)."""
        n = self.num_devices
        return sp.csr_array((np.ones(self.nbr.size, dtype=bool), self.nbr, self.indptr), shape=(n, n))

    def _check(self, i: int) -> int:
        if not 0 <= i < self.num_devices:
            raise IndexError(f"device {i} out of range [0, {self.num_devices})")
        return int(i)

    def neighbours(self, i: int) -> np.ndarray:
        """Indices of device i's D2D neighbours (same cluster, linked), ascending."""
        i = self._check(i)
        return self.nbr[self.indptr[i]:self.indptr[i + 1]]

    def link_index(self, i: int, j: int) -> int:
        """The index (into link_ends, and a channel's per-link arrays) of the link i - j, or -1."""
        i, j = self._check(i), self._check(j)
        row = self.nbr[self.indptr[i]:self.indptr[i + 1]]
        k = int(np.searchsorted(row, j))
        return int(self.nbr_link[self.indptr[i] + k]) if k < row.size and row[k] == j else -1

    def linked(self, i: int, j: int) -> bool:
        """Whether devices i and j share a D2D link (never i with itself)."""
        return self.link_index(i, j) >= 0

    def regrouped(self, device_edge: np.ndarray) -> tuple[Topology, np.ndarray]:
        """The same devices attached to other edges (e.g. re-attached around an outage): D2D links stay
        only between devices still in one cluster. Returns the topology and the indices of the kept links
        (to carry a channel's per-link arrays over: ``ChannelState.regrouped``)."""
        edge = np.asarray(device_edge, dtype=np.int64)
        if edge.shape != self.device_edge.shape or edge.min(initial=0) < 0 or edge.max(initial=0) >= self.num_edges:
            raise ValueError(f"device_edge must hold one edge index in [0, {self.num_edges}) per device")
        kept = np.flatnonzero(edge[self.link_ends[:, 0]] == edge[self.link_ends[:, 1]])
        ends = self.link_ends[kept]
        indptr, nbr, link = _csr(ends, self.num_devices)
        arrays = (edge, ends, self.link_dist[kept], self.link_patched[kept], indptr, nbr, link)
        for a in arrays:
            a.setflags(write=False)
        names = ("device_edge", "link_ends", "link_dist", "link_patched", "indptr", "nbr", "nbr_link")
        return dataclasses.replace(self, **dict(zip(names, arrays, strict=True))), kept

    def cluster(self, e: int) -> np.ndarray:
        """Indices of the devices served by edge e."""
        if not 0 <= e < self.num_edges:
            raise IndexError(f"edge {e} out of range [0, {self.num_edges})")
        return np.flatnonzero(self.device_edge == e)


@lru_cache(maxsize=64)
def _upper(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major (i, j) index pairs with i < j of an n x n matrix (read-only, cached per size)."""
    iu, ju = np.triu_indices(n, 1)
    iu.setflags(write=False)
    ju.setflags(write=False)
    return iu, ju


def _spanning_patch(dist: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """Links to add to `adj` (within one cluster) so it becomes connected: Kruskal over all pairs,
    which after the within-radius links keeps exactly the shortest links joining the components."""
    n = dist.shape[0]
    parent = list(range(n))
    components = n

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    iu, ju = _upper(n)
    linked = adj[iu, ju]
    for a, b in zip(iu[linked].tolist(), ju[linked].tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            components -= 1
    added = np.zeros_like(adj)
    if components == 1:
        return added
    for k in np.argsort(dist[iu, ju], kind="stable").tolist():
        a, b = int(iu[k]), int(ju[k])
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            added[a, b] = added[b, a] = True
            components -= 1
            if components == 1:  # connected: no later pair joins two components
                break
    return added


def _cluster_links(
    pos: np.ndarray, radius: float, spanning_patch: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One cluster's links (local indices a < b, row-major), their lengths and patch flags."""
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    adj = dist <= radius
    np.fill_diagonal(adj, False)
    patched = _spanning_patch(dist, adj) if spanning_patch and pos.shape[0] > 1 else np.zeros_like(adj)
    iu, ju = _upper(pos.shape[0])
    keep = (adj | patched)[iu, ju]
    a, b = iu[keep], ju[keep]
    return a, b, dist[a, b], patched[a, b]


def _links(
    device_pos: np.ndarray, device_edge: np.ndarray, radius: float, spanning_patch: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every cluster's links in global ids, rows (i, j) with i < j sorted: ends [L, 2], dist, patched."""
    order = np.argsort(device_edge, kind="stable")  # each cluster's devices ascending
    bounds = np.flatnonzero(np.diff(device_edge[order])) + 1
    ends, dist, patched = [], [], []
    for idx in np.split(order, bounds):
        if idx.size > 1:
            a, b, d, p = _cluster_links(device_pos[idx], radius, spanning_patch)
            ends.append(np.stack([idx[a], idx[b]], axis=1))
            dist.append(d)
            patched.append(p)
    if not ends:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0), np.zeros(0, dtype=bool)
    ends_all, dist_all, patched_all = np.concatenate(ends), np.concatenate(dist), np.concatenate(patched)
    rows = np.lexsort((ends_all[:, 1], ends_all[:, 0]))
    return ends_all[rows].astype(np.int64), dist_all[rows], patched_all[rows]


def _csr(ends: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both directions of every link grouped by device, neighbours ascending: (indptr, nbr, link)."""
    src = np.concatenate([ends[:, 0], ends[:, 1]])
    dst = np.concatenate([ends[:, 1], ends[:, 0]])
    link = np.concatenate([np.arange(len(ends))] * 2).astype(np.int64)
    rows = np.lexsort((dst, src))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst[rows].astype(np.int64), link[rows]


def build_topology(
    edge_pos: np.ndarray,
    device_pos: np.ndarray,
    device_edge: np.ndarray,
    *,
    d2d_radius_m: float,
    max_edge_distance_m: float = np.inf,
    spanning_patch: bool = True,
) -> Topology:
    """Topology from explicit positions (a user's own layout, or a hand-built test case).

    Raises ValueError when a device is farther than max_edge_distance_m from its edge (no reachable
    edge) or when shapes and indices do not match.
    """
    edge_pos = np.asarray(edge_pos, dtype=float).reshape(-1, 2) if np.size(edge_pos) else np.zeros((0, 2))
    device_pos = np.asarray(device_pos, dtype=float)
    device_edge = np.asarray(device_edge)
    if device_pos.ndim != 2 or device_pos.shape[1] != 2:
        raise ValueError(f"device_pos must have shape [N, 2], got {device_pos.shape}")
    if edge_pos.shape[0] < 1:
        raise ValueError("edge_pos must hold at least one edge server, shape [E, 2]")
    n = device_pos.shape[0]
    if device_edge.shape != (n,) or not np.issubdtype(device_edge.dtype, np.integer):
        raise ValueError(
            f"device_edge must be an integer array of shape [{n}], got {device_edge.dtype} {device_edge.shape}"
        )
    if n and (device_edge.min() < 0 or device_edge.max() >= edge_pos.shape[0]):
        raise ValueError(f"device_edge values must lie in [0, {edge_pos.shape[0]})")
    if not (np.all(np.isfinite(edge_pos)) and np.all(np.isfinite(device_pos))):
        raise ValueError("edge_pos and device_pos must be finite")
    if not d2d_radius_m >= 0:
        raise ValueError(f"d2d_radius_m must be >= 0, got {d2d_radius_m!r}")
    device_edge = device_edge.astype(np.int64)
    up = np.linalg.norm(device_pos - edge_pos[device_edge], axis=1)
    far = np.flatnonzero(up > max_edge_distance_m)
    if far.size:
        i = int(far[0])
        raise ValueError(
            f"device {i} is {up[i]:.0f} m from its edge {int(device_edge[i])}, beyond max_edge_distance_m = "
            f"{max_edge_distance_m:g} m: it has no reachable edge ({far.size} such device(s)); "
            "move it, or raise max_edge_distance_m"
        )
    ends, dist, patched = _links(device_pos, device_edge, float(d2d_radius_m), spanning_patch)
    indptr, nbr, nbr_link = _csr(ends, n)
    arrays = (edge_pos.copy(), device_pos.copy(), device_edge, ends, dist, patched, indptr, nbr, nbr_link)
    for a in arrays:
        a.setflags(write=False)
    return Topology(*arrays)


def _place_edges(cfg: TopologyConfig, rng: np.random.Generator) -> np.ndarray:
    """Uniform positions with pairwise distance >= min_edge_separation_m (rejection sampling).

    A candidate is compared only with the servers in the 5 x 5 grid cells (cells of the separation)
    around it: every farther server is more than the separation away on one axis, so the answers,
    and the draws, are those of comparing with every server."""
    sep, side = cfg.min_edge_separation_m, cfg.side_m
    for _restart in range(50):
        pts = np.empty((cfg.num_edges, 2))
        grid: dict[tuple[int, int], list[int]] = {}
        placed = 0
        for _ in range(cfg.num_edges):
            for _try in range(2000):
                p = rng.uniform(0.0, side, size=2)
                cx, cy = (int(p[0] // sep), int(p[1] // sep)) if sep > 0 else (0, 0)
                near = [k for dx in range(-2, 3) for dy in range(-2, 3) for k in grid.get((cx + dx, cy + dy), ())]
                gaps = p - pts[near]
                if np.all(np.hypot(gaps[:, 0], gaps[:, 1]) >= sep):
                    pts[placed] = p
                    grid.setdefault((cx, cy), []).append(placed)
                    placed += 1
                    break
            else:
                break
        if placed == cfg.num_edges:
            return pts
    raise ValueError(
        f"TopologyConfig.min_edge_separation_m = {sep:g} m: could not place {cfg.num_edges} servers that far "
        f"apart in a {cfg.side_m:g} m square; lower the separation or grow area_m"
    )


def _uniform_disc(rng: np.random.Generator, centre: np.ndarray, radius: float, count: int) -> np.ndarray:
    r = radius * np.sqrt(rng.uniform(0.0, 1.0, size=count))
    theta = rng.uniform(0.0, 2 * np.pi, size=count)
    return centre + np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def make_topology(cfg: TopologyConfig, rng: np.random.Generator) -> Topology:
    """Draw servers at least min_edge_separation_m apart, one cluster centre per server within
    cluster_center_distance_m of it, devices_per_edge devices within cluster_radius_m of the centre
    (all clipped to the area), then the D2D graph. Same rng state -> same topology."""
    if not isinstance(cfg, TopologyConfig):
        raise TypeError(f"make_topology needs a TopologyConfig, got {type(cfg).__name__}")
    edges = _place_edges(cfg, rng)
    devices, owner = [], []
    for e in range(cfg.num_edges):
        centre = _uniform_disc(rng, edges[e], cfg.cluster_center_distance_m, 1)[0]
        centre = np.clip(centre, 0.0, cfg.side_m)
        pts = np.clip(_uniform_disc(rng, centre, cfg.cluster_radius_m, cfg.devices_per_edge), 0.0, cfg.side_m)
        devices.append(pts)
        owner.extend([e] * cfg.devices_per_edge)
    return build_topology(
        edges,
        np.concatenate(devices),
        np.array(owner, dtype=np.int64),
        d2d_radius_m=cfg.d2d_radius_m,
        max_edge_distance_m=cfg.max_edge_distance_m,
        spanning_patch=cfg.d2d_spanning_patch,
    )
