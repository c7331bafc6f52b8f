"""Certified lower bounds on the optimum of a round, at any size (no enumeration).

Latency (lambda = 0), per edge: a latency T is achievable only if some choice has sum_j h_j(T) <= B_e (h: the
least band of solvers/joint.py). The bound splits that sum into per-device pieces. For an uploader j serving the
set I, h_j = R_j^-1(U_j / (T - S_j)) with U_j = P_j + sum_{i in I} P_i and S_j >= every part's own ready time;
R^-1 is convex with R^-1(0) = 0, hence superadditive, so h_j >= R_j^-1(P_j / (T - tau_j)) +
sum_i R_j^-1(P_i / (T - arrival_i)). So sum_j h_j >= sum_i w_i(S_i, T), w the cheapest route of device i's
module subset S_i alone (direct, or via any D2D neighbour at the neighbour's SNR; 0 via a neighbour when relays
aggregate, since the relay may hold those modules already). Dropping memory between devices and integrality,
"one subset per device, coverage per module" is an LP (HiGHS); if its value exceeds B_e, T is impossible.
w is nonincreasing in T, so the largest certified T_e bounds the edge, and max_e T_e bounds T.

Energy (lambda > 0): every placed module is computed and its bits reach the edge at no less than the
infinite-band energy per bit; T + lambda E >= T_lb + lambda E_lb (valid, loose where T and E trade off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solvers import pair_dual
from solvers.bandwidth import min_bandwidth
from solvers.clock import Clock
from solvers.covers import LP_COVER_HOLDERS, cover_sets
from solvers.energy_bound import EdgeFloor, knapsack, tradeoff_lower_bound
from solvers.evaluate import LN2
from solvers.highs import bare_highs, highs, highs_lp, run_settled
from solvers.instance import RoundProblem
from solvers.pair_dual import PairDual
from solvers.subset_dual import SubsetDual
from solvers.subset_energy import SubsetEnergy
from solvers.subsets import trainable_subsets
from solvers.union_bound import union_band

LADDER = (0.005, 0.01, 0.02, 0.035, 0.05, 0.08, 0.13, 0.2, 0.35, 0.6, 1.0, 2.0, 4.0)
"""Trial latencies upper / (1 + step) of the subset bound, nearest first."""
LATENCY_COVERS = True
"""The latency bound's LP gets each module's minimal covers (modules of at most LP_COVER_HOLDERS holders)."""
UNION_MAX_ROUTES = 4000
"""relay_aggregates: edges of at most this many (device, subset, route) routes get the union LP of
solvers/union_bound.py (a group charged its largest member at the relay); larger ones price relayed subsets at 0 (at
1,000 devices / 10 edges the union LP on every edge took 5-56 CPU s a round for a gap of 29-33 % against 44-48 %)."""


def subset_lower_bound(problem: RoundProblem, upper: np.ndarray, known: np.ndarray | None = None,
                       ladder: tuple[float, ...] = LADDER, refine: int = 3, min_gain: float = 0.005,
                       max_lps: int = 16, clock: Clock | None = None) -> float:
    """Certified lower bound on the round's least latency (see the module doc): T_e is certified when the LP
    "at most one module subset per device, samples per module >= demand" costs more than B_e at T_e.
    Only edges that can raise max_e T_e are tried, the slowest first (`upper` [E]: latencies known achievable);
    T = upper / (1 + step) down the ladder, then `refine` bisection steps between the last failure and the first
    success. known [E] > 0 marks edges whose least latency is known exactly (enumerated): they count as they are.
    An edge is tried only while it could raise the bound by min_gain (relative), at most max_lps LPs in all, and
    no LP starts once `clock` has run out (the best so far is as valid)."""
    p = problem
    known = np.zeros(p.num_edges) if known is None else np.asarray(known, dtype=float)
    best = float(known.max(initial=0.0))
    if p.num_modules > 12:  # 2^M subsets per device: no bound beyond the exactly known edges
        return best
    demand = p.coverage_demand()
    upper = np.asarray(upper, dtype=float)
    calls = [0]
    for e in np.argsort(-upper):
        if upper[e] <= best * (1 + min_gain) or calls[0] >= max_lps or (clock is not None and clock.expired()):
            break
        if known[e] > 0 or not np.any(p.device_edge == e):
            continue
        route = EdgeRoutes.of(p, int(e), calls)
        failed = upper[e]
        for step in ladder:
            t = upper[e] / (1 + step)
            if (t <= best * (1 + min_gain) or calls[0] >= max_lps  # too little left to gain, or out of budget
                    or (clock is not None and clock.expired())):
                break
            if route.impossible(t, demand[e]):
                lo, hi = t, failed
                for _ in range(refine if clock is None or not clock.expired() else 0):
                    mid = 0.5 * (lo + hi)
                    lo, hi = (mid, hi) if route.impossible(mid, demand[e]) else (lo, mid)
                best = max(best, lo)
                break
            failed = t
    return best


@dataclass(frozen=True)
class EdgeRoutes:
    """Columns (device, module subset) of one edge and their routes (direct or via a D2D neighbour)."""

    problem: RoundProblem
    edge: int
    dev: np.ndarray  # per column
    mbits: np.ndarray  # [columns, M]
    pay: np.ndarray
    col: np.ndarray  # per route: its column
    ready: np.ndarray
    a: np.ndarray
    free: np.ndarray
    up: np.ndarray  # per route: its uploader (the device itself, or the D2D neighbour)
    calls: list  # LPs solved so far (shared counter)
    lps: dict = field(default_factory=dict)  # demand bytes -> EdgeLP of this edge

    @classmethod
    def of(cls, p: RoundProblem, e: int, calls: list) -> EdgeRoutes:
        members = p.edge_devices(e)
        li, _, mbits = trainable_subsets(p, members)
        dev = members[li]
        pay = 8.0 * (mbits @ p.module_bytes)
        tau = p.samples[dev] * (mbits @ p.module_cycles) / p.cpu_hz[dev]
        col, ready, a, free = [np.arange(dev.size)], [tau], [p.snr_hz[dev]], [np.zeros(dev.size, dtype=bool)]
        up = [dev]
        on = np.flatnonzero(p.device_edge[p.d2d_src] == e)
        for s_, d_, r_ in zip(p.d2d_src[on], p.d2d_dst[on], p.d2d_rate_bps[on], strict=True):
            cols = np.flatnonzero(dev == s_)
            col.append(cols)
            ready.append(tau[cols] + pay[cols] / r_)
            a.append(np.full(cols.size, p.snr_hz[d_]))
            free.append(np.full(cols.size, p.relay_aggregates))
            up.append(np.full(cols.size, d_))
        return cls(p, e, dev, mbits, pay, col=np.concatenate(col), ready=np.concatenate(ready), a=np.concatenate(a),
                   free=np.concatenate(free), up=np.concatenate(up), calls=calls)

    def impossible(self, t: float, demand: np.ndarray) -> bool:
        """True if no fractional choice of the edge finishes by t within B_e (the LP relaxation says so)."""
        p = self.problem
        slack = t - self.ready
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(slack > 0, self.pay[self.col] / np.where(slack > 0, slack, 1.0), np.inf)
        if p.relay_aggregates and self.col.size <= UNION_MAX_ROUTES:  # relayed payloads charged at their relay
            if self._union_impossible(min_bandwidth(q, self.a), demand):
                return True
            if not LATENCY_COVERS:
                return False
            # else the LP below too (relayed subsets at 0): with minimal covers it refutes t where the union LP
            # (no covers) may not; both are valid. One trial latency counts once against the ladder's LP budget.
            counted = self.calls[0]
            got = self._free_impossible(t, slack, q, demand)
            self.calls[0] = counted
            return got
        return self._free_impossible(t, slack, q, demand)

    def _free_impossible(self, t: float, slack: np.ndarray, q: np.ndarray, demand: np.ndarray) -> bool:
        """`impossible` by the LP of route-priced columns (relayed subsets at 0 when relays aggregate)."""
        p = self.problem
        cost = self.column_cost(t, slack, q)
        cols = np.flatnonzero(np.isfinite(cost))
        need = demand > 0
        if not need.any():
            return False
        if np.any((self.mbits[cols] * p.samples[self.dev[cols], None]).sum(axis=0)[need] < demand[need] * (1 - 1e-9)):
            return True  # the columns that can finish by t cannot even cover: t is impossible
        status, value = self.solve(cost / p.edge_bandwidth_hz[self.edge], demand)
        if status == "infeasible":  # no cover at all
            return True
        return bool(status == "optimal" and value > 1 + 1e-6)

    def column_cost(self, t: float, slack: np.ndarray | None = None, q: np.ndarray | None = None) -> np.ndarray:
        """[columns] each (device, subset)'s least band (Hz) at latency t over its routes (inf: none finishes)."""
        if slack is None or q is None:
            slack = t - self.ready
            with np.errstate(divide="ignore", invalid="ignore"):
                q = np.where(slack > 0, self.pay[self.col] / np.where(slack > 0, slack, 1.0), np.inf)
        w = np.where(self.free & (slack > 0), 0.0, min_bandwidth(q, self.a))
        cost = np.full(self.dev.size, np.inf)
        np.minimum.at(cost, self.col, w)
        return cost

    def solve(self, cost: np.ndarray, demand: np.ndarray) -> tuple[str, float]:
        """The LP at column costs `cost` (units of B_e; inf: unusable), one LP per edge and demand, kept: later trial
        latencies restart from its basis. Its column values: `self.lps[demand.tobytes()].values()`."""
        self.calls[0] += 1
        key = demand.tobytes()
        if key not in self.lps:
            self.lps[key] = EdgeLP(self.dev, self.mbits, self.problem.samples, demand, covers=LATENCY_COVERS)
        return self.lps[key].solve(cost)

    def _union_impossible(self, w: np.ndarray, demand: np.ndarray) -> bool:
        """relay_aggregates: True if the LP of solvers/union_bound.py (each uploader's band at least its largest
        member's) needs more than B_e at these route bands w [routes] (Hz; inf: cannot finish in time)."""
        p = self.problem
        need = demand > 0
        if not need.any():
            return False
        cols = np.unique(self.col[np.isfinite(w)])
        if np.any((self.mbits[cols] * p.samples[self.dev[cols], None]).sum(axis=0)[need] < demand[need] * (1 - 1e-9)):
            return True  # the columns that can finish by t cannot even cover: t is impossible
        self.calls[0] += 1
        status, value = union_band(self.dev, self.mbits, p.samples, demand, self.col, self.up,
                                   w / p.edge_bandwidth_hz[self.edge])
        if status == "infeasible":
            return True
        return bool(status == "optimal" and value > 1 + 1e-6)


