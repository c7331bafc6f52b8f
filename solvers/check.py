"""Feasibility checker, written apart from the solvers: plain loops over devices, its own cost formulas.

`check_plan` lists every violated constraint of a plan (empty list = feasible) and re-derives the plan's
latency and energy from the README formulas, so a solver that misreports its own cost is caught too.
"""

from __future__ import annotations

import math

from solvers.instance import RoundProblem
from solvers.plan import RoundPlan


def _rate(b: float, p: float, g: float, n0: float) -> float:
    return b * math.log1p(p * g / (n0 * b)) / math.log(2) if b > 0 else 0.0  # log1p: exact for weak links too


def recompute_cost(problem: RoundProblem, plan: RoundPlan) -> tuple[float, float]:
    """(T, E) of the plan by the definitions, one device at a time."""
    pr = problem
    n, m = pr.num_devices, pr.num_modules
    links = {(int(s), int(d)): float(r) for s, d, r in zip(pr.d2d_src, pr.d2d_dst, pr.d2d_rate_bps, strict=True)}
    x = plan.placement.tolist()  # plain Python values from here on (numpy scalars are slow in loops)
    f = (pr.cpu_hz if plan.cpu_hz is None else plan.cpu_hz).tolist()
    pw = (pr.tx_power_w if plan.tx_power_w is None else plan.tx_power_w).tolist()
    rho = plan.relay.tolist()
    samples, cyc, size = pr.samples.tolist(), pr.module_cycles.tolist(), pr.module_bytes.tolist()
    tau = [samples[i] * sum(cyc[k] for k in range(m) if x[i][k]) / f[i] for i in range(n)]
    pay = [8 * sum(size[k] for k in range(m) if x[i][k]) for i in range(n)]
    energy = sum(pr.kappa * samples[i] * sum(cyc[k] for k in range(m) if x[i][k]) * f[i] ** 2 for i in range(n))
    d2d_power, gain, band = pr.d2d_power_w.tolist(), pr.uplink_gain.tolist(), plan.bandwidth_hz.tolist()
    latency = 0.0
    serves: dict[int, list[int]] = {j: [] for j in range(n)}
    for i in range(n):
        if rho[i] != i:
            serves[rho[i]].append(i)
    for j in range(n):
        if rho[j] != j:
            energy += d2d_power[j] * pay[j] / links[(j, rho[j])]
            continue
        served = serves[j]
        start = max([tau[j]] + [tau[i] + pay[i] / links[(i, j)] for i in served])
        if pr.relay_aggregates:
            bits = 8 * sum(size[k] for k in range(m) if x[j][k] or any(x[i][k] for i in served))
        else:
            bits = pay[j] + sum(pay[i] for i in served)
        if bits <= 0:
            continue
        r = _rate(band[j], pw[j], gain[j], pr.noise_w_per_hz)
        up = bits / r if r > 0 else math.inf
        latency = max(latency, start + up)
        energy += pw[j] * up
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
    neighbours: dict[int, set[int]] = {i: set() for i in range(n)}
    for s, d in zip(pr.d2d_src.tolist(), pr.d2d_dst.tolist(), strict=True):
        neighbours[s].add(d)
    x, elig, relay = plan.placement.tolist(), pr.eligible.tolist(), plan.relay.tolist()
    mem_k, mem_i, band = pr.module_memory_bytes.tolist(), pr.memory_bytes.tolist(), plan.bandwidth_hz.tolist()
    for i in range(n):
        dev = pr.device_ids[i]
        for k in range(m):
            if x[i][k] and not elig[i][k]:
                out.append(f"placement: device {dev!r} trains {pr.module_names[k]!r}, which it is not eligible for")
        used = sum(mem_k[k] for k in range(m) if x[i][k])
        if used > mem_i[i] * (1 + 1e-9):
            out.append(f"memory: device {dev!r} needs {used:g} bytes > {mem_i[i]:g}")
        r = relay[i]
        if pr.tree_aggregation:
            r = i  # the tree (plan.parent) is checked below; relay is its copy
        if not 0 <= r < n:
            out.append(f"relay: device {dev!r} relays to unknown index {r}")
            continue
        if r != i:
            if r not in neighbours[i]:
                out.append(f"relay: device {dev!r} -> {pr.device_ids[r]!r} has no D2D link")
            if relay[r] != r:
                out.append(f"relay: device {dev!r} -> {pr.device_ids[r]!r}, which does not upload directly (one hop)")
        b = band[i]
        if not (math.isfinite(b) and b >= 0):
            out.append(f"bandwidth: device {dev!r} has {b!r} Hz")
        if plan.tx_power_w is not None:
            pw, hi = float(plan.tx_power_w[i]), float(pr.power_max[i])
            if not (math.isfinite(pw) and 0 < pw <= hi * (1 + 1e-9)):
                out.append(f"power: device {dev!r} plans {pw!r} W, allowed (0, {hi:g}] (p_max)")
        if plan.cpu_hz is not None:
            fr, lo, hi = float(plan.cpu_hz[i]), float(pr.freq_min[i]), float(pr.freq_max[i])
            if not (math.isfinite(fr) and lo * (1 - 1e-9) <= fr <= hi * (1 + 1e-9)):
                out.append(f"frequency: device {dev!r} plans {fr!r} Hz, allowed [{lo:g}, {hi:g}] (f_min, f_max)")
    if pr.relay_capacity is not None:
        count: dict[int, int] = {}
        for i in range(n):
            if int(plan.relay[i]) != i:
                count[int(plan.relay[i])] = count.get(int(plan.relay[i]), 0) + 1
        for j, cnt in count.items():
            if cnt > pr.relay_capacity:
                out.append(f"relay capacity: device {pr.device_ids[j]!r} serves {cnt} > {pr.relay_capacity}")
    by_edge: dict[int, list[int]] = {e: [] for e in range(pr.num_edges)}
    for i, e in enumerate(pr.device_edge.tolist()):
        by_edge[e].append(i)
    samples = pr.samples.tolist()
    for e in range(pr.num_edges):
        members = by_edge[e]
        used = sum(max(band[i], 0.0) for i in members)
        if used > pr.edge_bandwidth_hz[e] * (1 + 1e-9):
            out.append(f"bandwidth: edge {pr.edge_ids[e]!r} uses {used:g} Hz > {pr.edge_bandwidth_hz[e]:g}")
        if allow_coverage:
            continue
        for k in range(m):
            need = pr.gamma * sum(samples[i] for i in members if elig[i][k])
            got = sum(samples[i] for i in members if x[i][k])
            if got < need * (1 - 1e-9):
                out.append(f"coverage: edge {pr.edge_ids[e]!r}, module {pr.module_names[k]!r}: {got:g} < {need:g}")
    if pr.tree_aggregation:
        out += _check_tree(pr, plan, neighbours, by_edge)
    if out or not check_cost:
        return out
    t, en = recompute_tree_cost(pr, plan) if pr.tree_aggregation else recompute_cost(pr, plan)
    if not math.isfinite(t):
        out.append("bandwidth: an uploading device has no bandwidth")
    for name, got, want in (("latency_s", plan.latency_s, t), ("energy_j", plan.energy_j, en),
                            ("objective", plan.objective, t + pr.lam * en)):
        if not math.isclose(got, want, rel_tol=rtol, abs_tol=1e-12):
            out.append(f"{name}: plan reports {got!r}, recomputed {want!r}")
    return out


def _check_tree(pr: RoundProblem, plan: RoundPlan, neighbours: dict, by_edge: dict) -> list[str]:
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
            if par[i] != i and par[i] not in neighbours[i]:
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
