"""The round's clock (solvers/clock.py): every heuristic and the placement-repair MILP of `joint` keep to
`time_limit_s`; 0 is unbounded and deterministic."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from solvers import check_plan, random_instance, solve
from solvers.clock import MILP_CAP_S, MILP_FLOOR_S, Clock
from solvers.greedy import Repairs, greedy_placement
from solvers.milp import milp_placement


def test_clock_zero_is_unbounded() -> None:
    c = Clock.start(0)
    assert not c.bounded and not c.expired() and c.left() == math.inf
    assert c.share(0.5) == c and c.within(None) == c
    assert c.milp_limit() == MILP_CAP_S
    assert c.within(10.0).bounded


def test_clock_share_floor_and_cap() -> None:
    now = time.perf_counter()
    c = Clock.start(10.0, now)
    assert c.end == now + 10.0
    assert 4.0 < c.share(0.5).left() <= 5.0
    assert c.within(1.0).left() <= 1.0
    assert c.milp_limit() == MILP_CAP_S  # capped
    assert 2.0 < c.milp_limit(pending=4) <= 2.5  # an equal part for each MILP still to run
    past = Clock(now - 1.0)
    assert past.expired() and past.left() == 0.0
    assert past.milp_limit() == MILP_FLOOR_S  # a repair still gets the floor: without a cover there is no plan


def _tight() -> object:
    return random_instance(200, 2, 6, 0, memory_fraction=(0.5, 0.7))


def test_repairs_solved_once_per_edge() -> None:
    """The repair's weights do not depend on the target latencies: a second greedy cover reuses each edge's MILP."""
    p = _tight()
    r = Repairs(Clock.start(2.0))
    x1 = greedy_placement(p, np.full(p.num_devices, np.inf), repairs=r)
    assert r.done  # memory blocked the greedy: the MILP placed some edge
    kept = {e: v.copy() for e, v in r.done.items()}
    t0 = time.perf_counter()
    x2 = greedy_placement(p, np.full(p.num_devices, 1.0), repairs=r)
    assert time.perf_counter() - t0 < 1.0  # no MILP ran again
    for e, v in kept.items():
        d = p.edge_devices(e)
        assert np.array_equal(x1[d], v) and np.array_equal(x2[d], v)


def test_memory_tight_round_keeps_its_time_limit() -> None:
    """Two 100-device memory-tight edges: unbounded, each repair MILP ran to its 5 s cap (10 s for the round);
    with time_limit_s=0.5 the whole round, repairs included, ends near the limit with a feasible plan."""
    p = _tight()
    limit = 0.5
    cpu = time.process_time()
    plan = solve(p, "joint", time_limit_s=limit)
    work = time.process_time() - cpu  # CPU s: a loaded machine stretches wall time, not the work done
    assert not plan.fallback and check_plan(p, plan) == []
    assert work < limit + 2 * MILP_FLOOR_S + 1.5  # the floor of two repairs, and slack
    assert plan.lower_bound <= plan.objective


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_memory_tight_lambda_keeps_limit(lam: float) -> None:
    """Unbounded, this instance takes about 3 (lambda 0) and 4 (lambda 0.5) CPU s. The clock is wall time, but the
    work done is checked in CPU seconds: on a loaded machine wall time stretches, not the work (a wall bound of
    3.4 s failed at load 7 with 3.7 s)."""
    p = random_instance(200, 2, 6, 1, lam=lam, memory_fraction=(0.5, 0.7))
    cpu = time.process_time()
    plan = solve(p, "joint", time_limit_s=1.0)
    assert time.process_time() - cpu < 1.0 + 2 * MILP_FLOOR_S + 1.0
    assert not plan.fallback and check_plan(p, plan) == []


def test_unbounded_is_deterministic() -> None:
    p = random_instance(40, 4, 5, 3, memory_fraction=(0.5, 0.7))
    a, b = solve(p, "joint", time_limit_s=0), solve(p, "joint", time_limit_s=0)
    assert np.array_equal(a.placement, b.placement) and np.array_equal(a.relay, b.relay)
    assert a.objective == b.objective and a.lower_bound == b.lower_bound


def test_repair_backends_agree() -> None:
    """The MILP through highspy's bare solver and through cvxpy: both covers feasible, costs within the gap."""
    p = random_instance(24, 2, 5, 2, memory_fraction=(0.5, 0.7))
    rng = np.random.default_rng(0)
    for e in range(p.num_edges):
        d = p.edge_devices(e)
        w = rng.uniform(0.1, 1.0, (d.size, p.num_modules))
        xa = milp_placement(p, e, w, backend="auto")
        xb = milp_placement(p, e, w, backend="cvxpy")
        assert (xa is None) == (xb is None)
        if xa is not None:
            assert abs((w * xa).sum() - (w * xb).sum()) <= 0.02 * (w * xb).sum()