class EdgeLP:
    """min c x s.t. at most one subset per device, samples per module >= demand, 0 <= x <= 1, over every column
    (device, subset) of an edge. Between trial latencies only the costs change and which columns can finish in
    time (the others are fixed at 0), so HiGHS re-solves from the last basis (warm start)."""

    def __init__(self, dev: np.ndarray, mbits: np.ndarray, samples: np.ndarray, demand: np.ndarray,
                 backend: str = "auto", covers: bool = False) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend: one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.used = ""  # the backend of the last solve: highspy (the fast path) or scipy
        need = demand > 0
        scale = demand[need].max()
        devs, local = np.unique(dev, return_inverse=True)
        k = dev.size
        # CSC: column c has its device's row, then the rows of the modules it covers (-samples / scale <= -demand).
        cov = -(mbits[:, need] * (samples[dev] / scale)[:, None])
        nz_c, nz_j = np.nonzero(cov)  # row-major: by column c, then module j
        indptr = np.concatenate([[0], np.cumsum(1 + np.bincount(nz_c, minlength=k))]).astype(np.int32)
        indices, data = np.empty(indptr[-1], dtype=np.int32), np.empty(indptr[-1])
        indices[indptr[:-1]], data[indptr[:-1]] = local, 1.0
        pos = indptr[nz_c] + 1 + np.arange(nz_c.size) - np.searchsorted(nz_c, nz_c)
        indices[pos], data[pos] = devs.size + nz_j, cov[nz_c, nz_j]
        self.k, self.ny, self.csc = k, 0, (indptr, indices, data)
        self.b_ub = np.concatenate([np.ones(devs.size), -demand[need] / scale])
        if covers:
            self._covers(dev, mbits, samples, demand)
        self.highs: Any = None
        self.x: np.ndarray | None = None  # the scipy path's last solution

    def _covers(self, dev: np.ndarray, mbits: np.ndarray, samples: np.ndarray, demand: np.ndarray) -> None:
        """Each module's minimal covers as variables y_K in [0, 1] (cost 0) after the k columns: sum_K y_K >= 1 and
        device i trains m at least sum_{K with i} y_K (the convex hull of the module's knapsack; valid: the devices
        that train m in a plan hold a minimal cover)."""
        indptr, indices, data = self.csc
        k = self.k
        rr, cc, vv = [indices], [np.repeat(np.arange(k), np.diff(indptr))], [data]
        ub, row, col = [self.b_ub], self.b_ub.size, k
        for m in np.flatnonzero(demand > 0):
            holders = np.unique(dev[mbits[:, m] > 0])
            found = cover_sets(samples[holders], float(demand[m]), LP_COVER_HOLDERS)
            if found.shape[0] == 0:
                continue
            y = col + np.arange(found.shape[0])
            col += found.shape[0]
            rr.append(np.full(y.size, row))  # -sum_K y_K <= -1
            cc.append(y)
            vv.append(-np.ones(y.size))
            for a, i in enumerate(holders):  # sum_{K with i} y_K - (i's columns with m) <= 0
                mine = np.flatnonzero((dev == i) & (mbits[:, m] > 0))
                use = y[found[:, a]]
                rr.append(np.full(mine.size + use.size, row + 1 + a))
                cc.append(np.concatenate([mine, use]))
                vv.append(np.concatenate([-np.ones(mine.size), np.ones(use.size)]))
            ub.append(np.concatenate([[-1.0], np.zeros(holders.size)]))
            row += 1 + holders.size
        if col == k:
            return
        r, c, v = np.concatenate(rr), np.concatenate(cc), np.concatenate(vv)
        order = np.lexsort((r, c))
        self.csc = (np.concatenate([[0], np.cumsum(np.bincount(c, minlength=col))]).astype(np.int32),
                    r[order].astype(np.int32), v[order])
        self.ny, self.b_ub = col - k, np.concatenate(ub)

    def solve(self, c: np.ndarray) -> tuple[str, float]:
        """(optimal | infeasible | other, value) with costs c [columns]; inf marks a column that cannot be used.

        Through highspy's bare solver object (`highspy._core._Highs`): importing scipy.optimize for linprog costs
        0.3-0.8 s, more than the LPs, and the public highspy.Highs prints a banner on stdout, which the CLI keeps for
        its JSON answer. Where that object is missing (another highspy layout) or backend="scipy", the same HiGHS
        through scipy's linprog (tests/test_solver_dispatch.py checks both give the same answers)."""
        usable = np.isfinite(c)
        cost = np.concatenate([np.where(usable, c, 0.0), np.zeros(self.ny)])
        upper = np.concatenate([usable.astype(float), np.ones(self.ny)])
        fast = bare_highs() if self.backend != "scipy" else None
        if fast is None:
            if self.backend == "highspy":
                raise RuntimeError("backend='highspy': highspy._core._Highs is not available in this highspy")
            return self._solve_scipy(cost, upper)
        self.used = "highspy"
        highspy, bare = fast
        if self.highs is None:
            self.highs = highs(bare, highs_lp(highspy, cost, np.zeros(self.k + self.ny), upper,
                                              np.full(self.b_ub.size, -highspy.kHighsInf), self.b_ub, *self.csc))
        else:
            idx = np.arange(self.k, dtype=np.int32)
            self.highs.changeColsCost(self.k, idx, cost[: self.k])
            self.highs.changeColsBounds(self.k, idx, np.zeros(self.k), upper[: self.k])
        status = run_settled(self.highs, highspy)
        kind = {highspy.HighsModelStatus.kOptimal: "optimal",
                highspy.HighsModelStatus.kInfeasible: "infeasible"}.get(status, "other")
        return kind, float(self.highs.getInfo().objective_function_value)

    def values(self) -> np.ndarray:
        """[columns] the last solve's column values (solvers/lp_round.py reads a plan off them)."""
        if self.used == "highspy":
            return np.asarray(self.highs.getSolution().col_value)[: self.k]
        if self.x is None:
            raise RuntimeError("EdgeLP.values: no solution yet (call solve first)")
        return self.x[: self.k]

    def _solve_scipy(self, cost: np.ndarray, upper: np.ndarray) -> tuple[str, float]:
        import scipy.sparse as sps
        from scipy.optimize import linprog

        self.used = "scipy"
        indptr, indices, data = self.csc
        a = sps.csc_matrix((data, indices, indptr), shape=(self.b_ub.size, self.k + self.ny))
        res = linprog(cost, A_ub=a, b_ub=self.b_ub, bounds=np.stack([np.zeros(self.k + self.ny), upper], axis=1),
                      method="highs")
        self.x = None if res.x is None else np.asarray(res.x)
        return {0: "optimal", 2: "infeasible"}.get(res.status, "other"), float(res.fun or 0.0)


