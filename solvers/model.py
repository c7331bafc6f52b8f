"""The round as one cvxpy model: a MILP for HiGHS whose optimum is a certified lower bound, refined by tangent cuts.

Variables (per device i, link l = (i -> j), module m; see solvers/README.md "The round as one model"):
  x[i, m] in {0, 1} placement;  r[l] in {0, 1} "i relays through j";  d_i = 1 - sum_{l out of i} r[l] (direct);
  beta_i = b_i / B_e in [0, 1] band share;  eps_i >= 1 / R_i(b_i) seconds per bit (scaled);
  S_i upload start;  T latency;  o[i, m] = x[i, m] d_i (own bits uploaded), w[l, m] = r[l] x[i, m] (bits relayed),
  u[j, m] (the union, with relay_aggregates);  v[k, m] = z[k, m] eps_owner(k) (the products of bits and eps);
  y[i, l] the compression level where the problem offers levels (solvers/model_levels.py: per-level copies of z);
  zeta_i = f_nom / f_i and eta_i the energy per uploaded bit where power and frequency are decisions
  (solvers/model_powerfreq.py). Trees: solvers/model_tree.py.
Constraints: memory, coverage, one hop (r[l] <= d_j), relay capacity, band (sum beta <= 1 per edge), start after
every part arrives, T >= S_j + upload time_j. Objective: T + lambda E.

Exact where it is linear (placement, relays, compute and D2D time and energy); the one convex term that meets
integers, 1 / R(b) (times the bits), enters through **outer approximation**: eps_i >= tangent of 1 / R_i at
chosen shares (valid under-estimators of a convex function), and the products z * eps by their exact big-M
linearization (lower side: every product enters with a positive coefficient, so the relaxation is exact at integer
z). So the MILP's optimum, and HiGHS's dual bound at any time limit, is a valid lower bound on T + lambda E among
plans no worse than the incumbent (the cap on eps, below, holds for those), hence min(bound, incumbent) bounds the
round. `certify` refines the cuts at the MILP's shares until the bound is within the gap of the incumbent.

Units are O(1): time in units of the incumbent's objective, band as a share of B_e, bits in units of the largest
module. Every number of the data is a cvxpy Parameter, so a round whose structure repeats (same devices, links,
modules: the training loop's rounds) re-solves the compiled program (DPP, asserted).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from solvers import model_levels as ml
from solvers import model_powerfreq as mp
from solvers.clock import charge, highs_limits, now
from solvers.highs import cvxpy_milp_options
from solvers.instance import RoundProblem
from solvers.milp import quiet_stdout
from solvers.model_cache import ModelCache
from solvers.model_price import exact_cost, feasible, price
from solvers.model_scales import Scales, grid_cuts, grid_size, least_share

if TYPE_CHECKING:
    import scipy.sparse as sp

EXTRA_CUTS = 6
"""Cut slots per device filled by the refinement loop (tangents at the MILP's own shares)."""
LOOSE = 1e-3
"""With `extra` and power / frequency free, refine until the MILP's energies are within this of the true ones."""
SLOT_STEP = 16
"""Cut slots come in multiples of this, so that rounds with slightly different grids share a compiled program."""


def selection(rows: np.ndarray, cols: int) -> sp.csr_matrix:
    """Selection matrix: row k picks entry rows[k]."""
    import scipy.sparse as sp  # here, not at import: scipy.sparse is a third of what `import solvers` costs

    return sp.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), rows)), shape=(len(rows), cols))


def structure_key(p: RoundProblem) -> tuple:
    """What fixes the compiled program: sizes, links, edges, the modes (numbers are Parameters)."""
    return (p.num_devices, p.num_modules, p.num_edges, tuple(p.device_edge.tolist()), tuple(p.d2d_src.tolist()),
            tuple(p.d2d_dst.tolist()), p.relay_aggregates, p.relay_capacity is not None, p.lam > 0,
            ml.structure(p), p.has_power_frequency)


