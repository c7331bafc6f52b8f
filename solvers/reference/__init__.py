"""Exact references for small instances, written apart from the joint solver's heuristics and from any model: plain
enumeration of the discrete choices, and for each choice the continuous part solved by one-dimensional convex
programs. What the model and the heuristics are tested against (tests/test_solver_reference.py).

Call `reference_trees(problem)` for tree instances and `reference_power_frequency(problem)` for instances with power
and frequency decisions (or any one-hop instance: without p_max / f_min / f_max the powers and frequencies are
fixed and it is the plain exact optimum).

- `reference_trees(problem)`: aggregation trees (tree_aggregation), any lambda: per edge every product of minimal
  covers x every spanning tree within relay_capacity, each costed by a direct recursion over the tree (this file's
  own code, not tree.py's vectorized cost), then the exact choice of one candidate per edge at a common deadline.
- `reference_power_frequency(problem)`: uplink power and CPU frequency as decisions (p_max, f_min, f_max), one-hop
  relays, any lambda: every whole-round discrete choice (minimal covers x relay maps, all edges), each solved for
  T, bands, upload starts, powers and frequencies by nested 1-D convex searches (below).

Continuous part of one discrete choice (README, "power and frequency"): uploader j sends U_j bits (k_j = U_j ln 2)
in a window t_j = T - S_j over band b_j with the least power that finishes in time; its energy is
F_j(b t) = (N0 / g_j) w (e^(k_j / w) - 1), w = b t, jointly convex in (b, t); the power limit is b >= h_j(t) (the
band that needs p_max). Member i of j's group (j, and the devices relaying to j after a D2D delay d_i) computes in
tau_i = min(S_j - d_i, c_i / f_min) >= c_i / f_max for kappa c_i^3 / tau_i^2. The whole problem is convex in
(T, S, b), so: T by golden section (the value is convex in T); at fixed T each edge's band by its multiplier nu
(bisection on log nu: sum_j b_j(nu) = B_e); at fixed (T, nu) each group's start S by golden section, with the band
in closed form, b = max(h(t), k / (t K^-1(nu / (t N0 / g)))), K(x) = 1 + e^x (x - 1) (stationarity in b).
Tolerances 1e-10 relative per level; the plan's objective is then re-evaluated by solvers.evaluate.
"""

from solvers.reference.power_frequency import reference_power_frequency
from solvers.reference.trees import pick_per_edge, reference_trees

__all__ = ["pick_per_edge", "reference_power_frequency", "reference_trees"]
