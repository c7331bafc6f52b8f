"""experiments/solver_ab.py's --patch values keep their kind: an integer constant stays an int (a float broke
group_price.COLUMNS, used as a count), flags are bools, and a value that is none of these is refused by name."""

import pytest
from conftest import load_experiment


def test_patch_values_keep_their_kind() -> None:
    ab = load_experiment("solver_ab")
    name, value = ab.parse_patch("solvers.group_price.COLUMNS=6")
    assert (name, value, type(value)) == ("solvers.group_price.COLUMNS", 6, int)
    assert ab.parse_patch("solvers.joint.ONEHOP_HEURISTIC_SHARE=0.7") == ("solvers.joint.ONEHOP_HEURISTIC_SHARE", 0.7)
    assert ab.parse_patch("solvers.joint.RELAY_SEARCH=False") == ("solvers.joint.RELAY_SEARCH", False)
    assert ab.parse_patch("solvers.clock.ITERATION_S=1.2e-4")[1] == pytest.approx(1.2e-4)
    with pytest.raises(SystemExit, match="ONEHOP_HEURISTIC_SHARE's value must be a number"):
        ab.parse_patch("solvers.joint.ONEHOP_HEURISTIC_SHARE=lots")
    with pytest.raises(SystemExit, match="expected module.CONSTANT=value"):
        ab.parse_patch("COLUMNS=6")