@dataclass
class RoundModel:
    """The compiled MILP of one (sub-)round's structure; `load` sets the numbers, `solve` runs HiGHS."""

    key: tuple
    problem: Any = None  # cvxpy Problem
    var: dict[str, Any] = field(default_factory=dict)
    par: dict[str, Any] = field(default_factory=dict)
    cuts: int = 0
    pf: mp.Cuts | None = None  # the power / frequency cuts of the last load (None where not offered)

    @classmethod
    def build(cls, p: RoundProblem, cuts: int, extra: list[Callable[[dict, dict], list]] | None = None) -> RoundModel:
        """The program for p's structure with `cuts` tangent slots per device; `extra(var, par)` returns more
        constraints (see solvers/README.md: adding a constraint)."""
        import cvxpy as cp

        n, m, ne, nl = p.num_devices, p.num_modules, p.num_edges, p.d2d_src.size
        src, dst = p.d2d_src, p.d2d_dst
        x = cp.Variable((n, m), boolean=True, name="x")
        beta = cp.Variable(n, nonneg=True, name="beta")
        eps = cp.Variable(n, name="eps")
        start = cp.Variable(n, nonneg=True, name="start")
        t = cp.Variable(nonneg=True, name="T")
        par = {k: cp.Parameter(shape, nonneg=nonneg, name=k) for k, shape, nonneg in (
            ("elig", (n, m), True), ("tau", (n, m), True), ("mem", m, True), ("mem_cap", n, True),
            ("samples", (ne, n), True), ("demand", (ne, m), True), ("bits", m, True), ("eps_min", n, True),
            ("eps_cap", n, True), ("cut_a", (n, cuts), False), ("cut_s", (n, cuts), False),
            ("e_comp", (n, m), True), ("j_comp", (n, m), True))}
        edge_of = selection(p.device_edge, ne).T  # [E, N]
        cons = [x <= par["elig"], x @ par["mem"] <= par["mem_cap"],
                par["samples"] @ x >= par["demand"], edge_of @ beta <= 1,
                eps >= par["eps_min"], eps <= par["eps_cap"],
                eps[:, None] >= par["cut_a"] + cp.multiply(par["cut_s"], beta[:, None] @ np.ones((1, cuts)))]
        pf = mp.PowerFreqRows.build(x, beta, eps, par) if p.has_power_frequency else None  # model_powerfreq.py
        tau = cp.sum(cp.multiply(par["tau"], x), axis=1) if pf is None else pf.tau
        cons.append(start >= tau)
        var: dict[str, Any] = {"x": x, "beta": beta, "eps": eps, "start": start, "T": t, "tau": tau}
        lv = ml.LevelRows.build(n, ml.tiles(p)) if p.offers_levels else None  # solvers/model_levels.py
        nt = ml.tiles(p)  # rows of bits come in one copy per level (1 without levels)
        energy = cp.sum(cp.multiply(par["e_comp"], x)) if pf is None else pf.energy  # lambda E / t0 (objective)
        joules = cp.sum(cp.multiply(par["j_comp"], x), axis=1) if pf is None else pf.joules  # [N] energy in J
        if nl:
            r = cp.Variable(nl, boolean=True, name="r")
            out_of, s_l, d_l = selection(src, n).T, selection(src, n), selection(dst, n)
            direct = 1 - out_of @ r
            w = cp.Variable((nl, m), nonneg=True, name="w")
            par.update({k: cp.Parameter(shape, nonneg=True, name=k) for k, shape in (
                ("hop", (nt * nl, m)), ("big_m", nl), ("e_d2d", (nt * nl, m)), ("j_d2d", (nt * nl, m)))})
            sent, moved = s_l @ x, w  # the D2D payload and the relayed bits, per link

            def per_link(rows: Any) -> Any:  # [nt * nl] level copies summed back to [nl]
                return rows if lv is None else selection(np.tile(np.arange(nl), nt), nl).T @ rows

            if lv is not None:  # per-level copies at the sender's level
                sent, moved = lv.split(x, selection(np.arange(n), n), "xl"), lv.split(w, s_l, "wl")
                sent = cp.vstack([s_l @ sent[k * n:(k + 1) * n, :] for k in range(nt)])
            cons += [out_of @ r <= 1, r + d_l @ (out_of @ r) <= 1,
                     w >= s_l @ x + r[:, None] @ np.ones((1, m)) - 1,
                     d_l @ start >= s_l @ tau + per_link(cp.sum(cp.multiply(par["hop"], sent), axis=1))
                     - cp.multiply(par["big_m"], 1 - r)]
            if p.relay_capacity is not None:
                par["cap"] = cp.Parameter(nonneg=True, name="cap")
                cons.append(d_l.T @ r <= par["cap"] * direct)
            energy = energy + cp.sum(cp.multiply(par["e_d2d"], moved))
            joules = joules + out_of @ per_link(cp.sum(cp.multiply(par["j_d2d"], moved), axis=1))
            var.update(r=r, w=w)
        else:
            direct = np.ones(n)
        own = cp.Variable((n, m), nonneg=True, name="own")
        cons.append(own >= x + cp.reshape(direct, (n, 1), order="C") @ np.ones((1, m)) - 1)
        terms: Any  # the rows of bits that an uploader sends (a variable or a stack of them)
        if p.relay_aggregates and nl:
            union = cp.Variable((n, m), nonneg=True, name="union")
            cons += [union >= own, d_l @ union >= w]
            terms, owner = union, np.arange(n)
        elif nl:
            terms, owner = cp.vstack([own, w]), np.concatenate([np.arange(n), dst])
        else:
            terms, owner = own, np.arange(n)
        if lv is not None:  # each row's bits at the level of the device whose factor applies (the sender's)
            terms = lv.split(terms, selection(ml.factor_dev(p), n), "bits")
            owner = np.tile(owner, nt)
            par["row_bits"] = cp.Parameter((len(owner), m), nonneg=True, name="row_bits")
        k = len(owner)
        own_sel = selection(owner, n)
        v = cp.Variable((k, m), nonneg=True, name="v")  # v >= terms * eps_owner, exact at integer terms
        eps_o = (own_sel @ eps)[:, None] @ np.ones((1, m))
        cap_o = cp.Parameter((k, m), nonneg=True, name="cap_o")
        min_o = cp.Parameter((k, m), nonneg=True, name="min_o")
        e_up = cp.Parameter((k, m), nonneg=True, name="e_up")  # lambda p_owner bits: the upload energy of v
        j_up = cp.Parameter((k, m), nonneg=True, name="j_up")  # the same in J
        par.update(cap_o=cap_o, min_o=min_o, e_up=e_up, j_up=j_up)
        cons += [v >= eps_o - cp.multiply(cap_o, 1 - terms), v >= cp.multiply(min_o, terms)]
        rows = cp.sum(cp.multiply(par["row_bits"], v), axis=1) if lv is not None else v @ par["bits"]
        upload = own_sel.T @ rows  # [N] scaled upload time
        cons.append(t >= start + upload)
        if pf is None:
            energy = energy + cp.sum(cp.multiply(e_up, v))
            joules = joules + own_sel.T @ cp.sum(cp.multiply(j_up, v), axis=1)
        else:  # power a decision: the energy per bit eta, not p eps
            up_e, up_j = pf.upload(terms, own_sel, par)
            energy, joules = energy + up_e, joules + up_j
            cons += pf.cons
            var.update(pf.var)
        objective = t + energy
        if lv is not None:
            ml.add_params(par, m, nt, p.distortion_budget is not None)
            penalty, summed = lv.distortion(x, par)
            objective = objective + penalty
            if "budget" in par:
                lv.cons.append(summed <= par["budget"])
            cons += lv.cons
            var.update(y=lv.y, distortion=summed)
        var.update(own=own, v=v, upload=upload, energy=energy, device_energy_j=joules)
        if extra:
            for fn in extra:
                cons += fn(var, par)
        prob = cp.Problem(cp.Minimize(objective), cons)
        assert prob.is_dpp()
        return cls(key=structure_key(p), problem=prob, var=var, par=par, cuts=cuts)


