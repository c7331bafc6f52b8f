"""The MILPs solved through cvxpy (model.run_highs, milp's cvxpy placement repair) reach HiGHS with the feasibility
jump as solvers/highs.py sets it in its own MILPs (highs.FEASIBILITY_JUMP: off, HiGHS 1.16's invalid bound)."""

from __future__ import annotations

import pathlib

import cvxpy as cp
import highspy
import numpy as np
import pytest

from solvers import highs, random_instance
from solvers.milp import milp_placement
from solvers.model import run_highs


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[highspy.Highs]:
    """The HiGHS solvers cvxpy runs (its interface builds a highspy.Highs() at each solve), kept to read back."""
    out: list[highspy.Highs] = []

    class Recorded(highspy.Highs):  # type: ignore[misc]
        def run(self) -> object:
            out.append(self)
            return super().run()

    monkeypatch.setattr(highspy, "Highs", Recorded)
    return out


def _jump(h: highspy.Highs) -> bool:
    value = h.getOptionValue(highs.JUMP_OPTION)
    return bool(value[1] if isinstance(value, tuple) else value)


def _tiny_milp() -> cp.Problem:
    x = cp.Variable(3, boolean=True)
    y = cp.Variable(nonneg=True)
    return cp.Problem(cp.Minimize(y + cp.sum(x)), [y >= 1.5 - cp.sum(x), cp.sum(x) >= 1])


@pytest.mark.parametrize("jump", [0, 1])
def test_run_highs_passes_the_feasibility_jump(made, monkeypatch, jump):
    monkeypatch.setattr(highs, "FEASIBILITY_JUMP", jump)
    status, bound, present = run_highs(_tiny_milp(), 5.0, 0.0, None)
    assert status == "optimal" and present and bound == pytest.approx(1.5)
    assert made and all(_jump(h) is bool(jump) for h in made)


@pytest.mark.parametrize("jump", [0, 1])
def test_cvxpy_placement_repair_passes_the_feasibility_jump(made, monkeypatch, jump):
    monkeypatch.setattr(highs, "FEASIBILITY_JUMP", jump)
    p = random_instance(4, 1, 4, seed=0)
    x = milp_placement(p, 0, np.ones((len(p.edge_devices(0)), p.num_modules)), 5.0, backend="cvxpy")
    assert x is not None
    assert made and all(_jump(h) is bool(jump) for h in made)


def test_every_cvxpy_highs_solve_in_solvers_passes_the_options():
    """A new `solve(solver="HIGHS", ...)` in solvers/ must pass highs.cvxpy_milp_options() too."""
    root = pathlib.Path(highs.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        calls = text.count('solver="HIGHS"')
        assert calls <= text.count("cvxpy_milp_options()"), f"{path}: a cvxpy HiGHS solve without the options"