BACKENDS = ("auto", "highspy", "scipy")
"""EdgeLP backends: auto (highspy's bare solver where it exists, else scipy), or one of them."""


def energy_lower_bound(problem: RoundProblem) -> float:
    """Least energy of any plan: every placed module is computed (kappa n_i c_k f_min^2) and its bytes reach the edge
    at no less than N0 ln2 / g joules per bit (the rate's limit a / ln2 at infinite band), directly or after a
    D2D hop (p_d2d / r per bit); fractional knapsack per (edge, module), memory dropped."""
    p = problem
    dev, mod = np.nonzero(p.eligible & (p.samples[:, None] > 0))
    per_bit = p.tx_power_w * LN2 / p.snr_hz
    if p.d2d_src.size:
        via = p.d2d_power_w[p.d2d_src] / p.d2d_rate_bps + (0.0 if p.relay_aggregates else per_bit[p.d2d_dst])
        np.minimum.at(per_bit, p.d2d_src, via)
    w = (p.kappa * p.samples[dev] * p.module_cycles[mod] * p.freq_min[dev] ** 2
         + 8.0 * p.module_bytes[mod] * per_bit[dev])
    per_edge = knapsack(p, dev, mod, w, p.coverage_demand())
    return float(np.sum(per_edge[np.isfinite(per_edge)]))


