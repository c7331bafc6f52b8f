"""lambda > 0, edges too large for the local search of solvers/tradeoff.py: relay moves priced at the round's deadline.

The energy search gives each large edge one of a few whole-edge candidates (its lambda-0 choice, the least-energy
covers with greedy relays), so its relays are not a local optimum of T + lambda E: on a 100-device edge of a
1,000-device round at lambda 0.5, single relay moves (relay a device through a direct D2D neighbour, or make a
relayed device direct) lowered that edge's objective by 13.7 % (experiments/solver_scale_side.py). At the round's
deadline T the edges separate (solvers/candidates.py): an edge's cost is its compute + D2D energy plus its least
upload energy by T. Every single relay move of an edge is priced that way in one batch (EdgeCandidates,
deadline_energy); the improving moves are taken greedily on disjoint devices (the mover, its old and new relay),
the combination is priced again and kept if it is the best, else only the best move; repeat while the clock lasts.
The caller re-optimizes T and the band for the new choices, which only lowers T + lambda E further.
"""

from __future__ import annotations

import numpy as np

from solvers.candidates import EdgeCandidates
from solvers.clock import Clock
from solvers.edgebatch import EdgeView
from solvers.instance import RoundProblem
from solvers.local import relay_moves

ROUNDS = 12
"""Rounds of batched moves per edge (each prices every single relay move of the edge once)."""


def improve_relays(problem: RoundProblem, x: np.ndarray, relay: np.ndarray, deadline: float, edges: list[int],
                   clock: Clock, rounds: int = ROUNDS) -> tuple[np.ndarray, int]:
    """(relay with the edges' relays improved at `deadline`, moves taken); x is kept. Stops when `clock` runs out."""
    p = problem
    relay = relay.copy()
    taken = 0
    at = np.array([deadline])  # each candidate's compute + D2D + least upload energy by it (EdgeCandidates.energy)
    for e in edges:
        if clock.expired():
            break
        view = EdgeView.of(p, int(e))
        d = view.dev
        re = np.searchsorted(d, relay[d])
        first, xe = re.copy(), x[d]
        for _ in range(rounds):
            if clock.expired():
                break
            moves = relay_moves(view, re)
            if not moves:
                break
            ra = np.array(moves)
            ra = ra[view.relay_ok(ra)]
            cand = np.vstack([re[None], ra])
            cost = EdgeCandidates.of(view, np.broadcast_to(xe, (cand.shape[0], *xe.shape)), cand).energy(at)[0]
            gain = cost[0] - cost[1:]
            good = np.flatnonzero(gain > 1e-9 * max(abs(cost[0]), 1e-300))
            if good.size == 0:
                break
            combo, used = re.copy(), np.zeros(view.n, dtype=bool)
            for j in good[np.argsort(-gain[good])]:  # disjoint moves, best first
                i = int(np.flatnonzero(ra[j] != re)[0])
                touch = [i, int(re[i]), int(ra[j][i])]
                if used[touch].any():
                    continue
                used[touch] = True
                combo[i] = ra[j][i]
            best = ra[good[np.argmax(gain[good])]]
            two = np.stack([combo, best])
            two = two[view.relay_ok(two)]
            c2 = EdgeCandidates.of(view, np.broadcast_to(xe, (two.shape[0], *xe.shape)), two).energy(at)[0]
            re = two[int(np.argmin(c2))]
        taken += int(np.sum(re != first))
        relay[d] = d[re]
    return relay, taken