def load_choices(par: dict, p: RoundProblem, t0: float, elig: np.ndarray) -> None:
    """The placement rows' numbers (eligibility, compute time in t0, memory, coverage), scaled to O(1)."""
    n = p.num_devices
    par["elig"].value = elig
    par["tau"].value = p.samples[:, None] * p.module_cycles[None, :] / p.cpu_hz[:, None] / t0
    mscale = max(float(p.module_memory_bytes.max()), 1.0)
    par["mem"].value = p.module_memory_bytes / mscale
    par["mem_cap"].value = p.memory_bytes / mscale * (1 + 1e-12)
    nscale = max(float(p.samples.max()), 1.0)
    samples = np.zeros((p.num_edges, n))
    samples[p.device_edge, np.arange(n)] = p.samples / nscale
    par["samples"].value = samples
    par["demand"].value = p.coverage_demand() / nscale * (1 - 1e-9)


def load(model: RoundModel, p: RoundProblem, incumbent: float) -> tuple[Scales, np.ndarray]:
    """Set the parameters for p with time unit = incumbent objective; returns the scales and beta_min [N]."""
    n = p.num_devices
    t0 = float(incumbent)
    bits = 8.0 * p.module_bytes
    sigma = float(bits.max())
    sc = Scales(t0=t0, sigma=sigma, band=p.edge_bandwidth_hz[p.device_edge], a=mp.snr_max(p))
    par = model.par
    dev = np.arange(n)
    load_choices(par, p, t0, (p.eligible & (p.samples > 0)[:, None]).astype(float))
    par["bits"].value = bits / sigma
    lam = p.lam
    par["j_comp"].value = p.kappa * p.samples[:, None] * p.module_cycles[None, :] * p.cpu_hz[:, None] ** 2
    par["e_comp"].value = lam * par["j_comp"].value / t0
    beta_min = least_share(p, sc)
    eps_cap = sc.g(beta_min, dev) - sc.dg(beta_min, dev) * beta_min  # the steepest cut's value at beta = 0
    par["eps_min"].value = sc.g(np.ones(n), dev) * (1 - 1e-9)
    par["eps_cap"].value = eps_cap
    if p.d2d_src.size:
        rate = p.d2d_rate_bps
        hop = bits[None, :] / rate[:, None] / t0
        tau_max = (par["tau"].value * par["elig"].value).sum(axis=1)
        tau_max = tau_max * (p.cpu_hz / p.freq_min if p.has_power_frequency else 1.0)  # at the least frequency
        par["big_m"].value = tau_max[p.d2d_src] + hop.sum(axis=1) * ml.most_factor(p)
        hop = ml.row_factor(p, p.d2d_src.size)[:, None] * np.tile(hop, (ml.tiles(p), 1))  # per level copy
        par["hop"].value = hop
        power = np.tile(p.d2d_power_w[p.d2d_src, None], (ml.tiles(p), 1))
        par["j_d2d"].value = power * hop * t0
        par["e_d2d"].value = lam * power * hop
        if "cap" in par:
            par["cap"].value = float(p.relay_capacity or 0)
    owner = owners(p)
    factor = ml.row_factor(p, owner.size)[:, None]  # [rows, 1] each level copy's bytes factor
    owner = np.tile(owner, ml.tiles(p))
    if p.offers_levels:
        ml.load_params(par, p, t0)
        par["row_bits"].value = factor * par["bits"].value[None, :]
    par["cap_o"].value = np.repeat(eps_cap[owner, None], p.num_modules, axis=1)
    par["min_o"].value = np.repeat(par["eps_min"].value[owner, None], p.num_modules, axis=1)
    par["e_up"].value = lam * p.tx_power_w[owner, None] * factor * par["bits"].value[None, :]
    par["j_up"].value = p.tx_power_w[owner, None] * factor * par["bits"].value[None, :] * t0
    if p.has_power_frequency:
        model.pf = mp.load(par, p, sc, beta_min, par["eps_min"].value, eps_cap, owner,
                           factor * par["bits"].value[None, :])
    return sc, beta_min