UNION_ROWS = True
"""relay_aggregates, rounds of at most SUBSET_CLOCKED_DEVICES: the subset LP's union rows (solvers/route_lp.py
`RouteLP`), not relayed uploads at 0."""
BAND_ROW = True
"""Rounds of at most SUBSET_CLOCKED_DEVICES: the subset LP's band row (the columns' least bands alone sum to at most
B_e, solvers/subset_energy.py `EdgeEnergy.bands`): a relay group whose parts cannot share the band by T is out."""
SUBSET_CLOCKED_DEVICES = 64
"""Rounds of at most this many devices get the subset-column LP within the time limit too (larger ones only when
unbounded)."""


SUBSET_DUAL_DEVICES = 5_000
"""Clocked rounds over SUBSET_CLOCKED_DEVICES and up to this many devices get the subset-column Lagrangian bound of
solvers/subset_dual.py and the pair-row LPs of solvers/pair_dual.py (at 10,000 devices the bound has 0.2-0.3 s left,
less than one of the Lagrangian's evaluations; the LPs, 0.1 CPU s an edge, reached one of 100 edges and left the
latency-energy search its fewest steps: certified gap 28.2 / 28.5 / 30.1 -> 28.0 / 30.5 / 32.2 %, s23)."""
LATENCY_SHARE = 0.4
"""lambda > 0, rounds over SUBSET_CLOCKED_DEVICES: the part of the bound's time left the latency LPs may take."""
LATENCY_CAP = True
"""lambda > 0: the latency-energy bound's search ends at upper - lambda E_lb(inf) (solvers/energy_bound.py `cap`;
a plan of larger T costs at least upper), so its points and splits fall where a better plan can be."""


