"""The aggregation-tree round as one cvxpy model (tree_aggregation: true): placement, one arborescence per edge by a
single-commodity flow, ready times, T + lambda E -- a MILP for HiGHS whose optimum (and dual bound at any time
limit) bounds every tree plan from below. The same round as solvers/tree_model.py states with subset columns and
MTZ depths for highspy; this one states it over the variables of solvers/model.py, so constraints added with
`extra` (solvers/README.md, "Adding a constraint") apply to trees too.

Devices i, links l = (i -> j) (j would be i's parent), demanded modules m (x restricted to modules the edge
demands: dropping a module never costs more, so the bound holds for every plan):

  x_im in {0,1}; z_i in {0,1} (i is its edge's root, sum_{i in e} z_i = 1); y_l in {0,1}: sum_{l out of i} y_l + z_i = 1
  flow g_l in [0, (n_e - 1) y_l]: sum_out g - sum_in g = 1 - n_e z_i (each device sends one unit to the root: the arcs
      chosen are connected to it, so they form a tree); sum_{l into j} y_l <= relay_capacity
  u_im in [0,1] the subtree's union: u >= x, u_jm >= u_im + y_l - 1 (exact at integer points: costs grow in u)
  t_i >= tau_i(x) ready time;  t_j >= t_i + sum_m (8 s_m / r_l) u_im - M_l (1 - y_l)
  T >= t_i + sum_{r in e(i)} c_r z_r, c_r = U_e / R_r(B_e) (one uploader owns the band: a constant per root)
  T >= t_k + c_r + sum_m 8 s_m sp(k, r) u_km - M (1 - z_r)   (k's union travels at least the shortest D2D path)
  E = compute(x) + sum_i e_i + sum_r p_r c_r z_r,  e_i >= p_i sum_m (8 s_m / r_l) u_im - Q_l (1 - y_l)
  minimize T + lambda E.

At integer points T and E are exactly tree.tree_cost's (the path rows are valid, not binding at the optimum).
Power and frequency stay fixed on trees (as tree.py plans them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from solvers.clock import now
from solvers.edgebatch import EdgeView
from solvers.evaluate import uplink_rate
from solvers.instance import RoundProblem
from solvers.model import Certified, RoundModel, load_choices, run_highs, selection
from solvers.model_cache import ModelCache
from solvers.tree_bound import shortest_paths


def _pairs(p: RoundProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, r, sp[k, r]) for every ordered pair of one edge with a D2D path from k to r (global indices)."""
    ks, rs, sps = [], [], []
    for e in range(p.num_edges):
        v = EdgeView.of(p, e)
        sp = shortest_paths(v)
        k, r = np.nonzero(np.isfinite(sp) & ~np.eye(v.n, dtype=bool))
        ks.append(v.dev[k])
        rs.append(v.dev[r])
        sps.append(sp[k, r])
    return np.concatenate(ks).astype(int), np.concatenate(rs).astype(int), np.concatenate(sps)


def structure_key(p: RoundProblem) -> tuple:
    k, r, _ = _pairs(p)
    return ("tree", p.num_devices, p.num_modules, p.num_edges, tuple(p.device_edge.tolist()),
            tuple(p.d2d_src.tolist()), tuple(p.d2d_dst.tolist()), p.relay_capacity is not None, p.lam > 0,
            tuple(k.tolist()), tuple(r.tolist()))