def owners(p: RoundProblem) -> np.ndarray:
    """The uploader of each product row (own bits, then each link's relayed bits unless relays aggregate)."""
    n = p.num_devices
    if p.d2d_src.size and not p.relay_aggregates:
        return np.concatenate([np.arange(n), p.d2d_dst])
    return np.arange(n)


@dataclass(frozen=True)
class Certified:
    """The model's answer for a (sub-)round: the best choices found, the certified bound, and why it stopped."""

    x: np.ndarray
    relay: np.ndarray
    objective: float
    lower_bound: float
    proven: bool  # lower_bound >= (1 - gap) objective
    milps: int
    share: np.ndarray | None = None  # [N] the MILP's band shares b / B_e of x, relay (None: the incumbent's)
    level: np.ndarray | None = None  # [N] compression level per device where the problem offers levels
    power: np.ndarray | None = None  # [N] uplink power (W) and CPU frequency (Hz), where they are decisions, and
    freq: np.ndarray | None = None  # the plan's band then in `band` (Hz)
    band: np.ndarray | None = None


def compiled(p: RoundProblem, cuts: int, cache: ModelCache | None = None) -> RoundModel:
    """The program for p's structure: the cache's (rebuilt when more cut slots are needed), or a new one."""
    if cache is None:
        return RoundModel.build(p, cuts)
    return cache.get(("round", structure_key(p)), lambda: RoundModel.build(p, cuts), lambda m: m.cuts >= cuts)