def round_lower_bound(problem: RoundProblem, edge_latency: np.ndarray, known: np.ndarray | None = None,
                      upper: float | None = None, clock: Clock | None = None) -> float:
    """Certified lower bound on min T + lambda E: T >= the subset bound (or an exact edge); at lambda > 0 the
    latency-energy bound of solvers/energy_bound.py, per edge at least the subset-column LP of
    solvers/subset_energy.py while the clock lasts (band priced; power and frequency fixed or decisions: then
    edge_latency and known are of the round at full power and speed), else the energy bound below. upper: a known
    plan's objective (the search stops once the bound is that close); clock: the latency-energy bound takes its
    fewest steps once it has run out."""
    # at lambda > 0 on large rounds the latency LPs get 0.4 of the time left (the latency-energy bound, which most of
    # the bound is, needs the rest): at 10,000 devices x 8 modules they took 0.3 CPU s, their T_0 0.1 % of the bound
    late = (clock.share(LATENCY_SHARE) if clock is not None and problem.lam > 0
            and problem.num_devices > SUBSET_CLOCKED_DEVICES else None)
    t = subset_lower_bound(problem, edge_latency, known, clock=late)
    if problem.lam <= 0:
        return t
    loose = t + problem.lam * energy_lower_bound(problem)
    # the subset LP on unbounded and small rounds: at 1,000 devices / 2 s it cost +0.9 CPU s for no gain (gap
    # 46.3 %); on one 12-device edge (lambda 5) it lifts the bound 188 -> 210 for about 0.4 CPU s
    small = problem.num_devices <= SUBSET_CLOCKED_DEVICES
    # on small rounds with each module's minimal covers (the knapsack's convex hull: 8-device edges, lambda 0.5 and
    # 5, 0.71 -> 0.80 and 0.68 -> 0.78 of the plan, experiments/solver_bound_curve.py) and, where relays aggregate,
    # each uploader's upload at least each member's alone
    union = small and problem.relay_aggregates and UNION_ROWS
    subset: EdgeFloor | None = None
    if clock is None or not clock.bounded or small:
        subset = SubsetEnergy(problem, covers=small, union=union, band_row=small and BAND_ROW)
    elif problem.num_devices <= SUBSET_DUAL_DEVICES:  # within the clock on larger rounds: every edge at once, and
        subset = SubsetDual.of(problem)  # one pair-row LP an edge while the time lasts
        if pair_dual.PAIR_DUAL and not problem.has_power_frequency and clock is not None:
            pairs = PairDual(problem, then=subset)
            pairs.solve(clock.share(pair_dual.LP_SHARE))
            subset = pairs
    return max(loose, tradeoff_lower_bound(problem, t, upper, clock=clock, subset=subset, cap=LATENCY_CAP))
