"""solvers/model_powerfreq.py: uplink power and CPU frequency as decisions of the round's one model (solvers/model.py)
-- exact at a fixed plan, a valid lower bound against the exact reference at every lambda, and the worked example
(a per-device energy budget) with power and frequency free."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from conftest import model_at_plan

from solvers import random_instance, solve
from solvers.evaluate import evaluate, link_rates, round_timeline, uplink_rate
from solvers.model import certify
from solvers.powerfreq import plan_power_frequency
from solvers.reference import reference_power_frequency


def _decisions(p, f_low=0.3):
    return dataclasses.replace(p, p_max=p.tx_power_w * 1.0, f_min=p.cpu_hz * f_low, f_max=p.cpu_hz.copy())


def _fixed(p):
    """The fixed-power problem of p (what the fixed-power heuristics plan)."""
    return dataclasses.replace(p, p_max=None, f_min=None, f_max=None)


@pytest.mark.parametrize("lam,aggregates", [(0.5, False), (5.0, True)])
def test_model_objective_equals_evaluate_at_a_fixed_plan(lam, aggregates):
    """Placement, relays, band, seconds per bit and 1 / f fixed at a plan's, with a tangent there: the MILP's
    T + lambda E is evaluate's with that plan's power and frequency."""
    p = _decisions(random_instance(5, 1, 3, seed=3, lam=lam, relay_aggregates=aggregates))
    base = solve(_fixed(p), "greedy")
    x, relay = base.placement, base.relay
    band, power, freq = plan_power_frequency(p, x, relay)
    assert np.any(power < p.power_max * 0.99) and np.any(freq < p.freq_max * 0.99)  # both decisions in play
    want = evaluate(p, x, relay, band, power, freq).objective
    share = band / p.edge_bandwidth_hz[p.device_edge]
    up = share > 0
    sigma = float(8 * p.module_bytes.max())
    eps_pt = sigma / want / np.where(up, uplink_rate(band, power * p.uplink_gain / p.noise_w_per_hz), 1.0)

    m, sc = model_at_plan(p, x, relay, share, want, lambda var: [
        var["zeta"] == p.cpu_hz / freq, var["eps"][np.flatnonzero(up)] == eps_pt[up]])
    m.pf.add_plan(p, (want, band, power, freq))
    m.pf.push(m.par)
    m.problem.solve(solver="HIGHS")
    assert m.problem.value * sc.t0 == pytest.approx(want, rel=1e-6)


def _check_against_reference(n, modules, seed, lam, aggregates=False):
    p = _decisions(random_instance(n, 1, modules, seed=seed, lam=lam, relay_aggregates=aggregates))
    ref = reference_power_frequency(p)
    inc = solve(_fixed(p), "greedy")  # a fixed-power incumbent: the model has the power / frequency work to do
    c = certify(p, inc.placement, inc.relay, time.perf_counter() + 60.0, gap=0.001, max_milps=20)
    assert c.lower_bound <= ref.objective * (1 + 1e-6)  # valid
    assert c.power is not None and c.freq is not None and c.band is not None
    got = evaluate(p, c.x, c.relay, c.band, c.power, c.freq).objective
    assert got == pytest.approx(c.objective, rel=1e-9) and c.objective >= ref.objective * (1 - 1e-6)  # a real plan
    assert np.all(c.power <= p.power_max * (1 + 1e-9)) and np.all((c.freq >= p.freq_min * (1 - 1e-9))
                                                                  & (c.freq <= p.freq_max * (1 + 1e-9)))
    assert c.objective <= ref.objective * 1.001 and c.proven and c.lower_bound >= 0.999 * c.objective


@pytest.mark.slow
def test_model_is_the_reference_optimum_and_certifies_it():  # the reference alone takes ~0.6 CPU s
    _check_against_reference(2, 2, 1, 5.0)


@pytest.mark.slow
@pytest.mark.parametrize("n,modules,seed,lam,aggregates", [
    (2, 2, seed, lam, seed == 2) for seed in (0, 1, 2) for lam in (0.0, 0.05, 0.5, 5.0, 50.0)
] + [(3, 2, 2, 5.0, True), (3, 2, 2, 0.5, True)])
def test_model_against_the_reference_on_a_seeded_suite(n, modules, seed, lam, aggregates):
    _check_against_reference(n, modules, seed, lam, aggregates)


def energy_budget(budget_j):
    """solvers/README.md's worked example: each device's energy within a budget (here with power and frequency
    free, so the model can meet it by sending at lower power or computing at a lower frequency)."""
    def constraints(var, par):
        return [var["device_energy_j"] <= budget_j]
    return constraints


def test_energy_budget_binds_with_power_and_frequency_free():
    p = _decisions(random_instance(4, 1, 3, seed=2))  # lambda = 0: the unconstrained plan runs at p_max, f_max
    inc = solve(_fixed(p), "greedy")
    free = certify(p, inc.placement, inc.relay, time.perf_counter() + 60.0)
    used = _device_energy(p, free.x, free.relay, free.band, free.power, free.freq)
    budget = used * 1.5
    worst = int(np.argmax(used))
    budget[worst] = 0.6 * used[worst]  # the unconstrained optimum breaks this budget
    c = certify(p, free.x, free.relay, time.perf_counter() + 60.0, extra=[energy_budget(budget)])
    got = _device_energy(p, c.x, c.relay, c.band, c.power, c.freq)
    assert got[worst] <= budget[worst] * 1.02  # the cuts under-estimate energy a little between tangents
    assert np.isfinite(c.objective) and c.objective >= free.objective * (1 - 1e-6) and c.lower_bound <= c.objective


def _device_energy(p, x, relay, band, power, freq) -> np.ndarray:
    """Each device's energy of a plan with its power and frequency (evaluate's formulas per device)."""
    tl = round_timeline(p, x, relay, freq)
    e = p.kappa * p.samples * (x.astype(float) @ p.module_cycles) * freq ** 2
    rate = link_rates(p, relay)
    e = e + np.where(tl.relayed, p.d2d_power_w * tl.payload_bits / np.where(tl.relayed, rate, 1.0), 0.0)
    up = uplink_rate(band, power * p.uplink_gain / p.noise_w_per_hz)
    return e + np.where(tl.uploader, power * tl.bits / np.where(tl.uploader, up, 1.0), 0.0)
