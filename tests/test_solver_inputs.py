"""Solver input hardening: each bad input is one line naming its field and exit code 2; extreme inputs that are
accepted give exact costs. The instance reader and the CLI are fuzzed with hypothesis."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solvers import RoundProblem, check_plan, solve
from solvers.__main__ import main
from solvers.check import recompute_cost

EXAMPLE = Path(__file__).resolve().parents[1] / "solvers" / "examples" / "instance_small.json"
BASE = json.loads(EXAMPLE.read_text())
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _set(path, value):
    def change(d):
        *head, last = path
        for key in head:
            d = d[key]
        d[last] = value
    return change


CASES = [  # (change, the field the one-line error must name)
    (_set(("edges", 0, "bandwidth_hz"), 1e-300), "edges[0].bandwidth_hz"),
    (_set(("devices", 0, "uplink_gain"), 1e300), "devices[0].uplink_gain"),
    (_set(("edges", 0, "bandwidth_hz"), 1e308), "edges[0].bandwidth_hz"),
    (_set(("modules", 0, "cycles_per_sample"), 1e308), "cycles_per_sample"),
    (_set(("kappa",), "x"), "kappa"),
    (_set(("relay_capacity",), True), "relay_capacity"),
    (_set(("lambda",), 1e12), "lambda"),
    (_set(("noise_w_per_hz",), 1e-320), "noise_w_per_hz"),
    (_set(("modules", 1, "bytes"), 10**400), "modules[1].bytes"),
    (_set(("devices", 2, "cpu_hz"), 1e-300), "devices[2].cpu_hz"),
    (_set(("d2d_links", 0, "rate_bps"), 1e-300), "d2d_links[0].rate_bps"),
    (_set(("devices", 1, "id"), [1]), "devices[1].id"),
    (_set(("devices", 1, "modules"), [["encoder/image"]]), "devices[1].modules"),
]


COLUMNS = RoundProblem.from_dict(BASE).to_dict("columns")  # the same instance, one list per field

COLUMN_CASES = [  # the columns layout names the entry as table.field[k]
    (_set(("devices", "cpu_hz", 2), -1.0), "devices.cpu_hz[2]"),
    (_set(("devices", "edge", 1), "nope"), "devices.edge[1]"),
    (_set(("devices", "modules", 3), ["head/nope"]), "devices.modules[3]"),
    (_set(("d2d_links", "src", 0), "ghost"), "d2d_links.src[0]"),
    (_set(("edges", "bandwidth_hz", 0), True), "edges.bandwidth_hz[0]"),
    (_set(("modules", "bytes", 1), 10**400), "modules.bytes[1]"),
    (lambda d: d["devices"]["samples"].pop(), "devices.samples"),
    (lambda d: d["devices"].pop("uplink_gain"), "devices: missing column 'uplink_gain'"),
    (_set(("devices", "tx_power_w"), 1.0), "devices.tx_power_w"),
    (_set(("devices",), "devices"), "devices"),
]


@pytest.mark.parametrize("change, field", COLUMN_CASES)
def test_columns_layout_errors_name_the_entry(tmp_path, capsys, change, field):
    data = copy.deepcopy(COLUMNS)
    change(data)
    code, err = _cli(tmp_path, data, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and field in lines[0], err


def _cli(tmp_path, data, capsys, out=None, method="equal"):
    path = tmp_path / "instance.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    code = main(["solve", str(path), "-o", str(out or tmp_path / "plan.json"), "--method", method])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("change, field", CASES)
def test_each_bad_input_is_one_line_naming_the_field_and_exit_2(tmp_path, capsys, change, field):
    data = copy.deepcopy(BASE)
    change(data)
    code, err = _cli(tmp_path, data, capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and field in lines[0], err


def test_an_output_folder_that_does_not_exist_is_refused_before_solving(tmp_path, capsys):
    code, err = _cli(tmp_path, BASE, capsys, out=tmp_path / "missing" / "plan.json")
    assert code == 2 and "-o/--out" in err and "does not exist" in err
    assert main(["generate", "-o", str(tmp_path / "missing" / "i.json")]) == 2


def test_bench_writes_to_a_fresh_folder_by_default(tmp_path, monkeypatch):
    import solvers.bench

    seen = []
    monkeypatch.setattr(solvers.bench, "run_bench", lambda out, *a: seen.append(out))
    monkeypatch.chdir(tmp_path)
    assert main(["bench"]) == 0 and main(["bench"]) == 0
    assert seen[0] != seen[1] and all(p.startswith("outputs/solver_bench/") for p in seen)
    assert main(["bench", "--out", "here"]) == 0 and seen[-1] == "here"
    assert main(["bench", "--sizes", "ten"]) == 2


def _scaled(data, path, factor):
    d = copy.deepcopy(data)
    *head, last = path
    node = d
    for key in head:
        node = node[key]
    node[last] = node[last] * factor
    return d


SCALABLE = [("edges", 0, "bandwidth_hz"), ("devices", 0, "uplink_gain"), ("devices", 1, "tx_power_w"),
            ("devices", 2, "cpu_hz"), ("devices", 3, "samples"), ("modules", 0, "bytes"),
            ("modules", 1, "cycles_per_sample"), ("noise_w_per_hz",), ("d2d_links", 0, "rate_bps"), ("kappa",)]


@FUZZ
@given(path=st.sampled_from(SCALABLE), exponent=st.integers(-320, 320), method=st.sampled_from(["equal", "greedy"]))
def test_extreme_finite_inputs_give_exact_costs_or_a_refusal(path, exponent, method):
    data = _scaled(BASE, path, 10.0 ** exponent if abs(exponent) < 308 else (math.inf if exponent > 0 else 0.0))
    try:
        problem = RoundProblem.from_dict(data)
    except ValueError as exc:
        assert path[-1] in str(exc) or "modules[*]" in str(exc) or "kappa" in str(exc), exc
        return
    plan = solve(problem, method)
    latency, energy = recompute_cost(problem, plan)
    assert math.isfinite(plan.latency_s) and math.isfinite(plan.energy_j)
    assert plan.latency_s == pytest.approx(latency, rel=1e-6) and plan.energy_j == pytest.approx(energy, rel=1e-6)
    assert check_plan(problem, plan, allow_coverage=plan.fallback) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**400), 10**400) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


LAYOUTS = {"records": BASE, "columns": COLUMNS}
PATHS = {name: [p for p in _paths(base) if p] for name, base in LAYOUTS.items()}


@pytest.mark.slow
@FUZZ
@given(data_=st.data())
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_instance_reader_accepts_or_names_a_field_never_crashes(layout, data_):
    edits = data_.draw(st.lists(st.tuples(st.sampled_from(PATHS[layout]), json_values | st.just("__delete__")),
                                min_size=1, max_size=3))
    data = copy.deepcopy(LAYOUTS[layout])
    for path, value in edits:
        node = data
        try:
            for key in path[:-1]:
                node = node[key]
            if value == "__delete__":
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    try:
        problem = RoundProblem.from_dict(data)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert RoundProblem.from_dict(problem.to_dict()).to_dict() == problem.to_dict()


@FUZZ
@given(text=st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                      json_values.map(json.dumps)))
def test_the_cli_answers_any_file_with_a_plan_or_one_line_and_exit_2(tmp_path, capsys, text):
    code, err = _cli(tmp_path, text, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