def build(p: RoundProblem, extra: Sequence[Callable[[dict, dict], list]] = ()) -> RoundModel:
    """The tree program for p's structure (every number a Parameter: DPP, asserted)."""
    import cvxpy as cp

    n, m, ne, nl = p.num_devices, p.num_modules, p.num_edges, p.d2d_src.size
    pk, pr, _ = _pairs(p)
    npairs = pk.size
    edge_of = selection(p.device_edge, ne).T  # [E, N]
    out_of, s_l, d_l = selection(p.d2d_src, n).T, selection(p.d2d_src, n), selection(p.d2d_dst, n)
    par = {k: cp.Parameter(shape, nonneg=True, name=k) for k, shape in (
        ("elig", (n, m)), ("tau", (n, m)), ("mem", m), ("mem_cap", n), ("samples", (ne, n)), ("demand", (ne, m)),
        ("e_comp", (n, m)), ("j_comp", (n, m)), ("up", n), ("e_root", n), ("j_root", n), ("n_e", n),
        ("hop", (max(nl, 1), m)), ("big_m", max(nl, 1)), ("flow_cap", max(nl, 1)), ("e_hop", (max(nl, 1), m)),
        ("q_big", max(nl, 1)), ("sp_bits", (max(npairs, 1), m)),
        ("sp_big", max(npairs, 1)), ("up_r", max(npairs, 1)))}
    x = cp.Variable((n, m), boolean=True, name="x")
    z = cp.Variable(n, boolean=True, name="z")
    u = cp.Variable((n, m), nonneg=True, name="union")
    t = cp.Variable(n, nonneg=True, name="ready")
    big_t = cp.Variable(nonneg=True, name="T")
    tau = cp.sum(cp.multiply(par["tau"], x), axis=1)
    root_up = edge_of.T @ (edge_of @ cp.multiply(par["up"], z))  # [N] the upload time of i's edge's root
    cons = [x <= par["elig"], x @ par["mem"] <= par["mem_cap"], par["samples"] @ x >= par["demand"],
            edge_of @ z == 1, u >= x, u <= 1, t >= tau, big_t >= t + root_up]
    energy = cp.sum(cp.multiply(par["e_comp"], x)) + par["e_root"] @ z
    joules = cp.sum(cp.multiply(par["j_comp"], x), axis=1) + cp.multiply(par["j_root"], z)
    var: dict[str, Any] = {"x": x, "z": z, "union": u, "ready": t, "T": big_t, "tau": tau}
    if nl:
        y = cp.Variable(nl, boolean=True, name="y")
        g = cp.Variable(nl, nonneg=True, name="flow")
        e = cp.Variable(n, nonneg=True, name="e_d2d")
        su = s_l @ u  # [L, M] the sender's union per link
        cons += [out_of @ y + z == 1, g <= cp.multiply(par["flow_cap"], y),
                 out_of @ g - d_l.T @ g == 1 - cp.multiply(par["n_e"], z),
                 d_l @ u >= su + y[:, None] @ np.ones((1, m)) - 1,
                 d_l @ t >= s_l @ t + cp.sum(cp.multiply(par["hop"], su), axis=1) - cp.multiply(par["big_m"], 1 - y),
                 s_l @ e >= cp.sum(cp.multiply(par["e_hop"], su), axis=1) - cp.multiply(par["q_big"], 1 - y)]
        if p.relay_capacity is not None:
            par["cap"] = cp.Parameter(nonneg=True, name="cap")
            cons.append(d_l.T @ y <= par["cap"])
        par.update(lam=cp.Parameter(nonneg=True, name="lam"), t0=cp.Parameter(nonneg=True, name="t0"))
        energy = energy + par["lam"] * cp.sum(e)  # e: each sender's D2D energy / t0
        joules = joules + par["t0"] * e
        var.update(y=y, flow=g, e_d2d=e)
    else:
        cons.append(z == 1)
    if npairs:
        sk, sr = selection(pk, n), selection(pr, n)
        cons.append(big_t >= sk @ t + par["up_r"] + cp.sum(cp.multiply(par["sp_bits"], sk @ u), axis=1)
                    - cp.multiply(par["sp_big"], 1 - sr @ z))
    var.update(energy=energy, device_energy_j=joules)
    for fn in extra:
        cons += fn(var, par)
    prob = cp.Problem(cp.Minimize(big_t + energy), cons)
    assert prob.is_dpp()
    return RoundModel(key=structure_key(p), problem=prob, var=var, par=par)


def load(model: RoundModel, p: RoundProblem, t0: float) -> None:
    """Set the numbers of p, time unit t0 (the incumbent's objective)."""
    par = model.par
    demand = p.coverage_demand()
    need = demand[p.device_edge] > 0  # [N, M] the modules i's edge demands
    load_choices(par, p, t0, (p.eligible & need & (p.samples > 0)[:, None] & (
        p.module_memory_bytes[None, :] <= p.memory_bytes[:, None] * (1 + 1e-12))).astype(float))
    lam = p.lam
    jc = p.kappa * p.samples[:, None] * p.module_cycles[None, :] * p.cpu_hz[:, None] ** 2
    par["j_comp"].value = jc
    par["e_comp"].value = lam * jc / t0
    bits = 8.0 * p.module_bytes
    edge_bits = (demand > 0).astype(float) @ bits  # [E] U_e: every demanded module reaches the root
    ub = edge_bits[p.device_edge]
    up_s = np.where(ub > 0, ub / uplink_rate(p.edge_bandwidth_hz[p.device_edge], p.snr_hz), 0.0)  # seconds
    par["up"].value = up_s / t0
    par["j_root"].value = p.tx_power_w * up_s
    par["e_root"].value = lam * p.tx_power_w * up_s / t0
    par["n_e"].value = np.bincount(p.device_edge, minlength=p.num_edges)[p.device_edge].astype(float)
    if p.d2d_src.size:
        src = p.d2d_src
        hop = bits[None, :] / p.d2d_rate_bps[:, None] / t0
        par["hop"].value = hop
        par["big_m"].value = 1.0 + hop.sum(axis=1)  # ready times of plans worth finding are <= 1 (T <= t0)
        par["flow_cap"].value = par["n_e"].value[src] - 1.0
        par["e_hop"].value = p.d2d_power_w[src, None] * hop  # J / t0
        par["q_big"].value = par["e_hop"].value.sum(axis=1)
        par["lam"].value, par["t0"].value = lam, t0
        if "cap" in par:
            par["cap"].value = float(p.relay_capacity or 0)
    pk, pr, sp = _pairs(p)
    if pk.size:
        par["sp_bits"].value = bits[None, :] * sp[:, None] / t0
        par["up_r"].value = par["up"].value[pr]
        par["sp_big"].value = 1.0 + par["up"].value[pr] + par["sp_bits"].value.sum(axis=1)


