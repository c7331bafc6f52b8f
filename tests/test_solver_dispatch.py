"""solvers/: the one method table (what each method plans, which options it takes), the refusals, the fixes for
trees (relay capacity, disconnected clusters, exact's size limit), infeasible plans, the front, and the package's
import hygiene (no circles, no private names across modules, the highspy fast path really taken)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest

from solvers import METHODS, RoundPlan, RoundProblem, check_plan, random_instance, solve
from solvers.__main__ import main
from solvers.errors import TooLargeError

PACKAGE = Path(__file__).resolve().parents[1] / "solvers"


def _tree(n: int, e: int, seed: int, lam: float = 0.0, **kw):
    return dataclasses.replace(random_instance(n, e, 3, seed=seed, lam=lam, **kw), tree_aggregation=True)


def _power_frequency(p: RoundProblem) -> RoundProblem:
    return dataclasses.replace(p, p_max=p.tx_power_w * 1.0, f_min=p.cpu_hz * 0.3, f_max=p.cpu_hz.copy())


def test_each_record_declares_the_options_its_entry_points_take():
    for m in METHODS.values():
        assert m.options == frozenset(list(inspect.signature(m.solve).parameters)[1:]), m.name
        if m.tree is not None:
            assert m.tree_options == frozenset(list(inspect.signature(m.tree).parameters)[1:]), m.name
    assert {m.name for m in METHODS.values() if m.trees} == set(METHODS)  # every method plans trees itself
    assert "workers" in METHODS["joint"].options and "workers" not in METHODS["greedy"].options


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_every_method_plans_trees_itself(lam):
    p = _tree(8, 2, 3, lam)
    plans = {name: solve(p, name) for name in METHODS}
    for name, plan in plans.items():
        assert not plan.fallback and plan.solver == name and check_plan(p, plan) == [], (name, plan.message)
        assert plan.parent is not None
    assert plans["exact"].objective <= min(pl.objective for pl in plans.values()) * (1 + 1e-9)
    assert plans["greedy"].objective <= plans["equal"].objective * (1 + 1e-12)  # its root choice includes equal's
    assert solve(p, "random", seed=1).objective != plans["random"].objective  # the seed is used, not dropped


def test_options_a_mode_does_not_take_are_refused_not_dropped():
    tree = _tree(4, 1, 1)
    with pytest.raises(ValueError, match=r"'equal' takes no option 'seed' on aggregation-tree"):
        solve(tree, "equal", seed=1)
    with pytest.raises(ValueError, match=r"'joint' takes no option 'iterations' on aggregation-tree"):
        solve(tree, "joint", iterations=2)
    assert solve(tree, "joint", workers=1).parent is not None


def test_power_frequency_needs_a_method_that_plans_it():
    p = _power_frequency(random_instance(8, 2, 3, seed=1, lam=0.5))
    for name in ("greedy", "equal", "random"):
        assert not METHODS[name].power_frequency
        with pytest.raises(ValueError, match=rf"method '{name}' keeps uplink power .* choose one of \['joint'"):
            solve(p, name)
    plan = solve(p, "joint")
    assert not plan.fallback and plan.tx_power_w is not None and check_plan(p, plan) == []
    both = dataclasses.replace(p, tree_aggregation=True)
    with pytest.raises(ValueError, match="no method plans uplink power and CPU frequency on aggregation trees"):
        solve(both, "joint")


@pytest.mark.parametrize("capacity", [1, 2])
def test_trees_respect_relay_capacity(capacity):
    for n, e, seed in ((5, 1, 2), (8, 2, 3), (24, 2, 5)):
        p = _tree(n, e, seed, relay_capacity=capacity)
        for name in ("joint", "greedy", "equal", "random"):
            plan = solve(p, name)
            assert not plan.fallback and check_plan(p, plan) == [], (n, name, plan.message)
            kids = np.bincount(plan.parent[plan.parent != np.arange(n)], minlength=n)
            assert kids.max() <= capacity
        if n <= 8:
            assert solve(p, "exact").objective <= solve(p, "joint").objective * (1 + 1e-9)


def _disconnected() -> RoundProblem:
    p = _tree(6, 1, 1)
    keep = (p.d2d_src < 3) & (p.d2d_dst < 3) | (p.d2d_src >= 3) & (p.d2d_dst >= 3)
    return dataclasses.replace(p, d2d_src=p.d2d_src[keep], d2d_dst=p.d2d_dst[keep], d2d_rate_bps=p.d2d_rate_bps[keep])


def test_a_cluster_the_d2d_graph_does_not_connect_is_infeasible_naming_the_edge(tmp_path, capsys):
    p = _disconnected()
    for name in METHODS:
        plan = solve(p, name)
        assert plan.status == "infeasible" and plan.fallback, name
        assert "edge 'e0'" in plan.message and "do not connect" in plan.message
        assert all(math.isnan(v) for v in (plan.latency_s, plan.energy_j, plan.objective))
    p.save(tmp_path / "i.json")
    code = main(["solve", str(tmp_path / "i.json"), "-o", str(tmp_path / "plan.json")])
    err = capsys.readouterr().err
    assert code == 2 and "infeasible" in err and "edge 'e0'" in err
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["latency_s"] is None and saved["energy_j"] is None and saved["status"] == "infeasible"


def test_an_infeasible_instance_never_reports_zero_latency_and_energy(tmp_path, capsys):
    p = random_instance(6, 1, 3, seed=1)
    tight = dataclasses.replace(p, memory_bytes=np.full(6, 1.0))
    tight.save(tmp_path / "i.json")
    assert main(["solve", str(tmp_path / "i.json"), "-o", str(tmp_path / "plan.json")]) == 2
    assert "coverage" in capsys.readouterr().err
    back = RoundPlan.load(tmp_path / "plan.json", tight)
    assert not math.isfinite(back.latency_s) and back.status == "infeasible"  # null in the JSON


def test_exact_raises_on_a_tree_edge_too_large_to_enumerate(tmp_path, capsys):
    p = _tree(9, 1, 4)
    with pytest.raises(TooLargeError, match="exact tree reference is for small instances"):
        solve(p, "exact")
    assert not solve(p, "joint").fallback  # the heuristic path plans it
    p.save(tmp_path / "i.json")
    assert main(["solve", str(tmp_path / "i.json"), "-o", str(tmp_path / "p.json"), "--method", "exact"]) == 2
    assert "small instances" in capsys.readouterr().err


def test_the_front_drops_points_dominated_up_to_rounding():
    from solvers.pareto import non_dominated

    rows = [{"lambda": 0.0, "latency_s": 4.3434998236, "energy_j": 19.75},
            {"lambda": 0.01, "latency_s": 4.3434998240, "energy_j": 19.51},  # same latency up to 1e-10, less energy
            {"lambda": 0.02, "latency_s": 4.3434998240, "energy_j": 19.51},  # a duplicate
            {"lambda": 0.1, "latency_s": 4.58, "energy_j": 15.7},
            {"lambda": 1.0, "latency_s": 4.9, "energy_j": 15.7},  # slower at the same energy
            {"lambda": 9.0, "latency_s": math.nan, "energy_j": math.nan}]  # an infeasible plan
    assert [r["lambda"] for r in non_dominated(rows)] == [0.01, 0.1]


@pytest.mark.parametrize("field, value, reason", [
    ("p_max", 0.01, "tx_power_w = 1 > p_max = 0.01"),
    ("f_min", 1e12, "f_min = 1e+12 > cpu_hz"),
    ("f_max", 1.0, "cpu_hz = 1.21522e+09 > f_max = 1"),
])
def test_power_and_frequency_ranges_name_the_real_reason(tmp_path, capsys, field, value, reason):
    data = json.loads((PACKAGE / "examples" / "instance_small.json").read_text())
    data["devices"][1][field] = value  # records: the other devices take the default
    (tmp_path / "i.json").write_text(json.dumps(data))
    assert main(["solve", str(tmp_path / "i.json"), "-o", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert f"devices.{field}" in err and "device 1" in err and reason in err, err
    del data["devices"][1][field]
    data["devices"][1]["f_min"], data["devices"][1]["f_max"] = 2e9, 1e9
    with pytest.raises(ValueError, match=r"f_min = 2e\+09 > f_max = 1e\+09"):
        RoundProblem.from_dict(data)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a file, function-level ones included, TYPE_CHECKING blocks excluded."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def test_the_package_has_no_import_circles_and_imports_no_private_names():
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        mod = f"solvers.{path.stem}"
        graph[mod] = set()
        for target, names in _imports(path):
            if target.startswith("solvers"):
                assert not target.startswith("hffm")
                graph[mod].add(target)
                private = [n for n in names if n.startswith("_")]
                assert not private, f"{mod} imports private {private} from {target}"
    graph = {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            assert state.get(t) != 1, f"import circle: {' -> '.join(stack[stack.index(t):] + [t])}"
            if t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_bound_lps_take_the_highspy_fast_path_and_scipy_agrees():
    from solvers.bounds import EdgeLP, EdgeRoutes

    p = random_instance(60, 1, 4, seed=3)
    routes = EdgeRoutes.of(p, 0, [0])
    demand = p.coverage_demand()[0]
    fast = EdgeLP(routes.dev, routes.mbits, p.samples, demand)
    slow = EdgeLP(routes.dev, routes.mbits, p.samples, demand, backend="scipy")
    rng = np.random.default_rng(0)
    for trial in range(4):  # new costs each time: the fast path re-solves from its basis
        c = rng.uniform(0.1, 2.0, routes.dev.size) / p.samples[routes.dev]
        c[rng.uniform(size=c.size) < 0.2] = np.inf
        (s1, v1), (s2, v2) = fast.solve(c), slow.solve(c)
        assert fast.used == "highspy" and slow.used == "scipy"
        assert s1 == s2 and (s1 != "optimal" or v1 == pytest.approx(v2, rel=1e-7, abs=1e-12)), trial
    with pytest.raises(ValueError, match="backend"):
        EdgeLP(routes.dev, routes.mbits, p.samples, demand, backend="gurobi")