def test_a_repair_without_a_cover_in_its_share_waits_for_the_first_cover() -> None:
    """A share too short for HiGHS to find any cover must not fail the round: the repair waits for the first."""
    from solvers.greedy import repair_edge
    from solvers.milp import MilpTimeout

    p = _tight()
    demand = p.coverage_demand()
    with pytest.raises(MilpTimeout):
        milp_placement(p, 0, np.ones((p.edge_devices(0).size, p.num_modules)), time_limit_s=1e-4)
    x = np.zeros((p.num_devices, p.num_modules), dtype=bool)
    repair_edge(p, x, 0, demand[0], time_limit_s=1e-4)
    d = p.edge_devices(0)
    assert np.all(p.samples[d] @ x[d].astype(float) >= demand[0] * (1 - 1e-9))
    assert np.all(x[d].astype(float) @ p.module_memory_bytes <= p.memory_bytes[d] * (1 + 1e-9))


def test_energy_search_keeps_the_clock_on_unenumerated_edges() -> None:
    """An 8-device lambda > 0 edge (too many choices to enumerate): the energy search once ran to its end and spent
    23 CPU s against a 2 s limit (one branch and bound over T took 7 s); it now stops with the clock."""
    p = random_instance(8, 1, 6, 1, lam=0.5)
    cpu = time.process_time()
    plan = solve(p, "joint", time_limit_s=1.0)
    assert time.process_time() - cpu < 1.0 + 3.0  # cvxpy's first import and the model's last MILP: slack
    assert not plan.fallback and check_plan(p, plan) == []
    assert plan.lower_bound <= plan.objective


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("lam", [0.05, 5.0])
def test_enumerated_rounds_stay_exact_on_a_short_clock(seed: int, lam: float) -> None:
    """Every edge enumerated: the energy search is bounded work and runs to its end, so a clock far too short
    still gives the exact answer."""
    from solvers.edgebatch import EdgeView
    from solvers.exact import edge_candidates, exact_solve

    p = random_instance(4, 1, 6, seed, lam=lam)
    assert edge_candidates(EdgeView.of(p, 0), 3000) is not None  # enumerated by joint (enum_max 3000)
    plan = solve(p, "joint", time_limit_s=0.05)
    assert plan.objective == pytest.approx(exact_solve(p).objective, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_least_energy_prunes_exactly(seed: int) -> None:
    """`EdgeCandidates.least` (what the energy search's branch and bound over T calls: 15.7 -> 0.2 CPU s on an
    8-device edge) evaluates only candidates whose energy at a far deadline is within a probed cap, yet gives the
    min and argmin of evaluating them all."""
    from solvers.edgebatch import EdgeView
    from solvers.exact import edge_candidates

    p = random_instance(4, 1, 6, seed, lam=5.0)
    c = edge_candidates(EdgeView.of(p, 0), 10**6)
    assert c is not None
    ts = np.geomspace(0.5 * c.t_min.min(), 30 * c.t_min.min(), 25)  # some deadlines nothing meets
    e = c.energy(ts)
    v, j = c.least(ts, probe=3)
    assert np.array_equal(v, e.min(axis=1))
    assert np.array_equal(j[np.isfinite(v)], np.argmin(e, axis=1)[np.isfinite(v)])
    assert np.isinf(v[0]) and np.isfinite(v[-1])


def test_lambda_round_at_scale_keeps_its_time_limit() -> None:
    """lambda > 0 on 3,000 devices in 30 edges: the energy search and the latency-energy bound stop on the clock
    (before, 2.8 CPU s whatever the limit; about 2.1 CPU s unbounded). The plan stays feasible, its bound valid."""
    p = random_instance(3000, 30, 5, 0, lam=0.5)
    limit = 0.5
    cpu = time.process_time()
    plan = solve(p, "joint", time_limit_s=limit)
    assert time.process_time() - cpu < limit + 1.0
    assert not plan.fallback and check_plan(p, plan) == []
    assert 0 < plan.lower_bound <= plan.objective


def test_deadline_energy_matches_a_plain_bisection_of_the_water_level() -> None:
    """deadline_energy's Newton steps on the water level (solvers/energy.py `_water_level`) against a 200-step
    bisection of each group alone with exact inversions of G: the same energy, the band within budget, every
    uploader at least its deadline's band."""
    from solvers.bandwidth import min_bandwidth
    from solvers.energy import LN2, deadline_energy, inv_g
    from solvers.evaluate import uplink_rate

    rng = np.random.default_rng(3)
    for _ in range(30):
        ng = int(rng.integers(1, 8))
        group = np.sort(np.concatenate([np.arange(ng), rng.integers(0, ng, int(rng.integers(0, 20)))]))
        n = group.size
        start, bits = rng.uniform(0, 5, n), 10 ** rng.uniform(5, 8, n)
        a, power = 10 ** rng.uniform(5, 9, n), rng.uniform(0.1, 1, n)
        budget, deadline = 10 ** rng.uniform(5, 7.5, ng), 5 + 10 ** rng.uniform(-1, 3, ng)
        e, b = deadline_energy(group, start, bits, a, power, budget, deadline)
        for g in range(ng):
            m = group == g
            h = min_bandwidth(bits[m] / (deadline[g] - start[m]), a[m])
            if not np.all(np.isfinite(h)) or h.sum() > budget[g]:
                assert e[g] == np.inf
                continue
            c = a[m] ** 2 / (power[m] * bits[m] * LN2)
            lo, hi = -200.0, 200.0  # ln nu: beta(nu) = a / inv_g(nu c)
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                over = np.maximum(h, a[m] / inv_g(np.exp(mid) * c)).sum() > budget[g]
                lo, hi = (mid, hi) if over else (lo, mid)
            ref_b = np.maximum(h, a[m] / inv_g(np.exp(hi) * c))
            ref = float(np.sum(power[m] * bits[m] / uplink_rate(ref_b, a[m])))
            assert e[g] == pytest.approx(ref, rel=1e-7)
            assert b[m].sum() <= budget[g] * (1 + 1e-12)
            assert np.all(b[m] >= h * (1 - 1e-9))


_FIRST_SOLVE = """
import sys
import solvers.joint as joint
import solvers.tree_improve as tree_improve
from solvers import random_instance, solve
import dataclasses
seen = []
start = joint.Clock.start
def spy(*args, **kwargs):  # the round's clock starts here: what is imported from now on is inside the limit
    seen.append(set(sys.modules))
    return start(*args, **kwargs)
joint.Clock.start = spy
p = random_instance(12, 1, 6, 0, lam=0.5, relay_aggregates=True)  # heuristics, the subset LP, the cvxpy model
solve(p, "joint", time_limit_s=0.3)
late = {m for m in set(sys.modules) - seen[0] if m.split(".")[0] in ("scipy", "highspy", "cvxpy")}
tree = dataclasses.replace(random_instance(8, 1, 4, 0, d2d_neighbours=7), tree_aggregation=True)
search = tree_improve.tree_search
def tree_spy(*args, **kwargs):  # called right after the tree round's clock starts
    seen.append(set(sys.modules))
    return search(*args, **kwargs)
tree_improve.tree_search = tree_spy
solve(tree, "joint", time_limit_s=0.3)
late |= {m for m in set(sys.modules) - seen[-1] if m.split(".")[0] in ("scipy", "highspy", "cvxpy")}
print("LATE", sorted(late))
"""


@pytest.mark.slow
def test_a_process_first_solve_imports_nothing_inside_its_clock() -> None:
    """scipy.sparse (0.55 s under load), highspy and cvxpy (0.75 CPU s) load before the round's clock starts
    (solvers/clock.py `load_libraries`), not inside the first solve's time limit; `import solvers` stays light, and
    a large lambda-0 round (no cvxpy model, no trees) imports no scipy at all."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FIRST_SOLVE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LATE []" in done.stdout, done.stdout
    light = subprocess.run([sys.executable, "-c", "import sys, solvers\n"
                            "heavy = lambda: sorted(m for m in ('scipy', 'cvxpy', 'highspy') if m in sys.modules)\n"
                            "print(heavy())\n"
                            "solvers.solve(solvers.random_instance(1000, 10, 4, 0), 'joint')\n"
                            "print(heavy())"], capture_output=True, text=True, timeout=60)
    assert light.stdout.split("\n")[:2] == ["[]", "['highspy']"], light.stdout + light.stderr


@pytest.mark.slow
def test_power_frequency_round_keeps_its_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Power and frequency at lambda > 0: the model stops early enough for the power / frequency step on its
    choices (before, that step ran 0.3 CPU s past the limit on 12 devices), and the bound gets its share before it.
    The solver's deadlines read CPU time here (as `experiments/solver_ab.py --cpu-clock`), so load cannot hide an
    overrun."""
    import dataclasses

    p = random_instance(12, 1, 6, 0, lam=0.5)
    p = dataclasses.replace(p, p_max=p.tx_power_w.copy(), f_min=0.3 * p.cpu_hz, f_max=p.cpu_hz.copy())
    solve(random_instance(4, 1, 3, 0, lam=0.5), "joint", time_limit_s=0.2)  # warm: this process's first solve
    monkeypatch.setattr(time, "perf_counter", time.process_time)
    limit = 1.0
    plan = solve(p, "joint", time_limit_s=limit)
    assert plan.solve_seconds <= limit + 0.1, plan.solve_seconds
    assert not plan.fallback and check_plan(p, plan) == []
    assert 0 < plan.lower_bound <= plan.objective


def test_clock_before() -> None:
    now = time.perf_counter()
    assert Clock(now + 1.0).before(0.25).end == now + 0.75
    assert not Clock().before(1.0).bounded
