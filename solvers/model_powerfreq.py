"""Uplink power and CPU frequency as decisions in the round's cvxpy model (solvers/model.py), where the problem
offers them (p_max / f_min / f_max: power in (0, power_max], frequency in [freq_min, freq_max], as powerfreq.py).

Frequency. zeta_i = f_nom_i / f_i in [f_nom / f_max, f_nom / f_min] (f_nom = cpu_hz). Compute time is linear in
it, tau_i = sum_m (n_i c_m / f_nom_i) q_im with q_im = x_im zeta_i by its McCormick rows (both sides: exact at
integer x). Compute energy kappa n_i c_m x_im f_i^2 = J_im x_im / zeta_i^2 (J_im at f_nom) is the perspective of
the convex 1 / zeta^2: with C_i = sum_m J_im x_im and Q_i = sum_m J_im q_im (= C_i zeta_i at integer x), each
tangent 1 / zeta^2 >= 3 / z_k^2 - 2 zeta / z_k^3 times C_i >= 0 gives

    K_i >= (3 / z_k^2) C_i - (2 / z_k^3) Q_i        (K_i: device i's compute energy)

valid at every integer point, and exact there where a tangent sits at zeta_i.

Power. An uploader's seconds per bit eps_i and band b_i = beta_i B fix its power, p = (N0 b / g)(2^(1 / (b eps)) - 1),
so its energy per bit is e_i = (N0 / g) phi(b eps), phi(w) = w (2^(1/w) - 1), jointly convex in (b, eps)
(solvers/README.md, "Power and CPU frequency"). eta_i >= every tangent plane of e_i at chosen (beta, eps) (valid
under-estimators); p <= p_max is eps_i >= 1 / R_i(beta_i B) at p_max (model.py's cuts, at the largest SNR). The
upload energy sum_k bits_k z_k eta_owner(k) enters by the big-M product of the upload time (h >= eta - C (1 - z),
h >= eta_min z: exact at integer z; every product has a positive coefficient). `certify` adds tangents at the MILP's
own (zeta, beta, eps) in the loop that refines the 1 / R cuts, so the MILP's optimum and HiGHS's dual bound stay
valid lower bounds at every lambda.

Units (model.py's): time in t0 (the incumbent's objective), bits in sigma (the largest module), eps in t0 / sigma
seconds per bit, eta in t0 / sigma J per bit (eta = e sigma / t0), compute energy in jscale J.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solvers.evaluate import LN2, evaluate
from solvers.instance import RoundProblem

ZETA_SLOTS = 32
"""Tangent slots of 1 / zeta^2 per device: a geometric grid of ZETA_GRID points, the rest filled by refinement."""
ZETA_GRID = 8
ETA_BETAS, ETA_RATES = 6, 7
"""The initial tangent planes of the energy per bit: shares geometric from beta_min to 1 x spectral efficiencies
1/w in 2^-2 .. 2^4 bits/Hz/s."""
ETA_SLOTS = ETA_BETAS * ETA_RATES + 30


def snr_max(p: RoundProblem) -> np.ndarray:
    """a_i at the largest power (the model's 1 / R cuts; = snr_hz where power is fixed)."""
    return p.power_max * p.uplink_gain / p.noise_w_per_hz


def _phi(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """phi(w) = w (2^(1/w) - 1) and phi'(w) (negative), for w > 0 (1/w clipped to 60: the numbers stay finite)."""
    s = np.minimum(1.0 / np.maximum(w, 1e-300), 60.0)
    w = 1.0 / s
    e = np.exp(LN2 * s)
    return w * (e - 1.0), e - 1.0 - LN2 * s * e


@dataclass
class PowerFreqRows:
    """The variables and rows of one build (module doc); `upload` adds the energy products once the rows are known."""

    var: dict[str, Any]
    cons: list
    tau: Any  # [N] compute time (t0)
    energy: Any  # objective units
    joules: Any  # [N] J

    @classmethod
    def build(cls, x: Any, beta: Any, eps: Any, par: dict) -> PowerFreqRows:
        import cvxpy as cp

        n, m = x.shape
        new = {k: cp.Parameter(shape, nonneg=nonneg, name=k) for k, shape, nonneg in (
            ("z_lo", (n, m), True), ("z_hi", (n, m), True), ("z_lo1", n, True), ("z_hi1", n, True),
            ("jc", (n, m), True), ("zcut_a", (n, ZETA_SLOTS), True), ("zcut_s", (n, ZETA_SLOTS), True),
            ("ecut_a", (n, ETA_SLOTS), False), ("ecut_b", (n, ETA_SLOTS), False), ("ecut_e", (n, ETA_SLOTS), False),
            ("eta_min", n, True), ("lam_j", (), True), ("jscale", (), True))}
        par.update(new)
        zeta = cp.Variable(n, name="zeta")
        q = cp.Variable((n, m), nonneg=True, name="q")
        c, qs, k = cp.Variable(n, name="C"), cp.Variable(n, name="Q"), cp.Variable(n, nonneg=True, name="K")
        eta = cp.Variable(n, name="eta")
        zcol = zeta[:, None] @ np.ones((1, m))
        one_z, one_e = np.ones((1, ZETA_SLOTS)), np.ones((1, ETA_SLOTS))
        cons = [zeta >= par["z_lo1"], zeta <= par["z_hi1"],
                q >= cp.multiply(par["z_lo"], x), q >= zcol - cp.multiply(par["z_hi"], 1 - x),
                q <= cp.multiply(par["z_hi"], x), q <= zcol - cp.multiply(par["z_lo"], 1 - x),
                c == cp.sum(cp.multiply(par["jc"], x), axis=1), qs == cp.sum(cp.multiply(par["jc"], q), axis=1),
                k[:, None] >= cp.multiply(par["zcut_a"], c[:, None] @ one_z)
                - cp.multiply(par["zcut_s"], qs[:, None] @ one_z),
                eta >= par["eta_min"],
                eta[:, None] >= par["ecut_a"] + cp.multiply(par["ecut_b"], beta[:, None] @ one_e)
                + cp.multiply(par["ecut_e"], eps[:, None] @ one_e)]
        tau = cp.sum(cp.multiply(par["tau"], q), axis=1)
        return cls(var={"zeta": zeta, "q": q, "compute_j": k, "eta": eta}, cons=cons, tau=tau,
                   energy=par["lam_j"] * cp.sum(k), joules=par["jscale"] * k)

    def upload(self, terms: Any, own_sel: Any, par: dict) -> tuple[Any, Any]:
        """(objective energy, [N] J) of the uploaded rows `terms` [K, M] owned by own_sel [K, N]."""
        import cvxpy as cp

        k, m = terms.shape
        par.update({name: cp.Parameter((k, m), nonneg=True, name=name) for name in ("h_cap", "h_min", "e_up_pf",
                                                                                   "j_up_pf")})
        h = cp.Variable((k, m), nonneg=True, name="h")
        eta_o = (own_sel @ self.var["eta"])[:, None] @ np.ones((1, m))
        self.cons += [h >= eta_o - cp.multiply(par["h_cap"], 1 - terms), h >= cp.multiply(par["h_min"], terms)]
        self.var["h"] = h
        return cp.sum(cp.multiply(par["e_up_pf"], h)), own_sel.T @ cp.sum(cp.multiply(par["j_up_pf"], h), axis=1)


@dataclass
class Cuts:
    """The tangents of 1 / zeta^2 and the planes of eta (per device, slot-major arrays), and the next free slot."""

    sc: Any  # model_scales.Scales of the load
    zeta: np.ndarray  # [N, ZETA_SLOTS] tangent points
    plane: np.ndarray  # [N, ETA_SLOTS, 2] (beta, eps) points
    nz: int = 0
    ne: int = 0
    c0: np.ndarray = field(default_factory=lambda: np.zeros(0))  # N0 / g
    eps_cap: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [N] model.py's bounds on eps
    eps_min: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cap: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [N] power_max eps_cap: eta's largest true value
    owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # [K] each product row's uploader

    def push(self, par: dict) -> None:
        z = self.zeta
        par["zcut_a"].value, par["zcut_s"].value = 3.0 / z ** 2, 2.0 / z ** 3
        b, e = self.plane[..., 0], self.plane[..., 1]
        big_a = (self.sc.sigma * self.c0 / self.sc.t0)[:, None]
        kw = (self.sc.band * self.sc.t0 / self.sc.sigma)[:, None]
        f, df = _phi(kw * b * e)
        par["ecut_a"].value = big_a * (f - 2.0 * kw * b * e * df)
        par["ecut_b"].value = big_a * df * kw * e
        par["ecut_e"].value = big_a * df * kw * b
        # h >= eta - C (1 - z) must leave z = 0 rows free at every plan: a device without band (beta = 0) has
        # eps = eps_cap (model.py: the steepest 1 / R cut's value at 0), where the planes may exceed p_max eps_cap
        at0 = (par["ecut_a"].value + par["ecut_e"].value * self.eps_cap[:, None]).max(axis=1)
        cap = np.maximum(self.cap, at0)
        par["h_cap"].value = np.repeat(cap[self.owner, None], par["h_cap"].shape[1], axis=1)

    def add_plan(self, p: RoundProblem, plan: tuple) -> bool:
        """Tangents at a plan's (objective, band, power, frequency): exact there."""
        return self.add(*point_of(p, self.sc, plan[1], plan[2], plan[3], self.eps_min, self.eps_cap))

    def add(self, zeta: np.ndarray | None, beta: np.ndarray | None, eps: np.ndarray | None) -> bool:
        """Tangents at these values (None: none of that kind); False when no slot is left."""
        grew = False
        if eps is not None:
            eps = np.clip(eps, self.eps_min, self.eps_cap)
        if zeta is not None and self.nz < ZETA_SLOTS:
            self.zeta[:, self.nz:] = zeta[:, None]
            self.nz += 1
            grew = True
        if beta is not None and eps is not None and self.ne < ETA_SLOTS:
            self.plane[:, self.ne:, 0], self.plane[:, self.ne:, 1] = beta[:, None], eps[:, None]
            self.ne += 1
            grew = True
        return grew


def loose(m: Any) -> float:
    """How far the MILP's energies lie under the true ones at its own values (relative, the worst device): eta against
    e(beta, eps) where the device uploads, K against C / zeta^2. Constraints added on energies hold to this."""
    v, par, cuts = m.var, m.par, m.pf
    sc = cuts.sc
    beta, eps = np.asarray(v["beta"].value, dtype=float), np.asarray(v["eps"].value, dtype=float)
    kw = sc.band * sc.t0 / sc.sigma
    f, _ = _phi(np.maximum(kw * beta * eps, 1e-300))
    true_eta = sc.sigma * cuts.c0 / sc.t0 * f
    up = np.asarray(v["upload"].value, dtype=float) > 1e-9
    c = np.asarray(par["jc"].value * v["x"].value, dtype=float).sum(axis=1)
    true_k = c / np.asarray(v["zeta"].value, dtype=float) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        e_gap = np.where(up, (true_eta - v["eta"].value) / true_eta, 0.0)
        k_gap = np.where(c > 0, (true_k - v["compute_j"].value) / true_k, 0.0)
    return float(max(np.nanmax(e_gap, initial=0.0), np.nanmax(k_gap, initial=0.0)))


def load(par: dict, p: RoundProblem, sc: Any, beta_min: np.ndarray, eps_min: np.ndarray, eps_cap: np.ndarray,
         owner: np.ndarray, row_bits: np.ndarray) -> Cuts:
    """Set the power / frequency Parameters for p (sc: model_scales.Scales at snr_max); owner [K]: each product row's
    uploader, row_bits [K, M] its bits in units of sigma. Returns the initial grid of cuts (pushed)."""
    n = p.num_devices
    z_lo, z_hi = p.cpu_hz / p.freq_max, p.cpu_hz / p.freq_min
    par["z_lo1"].value, par["z_hi1"].value = z_lo, z_hi
    par["z_lo"].value = np.repeat(z_lo[:, None], p.num_modules, axis=1)
    par["z_hi"].value = np.repeat(z_hi[:, None], p.num_modules, axis=1)
    joules = p.kappa * p.samples[:, None] * p.module_cycles[None, :] * p.cpu_hz[:, None] ** 2
    jscale = max(float(joules.max()), 1e-300)
    par["jc"].value = joules / jscale
    par["jscale"].value = jscale
    par["lam_j"].value = p.lam * jscale / sc.t0
    c0 = p.noise_w_per_hz / p.uplink_gain
    par["eta_min"].value = sc.sigma * c0 / sc.t0 * LN2 * (1 - 1e-9)
    par["h_min"].value = np.repeat(par["eta_min"].value[owner, None], p.num_modules, axis=1)
    par["e_up_pf"].value = p.lam * row_bits
    par["j_up_pf"].value = row_bits * sc.t0
    zeta = np.repeat(z_lo[:, None], ZETA_SLOTS, axis=1)
    ratio = (z_hi / z_lo) ** (1.0 / max(ZETA_GRID - 1, 1))
    zeta[:, :ZETA_GRID] = z_lo[:, None] * ratio[:, None] ** np.arange(ZETA_GRID)[None, :]
    zeta[:, ZETA_GRID:] = z_hi[:, None]
    betas = beta_min[:, None] ** (1.0 - np.linspace(0.0, 1.0, ETA_BETAS))[None, :]  # beta_min .. 1, geometric
    rates = 2.0 ** np.linspace(-2.0, 4.0, ETA_RATES)  # bits / Hz / s: w = 1 / rate
    kw = sc.band * sc.t0 / sc.sigma
    plane = np.zeros((n, ETA_SLOTS, 2))
    b_grid = np.repeat(betas, ETA_RATES, axis=1)
    w_grid = np.tile(1.0 / rates, ETA_BETAS)[None, :]
    plane[:, :ETA_BETAS * ETA_RATES, 0] = b_grid
    plane[:, :ETA_BETAS * ETA_RATES, 1] = np.clip(w_grid / (kw[:, None] * b_grid), eps_min[:, None], eps_cap[:, None])
    plane[:, ETA_BETAS * ETA_RATES:] = plane[:, [ETA_BETAS * ETA_RATES - 1]]
    cuts = Cuts(sc=sc, zeta=zeta, plane=plane, nz=ZETA_GRID, ne=ETA_BETAS * ETA_RATES, c0=c0, eps_cap=eps_cap,
                eps_min=eps_min, cap=p.power_max * eps_cap, owner=owner)
    cuts.push(par)
    return cuts


def point_of(p: RoundProblem, sc: Any, band: np.ndarray, power: np.ndarray, freq: np.ndarray, eps_lo: np.ndarray,
             eps_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(zeta, beta, eps) of a plan in the model's units: tangents there make the cuts exact at that plan (for a
    convex program the linearization at its optimum has the same optimum). Devices without band: beta = 1."""
    from solvers.evaluate import uplink_rate

    bshare = band / p.edge_bandwidth_hz[p.device_edge]
    up = bshare > 0
    rate = uplink_rate(np.where(up, band, 1.0), power * p.uplink_gain / p.noise_w_per_hz)
    eps = np.clip(np.where(up, sc.sigma / (sc.t0 * np.maximum(rate, 1e-300)), eps_lo), eps_lo, eps_hi)
    return p.cpu_hz / freq, np.where(up, np.clip(bshare, 1e-12, 1.0), 1.0), eps


def plan_of(p: RoundProblem, x: np.ndarray, relay: np.ndarray, share: np.ndarray, eps: np.ndarray,
            zeta: np.ndarray, sc: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(band Hz, power W, frequency Hz) read off the MILP's continuous values: the power that sends at eps seconds
    per bit over the band (at most power_max), f = f_nom / zeta."""
    band = share * p.edge_bandwidth_hz[p.device_edge]
    sec = eps * sc.t0 / sc.sigma
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        need = p.noise_w_per_hz * band / p.uplink_gain * np.expm1(LN2 / (band * sec))
    power = np.where(np.isfinite(need) & (need > 0), np.minimum(need, p.power_max), p.power_max)
    freq = np.clip(p.cpu_hz / zeta, p.freq_min, p.freq_max)
    return band, power, freq


def cost(p: RoundProblem, x: np.ndarray, relay: np.ndarray, milp: tuple | None = None, memo: dict | None = None
         ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(T + lambda E, band, power, frequency) of fixed discrete choices: powerfreq.py's band, power and frequency for
    them, or the MILP's own (band, power, frequency) where those are better. memo: powerfreq.py's answers by choice
    (the loop's MILPs often return the same one)."""
    from solvers.powerfreq import plan_power_frequency

    key = (np.asarray(x, dtype=bool).tobytes(), np.asarray(relay).tobytes())
    got = None if memo is None else memo.get(key)
    if got is None:
        band, power, freq = plan_power_frequency(p, x, relay)
        got = (evaluate(p, x, relay, band, power, freq).objective, band, power, freq)
        if memo is not None:
            memo[key] = got
    best = got
    if milp is not None:
        got = evaluate(p, x, relay, *milp).objective
        if got < best[0]:
            best = (got, *milp)
    return best