def certify(p: RoundProblem, x0: np.ndarray, relay0: np.ndarray, deadline: float, gap: float = 0.01,
            max_milps: int = 6, extra: Sequence[Callable[[dict, dict], list]] = (),
            cache: ModelCache | None = None, level0: np.ndarray | None = None, lower0: float = 0.0) -> Certified:
    """Improve and certify the incumbent (x0, relay0) of p (one-hop relays; power and frequency as decisions where p
    offers them, solvers/model_powerfreq.py: the answer's band, power and frequency in Certified) with the
    MILP, refining tangent cuts at its solutions, until the bound is within `gap` or now() passes
    `deadline` (every MILP gets the time left). cache: compiled programs kept across rounds (None: compile).

    extra: functions (variables, parameters) -> more cvxpy constraints (solvers/README.md, "Adding a constraint").
    The incumbent then only sets the units (it may break the new constraints): the answer is the model's own.
    Where p offers compression levels the level per device is a decision too (solvers/model_levels.py); level0:
    the incumbent's (default: every device at its least distorting level, which meets any valid budget).
    lower0: a valid lower bound the caller has already (joint's): the loop stops once it or the model's certifies
    the gap (the answer's lower_bound is the model's own)."""
    best_x, best_r = np.asarray(x0, dtype=bool), np.asarray(relay0, dtype=int)
    best_l = ml.start_levels(p) if level0 is None or not p.offers_levels else np.asarray(level0, dtype=int)
    memo: dict = {}  # powerfreq.py's answers by discrete choice
    pf_plan = mp.cost(p, best_x, best_r, memo=memo) if p.has_power_frequency else None
    scale = exact_cost(p, best_x, best_r, best_l) if pf_plan is None else pf_plan[0]
    best = math.inf if extra else scale
    n = p.num_devices
    lower, milps, share = 0.0, 0, None
    if not np.isfinite(scale) or scale <= 0:
        return Certified(best_x, best_r, scale, 0.0, False, 0, level=best_l)
    sc = Scales(t0=scale, sigma=float(8 * p.module_bytes.max()), band=p.edge_bandwidth_hz[p.device_edge],
                a=mp.snr_max(p))
    slots = -(-(grid_size(least_share(p, sc)) + EXTRA_CUTS) // SLOT_STEP) * SLOT_STEP  # rounded up: a cached
    # program of the same structure fits the next round's grid too
    m = RoundModel.build(p, slots, list(extra)) if extra else compiled(p, slots, cache)
    sc, beta_min = load(m, p, scale)
    cut_a, cut_s, used = grid_cuts(sc, beta_min, m.cuts)
    cut_a[:, used:], cut_s[:, used:] = cut_a[:, [used - 1]], cut_s[:, [used - 1]]
    nxt = used
    if m.pf is not None and pf_plan is not None:  # tangents at the incumbent's own band, power and frequency
        m.pf.add_plan(p, pf_plan)
        m.pf.push(m.par)
    while milps < max_milps:
        left = deadline - now()
        if left <= 0.05:
            break
        m.par["cut_a"].value, m.par["cut_s"].value = cut_a, cut_s
        status, sol, bound = _run(m, left, gap, None if extra else 1.0)
        milps += 1
        if status == "infeasible":  # nothing beats the incumbent, even in the relaxation
            lower = best
            break
        if bound is not None:
            lower = max(lower, bound * sc.t0 * (1 - 1e-7))
        priced = None
        if sol is not None and feasible(p, sol[0], sol[1], sol[3]) and (not extra or status == "optimal"):
            cand, priced = price(p, m, sol, sc, bool(extra), memo)
            if cand < best:
                best, best_x, best_r, share, best_l, pf_plan = cand, sol[0], sol[1], sol[2], sol[3], priced
        tight = not extra or m.pf is None or sol is None or mp.loose(m) <= LOOSE  # energies exact enough for `extra`
        if (max(lower, lower0) >= best * (1 - gap) and tight) or status != "optimal" or sol is None or nxt >= m.cuts:
            break
        beta = np.clip(sol[2], beta_min, 1.0)  # tangents at the MILP's own shares (>= beta_min: see load)
        dev = np.arange(n)
        cut_s[:, nxt] = sc.dg(beta, dev)
        cut_a[:, nxt] = sc.g(beta, dev) - cut_s[:, nxt] * beta
        nxt += 1
        if m.pf is not None:  # and the tangents of 1 / zeta^2 and of the energy per bit at the MILP's values and
            # at the best band, power and frequency of its choices (exact there once the MILP picks them again)
            m.pf.add(np.asarray(m.var["zeta"].value, dtype=float), beta, np.asarray(m.var["eps"].value, dtype=float))
            if priced is not None:
                m.pf.add_plan(p, priced)
            m.pf.push(m.par)
    lower = min(lower, best)
    pw = fr = band = None
    if pf_plan is not None:
        band, pw, fr = pf_plan[1], pf_plan[2], pf_plan[3]
    return Certified(best_x, best_r, best, lower, lower >= best * (1 - gap), milps, share, best_l, pw, fr, band)


Solution = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]
"""A MILP's answer: placement, relays, band shares, levels (None without levels)."""


