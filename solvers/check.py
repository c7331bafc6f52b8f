"""Feasibility checker, written apart from the solvers: its own cost formulas, on whole arrays with numpy.

`check_plan` lists every violated constraint of a plan (empty list = feasible) and re-derives the plan's
latency and energy from the README formulas, so a solver that misreports its own cost is caught too. It imports
nothing from the solvers (not even solvers/evaluate.py), so a wrong formula there cannot hide here.
"""

from __future__ import annotations

import math

import numpy as np

from solvers.instance import RoundProblem
from solvers.plan import RoundPlan


def _rate(b: float, p: float, g: float, n0: float) -> float:
    return b * math.log1p(p * g / (n0 * b)) / math.log(2) if b > 0 else 0.0  # log1p: exact for weak links too


class _Links:
    """Lookup of directed D2D links (src, dst) -> rate, by binary search over the sorted pair keys."""

    def __init__(self, pr: RoundProblem) -> None:
        self.n = pr.num_devices
        key = pr.d2d_src.astype(np.int64) * self.n + pr.d2d_dst
        order = np.argsort(key, kind="stable")
        self.key, self.rate = key[order], pr.d2d_rate_bps[order]

    def rate_of(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Rate of each link src -> dst; 0 where there is no such link."""
        want = np.asarray(src, dtype=np.int64) * self.n + np.asarray(dst)
        if self.key.size == 0:
            return np.zeros(want.shape)
        pos = np.minimum(np.searchsorted(self.key, want), self.key.size - 1)
        return np.where(self.key[pos] == want, self.rate[pos], 0.0)


def recompute_cost(problem: RoundProblem, plan: RoundPlan) -> tuple[float, float]:
    """(T, E) of a one-hop relay plan by the definitions of solvers/README.md."""
    pr = problem
    n = pr.num_devices
    x = plan.placement
    f = pr.cpu_hz if plan.cpu_hz is None else plan.cpu_hz
    pw = pr.tx_power_w if plan.tx_power_w is None else plan.tx_power_w
    rho = plan.relay
    cycles = pr.samples * (x.astype(float) @ pr.module_cycles)
    tau = cycles / f
    factor = np.ones(n) if plan.level is None else pr.level_factor[plan.level]  # type: ignore[index]
    pay = 8.0 * (x.astype(float) @ pr.module_bytes) * factor
    energy = float(np.sum(pr.kappa * cycles * f ** 2))
    relayed = np.flatnonzero(rho != np.arange(n))
    with np.errstate(divide="ignore", invalid="ignore"):
        hop = pay[relayed] / _Links(pr).rate_of(relayed, rho[relayed])
    energy += float(np.sum(pr.d2d_power_w[relayed] * hop))
    start = tau.copy()
    np.maximum.at(start, rho[relayed], tau[relayed] + hop)
    if pr.relay_aggregates:
        union = x.copy()
        np.logical_or.at(union, rho[relayed], x[relayed])
        bits = 8.0 * (union.astype(float) @ pr.module_bytes) * factor
    else:
        bits = pay.copy()
        np.add.at(bits, rho[relayed], pay[relayed])
    up = np.flatnonzero((rho == np.arange(n)) & (bits > 0))
    b = plan.bandwidth_hz[up]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(b > 0, b * np.log1p(pw[up] * pr.uplink_gain[up] / (pr.noise_w_per_hz * b)) / math.log(2), 0.0)
        time = np.where(rate > 0, bits[up] / rate, np.inf)
    latency = float(np.max(start[up] + time, initial=0.0))
    energy += float(np.sum(pw[up] * time))
    return latency, energy


def check_plan(problem: RoundProblem, plan: RoundPlan, rtol: float = 1e-6, check_cost: bool = True,
               allow_coverage: bool = False) -> list[str]:
    """Every violation of the round's constraints by `plan` (allow_coverage skips coverage, for fallbacks)."""
    pr = problem
    n, m = pr.num_devices, pr.num_modules
    if plan.placement.shape != (n, m) or plan.relay.shape != (n,) or plan.bandwidth_hz.shape != (n,):
        return [f"shapes: plan has placement {plan.placement.shape}, relay {plan.relay.shape}, bandwidth "
                f"{plan.bandwidth_hz.shape} for {n} devices and {m} modules"]
    out: list[str] = []
    ids, x, band = pr.device_ids, plan.placement, plan.bandwidth_hz
    for i, k in np.argwhere(x & ~pr.eligible).tolist():
        out.append(f"placement: device {ids[i]!r} trains {pr.module_names[k]!r}, which it is not eligible for")
    used = x.astype(float) @ pr.module_memory_bytes
    for i in np.flatnonzero(used > pr.memory_bytes * (1 + 1e-9)).tolist():
        out.append(f"memory: device {ids[i]!r} needs {used[i]:g} bytes > {pr.memory_bytes[i]:g}")
    links = _Links(pr)
    r = plan.relay
    moved = np.flatnonzero((r != np.arange(n)) & (r >= 0) & (r < n))
    if not pr.tree_aggregation:  # in a tree plan relay is the copy of parent, checked by _check_tree
        for i in np.flatnonzero((r < 0) | (r >= n)).tolist():
            out.append(f"relay: device {ids[i]!r} relays to unknown index {int(r[i])}")
        for i in moved[links.rate_of(moved, r[moved]) <= 0].tolist():
            out.append(f"relay: device {ids[i]!r} -> {ids[r[i]]!r} has no D2D link")
        for i in moved[r[r[moved]] != r[moved]].tolist():
            out.append(f"relay: device {ids[i]!r} -> {ids[r[i]]!r}, which does not upload directly (one hop)")
    if pr.relay_capacity is not None:
        count = np.bincount(r[moved], minlength=n)
        for j in np.flatnonzero(count > pr.relay_capacity).tolist():
            out.append(f"relay capacity: device {ids[j]!r} serves {count[j]} > {pr.relay_capacity}")
    for i in np.flatnonzero(~(np.isfinite(band) & (band >= 0))).tolist():
        out.append(f"bandwidth: device {ids[i]!r} has {float(band[i])!r} Hz")
    if plan.tx_power_w is not None:
        pw, hi = plan.tx_power_w, pr.power_max
        for i in np.flatnonzero(~(np.isfinite(pw) & (pw > 0) & (pw <= hi * (1 + 1e-9)))).tolist():
            out.append(f"power: device {ids[i]!r} plans {float(pw[i])!r} W, allowed (0, {hi[i]:g}] (p_max)")
    if plan.cpu_hz is not None:
        fr, lo, hi = plan.cpu_hz, pr.freq_min, pr.freq_max
        for i in np.flatnonzero(~(np.isfinite(fr) & (fr >= lo * (1 - 1e-9)) & (fr <= hi * (1 + 1e-9)))).tolist():
            out.append(f"frequency: device {ids[i]!r} plans {float(fr[i])!r} Hz, allowed [{lo[i]:g}, {hi[i]:g}] "
                       "(f_min, f_max)")
    edge = pr.device_edge
    with np.errstate(invalid="ignore"):
        used_band = np.bincount(edge, weights=np.maximum(band, 0.0), minlength=pr.num_edges)
    for e in np.flatnonzero(~(used_band <= pr.edge_bandwidth_hz * (1 + 1e-9))).tolist():
        out.append(f"bandwidth: edge {pr.edge_ids[e]!r} uses {used_band[e]:g} Hz > {pr.edge_bandwidth_hz[e]:g}")
    out += _check_levels(pr, plan)
    if not allow_coverage:
        need, got = np.zeros((pr.num_edges, m)), np.zeros((pr.num_edges, m))
        np.add.at(need, edge, pr.eligible * pr.samples[:, None])
        np.add.at(got, edge, x * pr.samples[:, None])
        need *= pr.gamma
        for e, k in np.argwhere(got < need * (1 - 1e-9)).tolist():
            out.append(f"coverage: edge {pr.edge_ids[e]!r}, module {pr.module_names[k]!r}: {got[e, k]:g} < "
                       f"{need[e, k]:g}")
    if pr.tree_aggregation:
        by_edge: dict[int, list[int]] = {e: [] for e in range(pr.num_edges)}
        for i, e in enumerate(edge.tolist()):
            by_edge[e].append(i)
        out += _check_tree(pr, plan, links, by_edge)
    if out or not check_cost:
        return out
    t, en = recompute_tree_cost(pr, plan) if pr.tree_aggregation else recompute_cost(pr, plan)
    if not math.isfinite(t):
        out.append("bandwidth: an uploading device has no bandwidth")
    for name, got_v, want in (("latency_s", plan.latency_s, t), ("energy_j", plan.energy_j, en),
                              ("objective", plan.objective, t + pr.lam * en + _penalty(pr, plan))):
        if not math.isclose(got_v, want, rel_tol=rtol, abs_tol=1e-12):
            out.append(f"{name}: plan reports {got_v!r}, recomputed {want!r}")
    return out


def _check_levels(pr: RoundProblem, plan: RoundPlan) -> list[str]:
    """A plan's compression levels: offered ones, within the distortion budget (none chosen: full size)."""
    if plan.level is None:
        return []
    if pr.level_factor is None or pr.level_distortion is None:
        return ["level: the plan chooses compression levels but the round offers none"]
    lv = plan.level
    bad = np.flatnonzero((lv < 0) | (lv >= len(pr.level_factor)))
    if bad.size:
        return [f"level: device {pr.device_ids[int(bad[0])]!r} has level {int(lv[bad[0]])}, not one of the "
                f"{len(pr.level_factor)} offered"]
    total = _penalty(pr, plan, weight=1.0)
    if pr.distortion_budget is not None and total > pr.distortion_budget * (1 + 1e-9):
        return [f"distortion: the levels add {total:g} > distortion_budget {pr.distortion_budget:g}"]
    return []


def _penalty(pr: RoundProblem, plan: RoundPlan, weight: float | None = None) -> float:
    """weight (default: the penalty) x the summed distortion of the sending devices' levels."""
    if plan.level is None or pr.level_distortion is None:
        return 0.0
    sends = plan.placement.any(axis=1) & (plan.placement.astype(float) @ pr.module_bytes > 0)
    total = float(pr.level_distortion[plan.level][sends].sum())
    return total * (pr.distortion_penalty if weight is None else weight)


def _check_tree(pr: RoundProblem, plan: RoundPlan, links: _Links, by_edge: dict) -> list[str]:
    """One root per edge, every other device's parent a D2D neighbour, no cycle, band only to the root."""
    if plan.parent is None:
        return ["parent: tree_aggregation needs the plan's parent array"]
    out = []
    n = pr.num_devices
    par = [int(v) for v in plan.parent]
    for e, members in by_edge.items():
        roots = [i for i in members if par[i] == i]
        if members and len(roots) != 1:
            out.append(f"parent: edge {pr.edge_ids[e]!r} has {len(roots)} roots, needs exactly one uploader")
        for i in members:
            if not 0 <= par[i] < n:
                out.append(f"parent: device {pr.device_ids[i]!r} has unknown parent index {par[i]}")
                continue
            if par[i] != i and links.rate_of(np.array([i]), np.array([par[i]]))[0] <= 0:
                out.append(f"parent: device {pr.device_ids[i]!r} -> {pr.device_ids[par[i]]!r} has no D2D link")
            if par[i] != i and float(plan.bandwidth_hz[i]) > 0:
                out.append(f"bandwidth: device {pr.device_ids[i]!r} is not its tree's uploader but has band")
            j, steps = i, 0
            while 0 <= j < n and par[j] != j and steps <= n:
                j, steps = par[j], steps + 1
            if steps > n:
                out.append(f"parent: device {pr.device_ids[i]!r} is on a cycle")
    return out


def recompute_tree_cost(problem: RoundProblem, plan: RoundPlan) -> tuple[float, float]:
    """(T, E) of a tree plan by the definitions (solvers/tree.py), by recursion over children."""
    pr = problem
    if plan.parent is None:
        raise ValueError("parent: tree_aggregation needs the plan's parent array")
    n, m = pr.num_devices, pr.num_modules
    links = {(int(s), int(d)): float(r) for s, d, r in zip(pr.d2d_src, pr.d2d_dst, pr.d2d_rate_bps, strict=True)}
    par = [int(v) for v in plan.parent]
    children: dict[int, list[int]] = {i: [] for i in range(n)}
    for i in range(n):
        if par[i] != i:
            children[par[i]].append(i)
    x = [[bool(plan.placement[i, k]) for k in range(m)] for i in range(n)]
    tau = [pr.samples[i] * sum(pr.module_cycles[k] for k in range(m) if x[i][k]) / pr.cpu_hz[i] for i in range(n)]
    energy = sum(pr.kappa * pr.samples[i] * sum(pr.module_cycles[k] for k in range(m) if x[i][k]) * pr.cpu_hz[i] ** 2
                 for i in range(n))

    def visit(i: int) -> tuple[float, set[int]]:  # (ready time, modules of the subtree)
        ready, mods = tau[i], {k for k in range(m) if x[i][k]}
        for c in children[i]:
            c_ready, c_mods = visit(c)
            bits = 8 * sum(pr.module_bytes[k] for k in c_mods)
            hop = bits / links[(c, i)] if bits > 0 else 0.0
            nonlocal energy
            energy += pr.d2d_power_w[c] * hop
            ready = max(ready, c_ready + hop)
            mods |= c_mods
        return ready, mods

    latency = 0.0
    for r in range(n):
        if par[r] != r:
            continue
        ready, mods = visit(r)
        bits = 8 * sum(pr.module_bytes[k] for k in mods)
        if bits <= 0:
            continue
        rate = _rate(float(plan.bandwidth_hz[r]), pr.tx_power_w[r], pr.uplink_gain[r], pr.noise_w_per_hz)
        up = bits / rate if rate > 0 else math.inf
        latency = max(latency, ready + up)
        energy += pr.tx_power_w[r] * up
    return latency, energy