def compiled(p: RoundProblem, cache: ModelCache | None = None) -> RoundModel:
    if cache is None:
        return build(p)
    return cache.get(structure_key(p), lambda: build(p))


def tree_round_cost(p: RoundProblem, x: np.ndarray, parent: np.ndarray) -> float:
    """T + lambda E of a tree plan (tree.tree_cost per edge; T the slowest edge)."""
    from solvers.tree import tree_cost

    t, energy = 0.0, 0.0
    for e in range(p.num_edges):
        v = EdgeView.of(p, e)
        loc = np.searchsorted(v.dev, parent[v.dev])
        f, en = tree_cost(v, x[v.dev][None], loc[None])
        t, energy = max(t, float(f[0])), energy + float(en[0])
    return t + p.lam * energy


def valid_tree(p: RoundProblem, x: np.ndarray, parent: np.ndarray) -> bool:
    """Memory, eligibility, coverage and one tree per edge within relay_capacity (a MILP stopped early may return
    junk)."""
    from solvers.model_price import feasible
    from solvers.tree import is_tree

    if not feasible(p, x, np.arange(p.num_devices)):
        return False
    for e in range(p.num_edges):
        v = EdgeView.of(p, e)
        if not is_tree(v.rate, np.searchsorted(v.dev, parent[v.dev]), p.relay_capacity):
            return False
    return True


def certify_tree(p: RoundProblem, x0: np.ndarray, parent0: np.ndarray, deadline: float, gap: float = 0.01,
                 extra: Sequence[Callable[[dict, dict], list]] = (), cache: ModelCache | None = None) -> Certified:
    """Improve and certify the tree plan (x0, parent0) with the tree MILP (one solve: no cuts are needed, every
    number is exact), within now() <= deadline. extra: more constraints, as `model.certify` (the incumbent then only
    sets the units). Certified.relay holds the parents."""
    best_x, best_p = np.asarray(x0, dtype=bool), np.asarray(parent0, dtype=int)
    scale = tree_round_cost(p, best_x, best_p)
    best = math.inf if extra else scale
    if not np.isfinite(scale) or scale <= 0:
        return Certified(best_x, best_p, scale, 0.0, False, 0)
    m = build(p, extra) if extra else compiled(p, cache)
    load(m, p, scale)
    left = deadline - now()
    if left <= 0.05:
        return Certified(best_x, best_p, scale, 0.0, False, 0)
    status, sol, bound = _run(m, p, left, gap, None if extra else 1.0)
    lower = 0.0
    if status == "infeasible":
        lower = best
    elif bound is not None:
        lower = bound * scale * (1 - 1e-7)
    if sol is not None and (not extra or status == "optimal") and valid_tree(p, *sol):
        cand = tree_round_cost(p, *sol)
        if cand < best:
            best, best_x, best_p = cand, sol[0], sol[1]
    lower = min(lower, best)
    return Certified(best_x, best_p, best, lower, lower >= best * (1 - gap), 1)


def _run(m: RoundModel, p: RoundProblem, time_limit: float, gap: float,
         cutoff: float | None) -> tuple[str, tuple[np.ndarray, np.ndarray] | None, float | None]:
    status, bound, present = run_highs(m.problem, time_limit, gap, cutoff)
    x = m.var["x"].value
    if not present or x is None:
        return status, None, bound
    parent = np.arange(p.num_devices)
    if "y" in m.var:
        on = np.asarray(m.var["y"].value) > 0.5
        parent[p.d2d_src[on]] = p.d2d_dst[on]
    return status, (np.asarray(x) > 0.5, parent), bound