def run_highs(prob: Any, time_limit: float, gap: float, cutoff: float | None) -> tuple[str, float | None, bool]:
    """One HiGHS solve of a cvxpy MILP: (status: optimal, time_limit, infeasible or error; its dual bound in the
    program's units or None; whether the variables hold an answer), the bound shifted by any objective offset
    HiGHS's presolve dropped (1.16 drops it from its primal and dual values on some power / frequency rounds)."""
    import cvxpy as cp

    with quiet_stdout(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # a time limit: we read the bound
        try:
            opts = {} if cutoff is None else {"objective_bound": cutoff * (1 + 1e-9)}
            rows = sum(c.size for c in prob.constraints)
            prob.solve(solver="HIGHS", mip_rel_gap=gap / 4, output_flag=False, **highs_limits(time_limit, rows), **opts,
                       **cvxpy_milp_options())
        except cp.error.SolverError:
            return "error", None, False
    info = prob.solver_stats.extra_stats if prob.solver_stats is not None else None
    charge(info)
    bound = None
    if info is not None and np.isfinite(float(getattr(info, "mip_dual_bound", np.nan))):
        bound = float(info.mip_dual_bound)
        if cutoff is not None:  # it holds up to the cutoff only (solvers/highs.py `beyond_cutoff`)
            bound = min(bound, opts["objective_bound"])
    if prob.status in ("infeasible", "infeasible_or_unbounded"):
        return "infeasible", None, False
    if prob.status not in cp.settings.SOLUTION_PRESENT or (info is not None and getattr(
            info, "primal_solution_status", 2) != 2):  # a time limit before any feasible answer: the values are junk
        return "time_limit", bound, False
    if bound is not None and info is not None:
        shifted = bound + float(prob.objective.value) - float(info.objective_function_value)
        bound = shifted if np.isfinite(shifted) else bound
    elif prob.status == cp.OPTIMAL:
        bound = float(prob.value)
    return ("optimal" if prob.status == cp.OPTIMAL else "time_limit"), bound, True


def _run(m: RoundModel, time_limit: float, gap: float,
         cutoff: float | None) -> tuple[str, Solution | None, float | None]:
    """One HiGHS solve: (status, (x, relay, beta, level) or None, dual bound in model units or None)."""
    status, bound, present = run_highs(m.problem, time_limit, gap, cutoff)
    x = m.var["x"].value
    if not present or x is None:
        return status, None, bound
    n = x.shape[0]
    relay = np.arange(n)
    if "r" in m.var:
        key = m.key
        src, dst = np.asarray(key[4], dtype=int), np.asarray(key[5], dtype=int)
        on = np.asarray(m.var["r"].value) > 0.5
        relay[src[on]] = dst[on]
    xb = np.asarray(x) > 0.5
    level = None if "y" not in m.var else ml.levels_of(m.var["y"].value, xb, relay, m.par["bits"].value, m.key[6])
    return status, (xb, relay, np.asarray(m.var["beta"].value, dtype=float), level), bound
