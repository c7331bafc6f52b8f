"""The compression level as a decision in the round's cvxpy model (solvers/model.py), when the problem offers levels.

y[i, l] in {0, 1}, one level per device (sum_l y[i, l] = 1). Level l multiplies device i's payload bits by its
factor phi_l (solvers/levels.py: own bits and each relayed payload at the sender's level, an aggregating relay's
union at its own). Every binary quantity z that carries bits (own, relayed, union, the D2D payload x) is split into
per-level copies c_l >= 0 with sum_l c_l >= z and c_l <= y[device of z, l]: at integer (x, r, y) the copy of the
chosen level is z and the others 0, so each copy times eps keeps today's exact big-M product, and the bits of a row
are sum_l phi_l c_l bits (phi_l a Parameter folded into per-row bits, so the program stays DPP). Every copy enters
with a positive coefficient (the lower sides suffice, as for the other products).

Distortion counts the devices that send (instance.RoundProblem.distortion): s[i, l] >= y[i, l] + x[i, m] - 1 for
every module m with bytes, and sum_{i, l} d_l s[i, l] <= D (distortion_budget, summed, as levels.py has it), plus
mu sum d_l s[i, l] in the objective (distortion_penalty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def structure(p: Any) -> tuple:
    """What the levels add to the compiled program's structure key."""
    if not p.offers_levels:
        return ()
    return (len(p.level_names), p.distortion_budget is not None)


@dataclass
class LevelRows:
    """The level variables of one build: y [N, L] and the helpers that split bit-carrying rows by level."""

    y: Any
    levels: int
    cons: list

    @classmethod
    def build(cls, n: int, levels: int) -> LevelRows:
        import cvxpy as cp

        y = cp.Variable((n, levels), boolean=True, name="y")
        return cls(y=y, levels=levels, cons=[cp.sum(y, axis=1) == 1])

    def split(self, z: Any, sel: Any, name: str) -> Any:
        """[L * K, M] per-level copies of z [K, M] (level-major), z's row k at the level of the device that the
        selection matrix sel [K, N] picks for it."""
        import cvxpy as cp

        k, m = z.shape
        copies = [cp.Variable((k, m), nonneg=True, name=f"{name}_l{lv}") for lv in range(self.levels)]
        ones = np.ones((1, m))
        at = sel @ self.y  # [K, L] the level indicators of each row's device
        self.cons.append(sum(copies) >= z)
        self.cons += [c <= at[:, lv][:, None] @ ones for lv, c in enumerate(copies)]
        return cp.vstack(copies)

    def distortion(self, x: Any, par: dict) -> tuple[Any, Any]:
        """(the penalty term in objective units, the summed distortion) over the devices that send."""
        import cvxpy as cp

        n, m = x.shape
        s = cp.Variable((n, self.levels), nonneg=True, name="sends_at")
        ones = np.ones((1, self.levels))
        self.cons += [s >= self.y + cp.multiply(par["has_bytes"][k], x[:, k])[:, None] @ ones - 1 for k in range(m)]
        summed = cp.sum(s @ par["dist"])
        return cp.sum(s @ par["pen_d"]), summed


def add_params(par: dict, m: int, levels: int, budget: bool) -> None:
    import cvxpy as cp

    par.update(has_bytes=cp.Parameter(m, nonneg=True, name="has_bytes"),
               dist=cp.Parameter(levels, nonneg=True, name="dist"),
               pen_d=cp.Parameter(levels, nonneg=True, name="pen_d"))
    if budget:
        par["budget"] = cp.Parameter(nonneg=True, name="budget")


def load_params(par: dict, p: Any, t0: float) -> None:
    """The level Parameters of p (time unit t0)."""
    par["has_bytes"].value = (p.module_bytes > 0).astype(float)
    par["dist"].value = p.level_distortion
    par["pen_d"].value = p.distortion_penalty * p.level_distortion / t0
    if "budget" in par:
        par["budget"].value = float(p.distortion_budget) * (1 + 1e-12)


def row_factor(p: Any, rows: int) -> np.ndarray:
    """[L * rows] the bytes factor of each level-major copy row (ones without levels)."""
    if not p.offers_levels:
        return np.ones(rows)
    return np.repeat(p.level_factor, rows)


def tiles(p: Any) -> int:
    return len(p.level_names) if p.offers_levels else 1


def least_factor(p: Any) -> float:
    """The smallest bytes factor a payload can have (1 without levels): the least bits an uploader sends scale by it."""
    return float(p.level_factor.min()) if p.offers_levels else 1.0


def most_factor(p: Any) -> float:
    return float(p.level_factor.max()) if p.offers_levels else 1.0


def start_levels(p: Any) -> np.ndarray | None:
    """Levels that always meet the budget (every device at its least distorting level, fewest bytes among ties);
    None where the problem offers none."""
    if not p.offers_levels:
        return None
    return np.full(p.num_devices, int(np.lexsort((p.level_factor, p.level_distortion))[0]))


def factor_dev(p: Any) -> np.ndarray:
    """The device whose level scales each product row's bits: the sender's (own bits, each relayed payload) or,
    when relays aggregate, the uploader's (its union)."""
    n = p.num_devices
    if p.d2d_src.size and not p.relay_aggregates:
        return np.concatenate([np.arange(n), p.d2d_src])
    return np.arange(n)


def levels_of(y_value: Any, x: np.ndarray, relay: np.ndarray, module_bytes: np.ndarray, aggregates: bool
              ) -> np.ndarray:
    """The MILP's level per device; one whose level scales no bits (it sends nothing, nor uploads a union that
    relays aggregate) keeps level 0, as levels.py has it."""
    level = np.argmax(np.asarray(y_value), axis=1).astype(int)
    sends = (np.asarray(x, dtype=float) @ module_bytes) > 0
    used = sends.copy()
    if aggregates:
        moved = np.flatnonzero((relay != np.arange(len(relay))) & sends)
        used[relay[moved]] = True
    level[~used] = 0
    return level
