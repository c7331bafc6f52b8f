"""solvers/reference: the exact references for trees and for power / frequency decisions (written apart from the
joint solver and from any model) agree with the project's other exact methods where they overlap, are feasible,
and no perturbation of their continuous decisions does better."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from solvers import check_plan, evaluate, random_instance, solve
from solvers.errors import TooLargeError
from solvers.exact import exact_solve
from solvers.reference import reference_power_frequency, reference_trees


@pytest.mark.parametrize("lam", [0.0, 0.5, 5.0])
def test_tree_reference_matches_the_tree_enumeration(lam):
    for n, e, seed, cap in ((4, 1, 1, None), (5, 1, 2, 2), (6, 2, 3, None)):
        p = dataclasses.replace(random_instance(n, e, 3, seed=seed, lam=lam, relay_capacity=cap),
                                tree_aggregation=True)
        ref, exact = reference_trees(p), solve(p, "exact")
        assert check_plan(p, ref) == []
        assert ref.objective == pytest.approx(exact.objective, rel=1e-9)
    with pytest.raises(TooLargeError):
        reference_trees(dataclasses.replace(random_instance(9, 1, 3, seed=4), tree_aggregation=True))


def _decisions(p, f_low=0.3):
    return dataclasses.replace(p, p_max=p.tx_power_w * 1.0, f_min=p.cpu_hz * f_low, f_max=p.cpu_hz.copy())


def test_power_frequency_reference_at_lambda_0_is_the_exact_optimum():
    p = random_instance(3, 1, 2, seed=0)
    ref = reference_power_frequency(_decisions(p))
    assert ref.objective == pytest.approx(exact_solve(p).objective, rel=1e-9)  # full power and speed are optimal


def test_power_frequency_reference_is_feasible_beats_joint_and_no_perturbation_helps():
    p = _decisions(random_instance(2, 1, 2, seed=1, lam=0.5))
    ref = reference_power_frequency(p)
    assert check_plan(p, ref) == [] and ref.tx_power_w is not None and ref.cpu_hz is not None
    assert ref.objective <= solve(p, "joint").objective * (1 + 1e-9)
    # within its discrete choice, random feasible changes of band, power and frequency never do better
    rng = np.random.default_rng(0)
    up = ref.bandwidth_hz > 0
    for _ in range(300):
        b = ref.bandwidth_hz * np.exp(rng.normal(0, 0.02, p.num_devices))
        b[up] *= p.edge_bandwidth_hz[p.device_edge[up]] / np.bincount(p.device_edge[up], weights=b[up],
                                                                       minlength=p.num_edges)[p.device_edge[up]]
        pw = np.minimum(ref.tx_power_w * np.exp(rng.normal(0, 0.02, p.num_devices)), p.power_max)
        fr = np.clip(ref.cpu_hz * np.exp(rng.normal(0, 0.02, p.num_devices)), p.freq_min, p.freq_max)
        other = evaluate(p, ref.placement, ref.relay, b, pw, fr).objective
        assert other >= ref.objective * (1 - 1e-7)


def test_power_frequency_reference_needs_p_max():
    with pytest.raises(ValueError, match="p_max"):
        reference_power_frequency(random_instance(2, 1, 2, seed=0, lam=0.5))
