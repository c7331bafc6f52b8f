"""A solver's answer for one round (`RoundPlan`) and its JSON form (device ids and module names)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from solvers.fields import id_key
from solvers.instance import RoundProblem, paused_gc
from solvers.instance_io import LAYOUTS, row_names

if TYPE_CHECKING:
    from solvers.evaluate import Cost

STATUS_PROVEN, STATUS_TIME, STATUS_UNPROVEN = "optimal", "time_limit", "not_proven"
"""A certified plan's status (`joint`, trees included): lower_bound >= (1 - gap) objective was proven; the time limit
stopped the model before it; the model does not cover the round (too large, trees the per-root MILP does not take,
power / frequency) and the heuristics' bound is looser."""


@dataclass(frozen=True, eq=False)
class RoundPlan:
    """placement x[i, m], relay rho[i] (i itself = direct upload), bandwidth b[i] in Hz, and its cost."""

    placement: np.ndarray  # bool [N, M]
    relay: np.ndarray  # int [N]
    bandwidth_hz: np.ndarray  # float [N]
    latency_s: float
    energy_j: float
    objective: float
    solver: str
    status: str = "optimal"
    solve_seconds: float = 0.0
    fallback: bool = False
    message: str = ""
    lower_bound: float = 0.0  # certified: no feasible plan has a smaller objective (0 = no bound computed)
    tx_power_w: np.ndarray | None = None  # float [N] planned uplink power (None: the instance's tx_power_w)
    cpu_hz: np.ndarray | None = None  # float [N] planned CPU frequency (None: the instance's cpu_hz)
    parent: np.ndarray | None = None  # int [N] D2D tree (tree_aggregation): next hop, parent[i] = i for the uploader
    level: np.ndarray | None = None  # int [N] compression level chosen per device (None: full size; solvers/levels.py)

    def __post_init__(self) -> None:
        x = np.asarray(self.placement, dtype=bool)
        r = np.asarray(self.relay, dtype=int)
        b = np.asarray(self.bandwidth_hz, dtype=float)
        if x.ndim != 2 or r.shape != (x.shape[0],) or b.shape != (x.shape[0],):
            raise ValueError(f"RoundPlan: inconsistent shapes placement {x.shape}, relay {r.shape}, "
                             f"bandwidth {b.shape}")
        arrays = [("placement", x), ("relay", r), ("bandwidth_hz", b)]
        if self.parent is not None:
            par = np.asarray(self.parent, dtype=int)
            if par.shape != (x.shape[0],):
                raise ValueError(f"RoundPlan: parent has shape {par.shape}, expected ({x.shape[0]},)")
            arrays.append(("parent", par))
        if self.level is not None:
            lv = np.asarray(self.level, dtype=int)
            if lv.shape != (x.shape[0],):
                raise ValueError(f"RoundPlan: level has shape {lv.shape}, expected ({x.shape[0]},)")
            arrays.append(("level", lv))
        for name in ("tx_power_w", "cpu_hz"):
            if getattr(self, name) is not None:
                v = np.asarray(getattr(self, name), dtype=float)
                if v.shape != (x.shape[0],):
                    raise ValueError(f"RoundPlan: {name} has shape {v.shape}, expected ({x.shape[0]},)")
                arrays.append((name, v))
        for name, a in arrays:
            a = a.copy()
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @property
    def gap(self) -> float:
        """Certified relative gap 1 - lower_bound / objective: no feasible plan is better by more (1 without a
        bound, inf for an infeasible plan)."""
        if not math.isfinite(self.objective):
            return math.inf
        if self.objective <= 0:
            return 0.0
        return max(0.0, 1.0 - self.lower_bound / self.objective)

    def power(self, problem: RoundProblem) -> np.ndarray:
        """Planned uplink power [N] (the instance's fixed power when the plan has none)."""
        return problem.tx_power_w if self.tx_power_w is None else self.tx_power_w

    def frequency(self, problem: RoundProblem) -> np.ndarray:
        """Planned CPU frequency [N] (the instance's fixed frequency when the plan has none)."""
        return problem.cpu_hz if self.cpu_hz is None else self.cpu_hz

    def with_(self, **changes: Any) -> RoundPlan:
        return replace(self, **changes)

    def costed(self, cost: Cost, **changes: Any) -> RoundPlan:
        """This plan with `changes` (its decisions: placement, relay, bandwidth_hz, tx_power_w, cpu_hz, ...) and the
        latency, energy and objective of `cost`, solvers/evaluate.py's Cost of those decisions."""
        return replace(self, latency_s=cost.latency_s, energy_j=cost.energy_j, objective=cost.objective, **changes)

    def to_dict(self, problem: RoundProblem, layout: str = "columns") -> dict[str, Any]:
        """The plan's JSON: "columns" (lists in the order of `device_ids`; fast) or "records" (objects keyed by
        device id); from_dict reads both."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout: must be one of {LAYOUTS}, got {layout!r}")
        ids, names = problem.device_ids, problem.module_names
        columns: dict[str, list] = {
            "placement": row_names(self.placement, names),
            "relay": [ids[j] for j in self.relay.tolist()],
            "bandwidth_hz": self.bandwidth_hz.tolist(),
            **{name: v.tolist() for name, v in (("tx_power_w", self.tx_power_w), ("cpu_hz", self.cpu_hz))
               if v is not None},
            **({"parent": [ids[j] for j in self.parent.tolist()]} if self.parent is not None else {}),
            **({"level": [problem.level_names[k] for k in self.level.tolist()]} if self.level is not None else {}),
        }
        if layout == "columns":
            head: dict[str, Any] = {"layout": "columns", "device_ids": list(ids), **columns}
        else:
            keys = [str(i) for i in ids]
            head = {name: dict(zip(keys, col, strict=True)) for name, col in columns.items()}
        return {
            **head, "latency_s": _num(self.latency_s), "energy_j": _num(self.energy_j),
            "objective": _num(self.objective), "solver": self.solver, "status": self.status,
            "solve_seconds": float(self.solve_seconds), "fallback": bool(self.fallback), "message": self.message,
            "lower_bound": _num(self.lower_bound), "gap": _num(self.gap),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], problem: RoundProblem) -> RoundPlan:
        """Inverse of to_dict (either layout); records match device ids by their string form (JSON object keys are
        strings)."""
        if not isinstance(data, dict):
            raise ValueError("plan: top level must be a JSON object")
        if data.get("layout", "records") == "columns":
            data = _keyed(data, problem)
        n, m = problem.num_devices, problem.num_modules
        dev = {str(d): i for i, d in enumerate(problem.device_ids)}
        by_key = {id_key(d): i for i, d in enumerate(problem.device_ids)}
        mod = {name: k for k, name in enumerate(problem.module_names)}
        for f in ("placement", "relay", "bandwidth_hz", "latency_s", "energy_j", "objective", "solver", "status"):
            if f not in data:
                raise ValueError(f"plan: missing field {f!r}")
        x = np.zeros((n, m), dtype=bool)
        relay = np.arange(n)
        bw = np.zeros(n)
        for key, mods in data["placement"].items():
            i = _dev(dev, key, "placement")
            for name in mods:
                if name not in mod:
                    raise ValueError(f"placement[{key!r}]: unknown module {name!r}")
                x[i, mod[name]] = True
        for key, target in data["relay"].items():
            i = _dev(dev, key, "relay")
            if id_key(target) not in by_key:
                raise ValueError(f"relay[{key!r}]: unknown device {target!r}")
            relay[i] = by_key[id_key(target)]
        for key, hz in data["bandwidth_hz"].items():
            bw[_dev(dev, key, "bandwidth_hz")] = float(hz)
        extra = {}
        for name, nominal in (("tx_power_w", problem.tx_power_w), ("cpu_hz", problem.cpu_hz)):
            if name in data:
                v = nominal.copy()
                for key, val in data[name].items():
                    v[_dev(dev, key, name)] = float(val)
                extra[name] = v
        if "parent" in data:
            par = np.arange(n)
            for key, target in data["parent"].items():
                if id_key(target) not in by_key:
                    raise ValueError(f"parent[{key!r}]: unknown device {target!r}")
                par[_dev(dev, key, "parent")] = by_key[id_key(target)]
            extra["parent"] = par
        if "level" in data:
            index = {name: k for k, name in enumerate(problem.level_names)}
            lv = np.zeros(n, dtype=int)
            for key, name in data["level"].items():
                if name not in index:
                    raise ValueError(f"level[{key!r}]: unknown level {name!r}; offered: {list(problem.level_names)}")
                lv[_dev(dev, key, "level")] = index[name]
            extra["level"] = lv
        return cls(placement=x, relay=relay, bandwidth_hz=bw, latency_s=_inv(data["latency_s"]),
                   energy_j=_inv(data["energy_j"]), objective=_inv(data["objective"]), solver=data["solver"],
                   status=data["status"], solve_seconds=float(data.get("solve_seconds", 0.0)),
                   fallback=bool(data.get("fallback", False)), message=str(data.get("message", "")),
                   lower_bound=float(data.get("lower_bound") or 0.0), **extra)

    def save(self, path: str | Path, problem: RoundProblem, layout: str = "columns") -> None:
        """Write the JSON (columns: compact, one line; records: indented)."""
        with paused_gc():
            Path(path).write_text(json.dumps(self.to_dict(problem, layout), indent=1 if layout == "records" else None))

    @classmethod
    def load(cls, path: str | Path, problem: RoundProblem) -> RoundPlan:
        with paused_gc():
            return cls.from_dict(json.loads(Path(path).read_text()), problem)


def _keyed(data: dict[str, Any], problem: RoundProblem) -> dict[str, Any]:
    """A columns-layout plan as the records layout (per-device lists keyed by device id)."""
    ids = data.get("device_ids")
    if not isinstance(ids, list):
        raise ValueError("plan.device_ids: the columns layout needs the list of device ids")
    known = {id_key(d) for d in problem.device_ids}
    for d in ids:
        if id_key(d) not in known:
            raise ValueError(f"plan.device_ids: unknown device {d!r}")
    out = dict(data)
    for name in ("placement", "relay", "bandwidth_hz", "tx_power_w", "cpu_hz", "parent", "level"):
        if name in data:
            if not isinstance(data[name], list) or len(data[name]) != len(ids):
                raise ValueError(f"plan.{name}: must be a list with one value per device_ids entry")
            out[name] = {str(d): v for d, v in zip(ids, data[name], strict=True)}
    return out


def _dev(index: dict[str, int], key: str, field: str) -> int:
    if str(key) not in index:
        raise ValueError(f"{field}: unknown device id {key!r}")
    return index[str(key)]


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _inv(v: float | None) -> float:
    return math.inf if v is None else float(v)
