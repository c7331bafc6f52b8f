"""Independent edges in parallel: at lambda = 0 a round separates by edge, so chunks of edges are solved in
worker processes and their choices merged; the plan is the same as the serial one, bit for bit.

Each chunk is a `RoundProblem` of its own (its edges, their devices in the original order, their D2D links).
Every step of the lambda-0 search is per edge and batch-invariant (root searches and Newton iterations stop per
group or entry, running sums restart per edge, ties break stably), which is what makes the merge equal to the
serial answer (tests/test_solver_parallel.py checks it). Workers are forked where the platform allows it (no
re-import), else spawned; a pool that cannot start falls back to serial with a warning. Under a work budget
(solvers/clock.py) each worker counts on a copy of the solve's meter as it stood when the chunks were handed out, so
the plan stays deterministic for a given number of workers (under a bounded budget it may differ between numbers:
each chunk's steps see their own work, as each sees its own wall time under a time budget).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.clock import WorkMeter, current_meter, under_budget
from solvers.instance import RoundProblem

log = logging.getLogger("solvers")

AUTO_MIN_DEVICES = 20_000
"""`workers=None` uses two processes from this many devices on (and at least 2 edges and 2 CPUs): below it the
solve takes about half a second (10,000 devices, experiments/solver_speed.py), little for a second process to win
on a machine shared with other jobs, and callers with small rounds (the training loop) never fork."""


@dataclass(frozen=True)
class EdgeChoice:
    """The lambda-0 answer for the edges of one problem: choices and band per device, latencies per edge."""

    x: np.ndarray  # bool [N, M] placement
    relay: np.ndarray  # int [N]
    bandwidth_hz: np.ndarray  # float [N]
    edge_latency: np.ndarray  # float [E] latency each edge achieves with that band
    known: np.ndarray  # float [E] > 0 where the edge's least latency is known exactly (enumerated)


def resolve_workers(problem: RoundProblem, workers: int | None) -> int:
    """How many processes to use: `workers`, or automatic (None), never more than there are edges."""
    if workers is None:
        big = problem.num_devices >= AUTO_MIN_DEVICES and (os.cpu_count() or 1) >= 2
        return 2 if big and problem.num_edges >= 2 else 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be an integer >= 1 or None (automatic), got {workers!r}")
    return max(1, min(workers, problem.num_edges))


def edge_chunks(problem: RoundProblem, parts: int) -> list[np.ndarray]:
    """Consecutive runs of edge indices with about equal device counts (the work is about linear in devices)."""
    counts = np.bincount(problem.device_edge, minlength=problem.num_edges)
    cut = np.searchsorted(np.cumsum(counts), problem.num_devices * np.arange(1, parts) / parts, side="left") + 1
    bounds = np.unique(np.concatenate([[0], np.clip(cut, 1, problem.num_edges - 1), [problem.num_edges]]))
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def restrict(problem: RoundProblem, edges: np.ndarray) -> tuple[RoundProblem, np.ndarray]:
    """The sub-problem of some edges, and its devices' indices in the whole problem (in their original order)."""
    p = problem
    inside = np.zeros(p.num_edges, dtype=bool)
    inside[edges] = True
    dev = np.flatnonzero(inside[p.device_edge])
    new_edge = np.full(p.num_edges, -1)
    new_edge[edges] = np.arange(edges.size)
    new_dev = np.full(p.num_devices, -1)
    new_dev[dev] = np.arange(dev.size)
    links = np.flatnonzero(inside[p.device_edge[p.d2d_src]])  # links never leave a cluster
    opt: dict[str, Any] = {k: None if getattr(p, k) is None else getattr(p, k)[dev]
                           for k in ("p_max", "f_min", "f_max")}
    sub = RoundProblem(
        device_ids=tuple(p.device_ids[i] for i in dev.tolist()), edge_ids=tuple(p.edge_ids[e] for e in edges.tolist()),
        module_names=p.module_names, device_edge=new_edge[p.device_edge[dev]], samples=p.samples[dev],
        cpu_hz=p.cpu_hz[dev], memory_bytes=p.memory_bytes[dev], tx_power_w=p.tx_power_w[dev],
        uplink_gain=p.uplink_gain[dev], d2d_power_w=p.d2d_power_w[dev], eligible=p.eligible[dev],
        module_bytes=p.module_bytes, module_memory_bytes=p.module_memory_bytes, module_cycles=p.module_cycles,
        edge_bandwidth_hz=p.edge_bandwidth_hz[edges], d2d_src=new_dev[p.d2d_src[links]],
        d2d_dst=new_dev[p.d2d_dst[links]], d2d_rate_bps=p.d2d_rate_bps[links], noise_w_per_hz=p.noise_w_per_hz,
        gamma=p.gamma, lam=p.lam, relay_aggregates=p.relay_aggregates, kappa=p.kappa,
        relay_capacity=p.relay_capacity, tree_aggregation=p.tree_aggregation, **opt,
    )
    return sub, dev


def map_edges(problem: RoundProblem, fn: Callable[..., EdgeChoice], workers: int, **opts: Any) -> EdgeChoice:
    """fn(problem, **opts) (a module-level function, per edge separable), over `workers` chunks of edges at once:
    the last chunks in a process pool, the first in this process, merged in edge order."""
    if workers <= 1:
        return fn(problem, **opts)
    counts = np.bincount(problem.device_edge, minlength=problem.num_edges)
    chunks = [edges for edges in edge_chunks(problem, workers) if counts[edges].sum() > 0]
    if len(chunks) <= 1:
        return fn(problem, **opts)
    subs = [restrict(problem, edges) for edges in chunks]
    meter = current_meter()
    start = None if meter is None else dataclasses.replace(meter)  # the work done so far: each worker's start
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    try:
        with ProcessPoolExecutor(max_workers=len(subs) - 1, mp_context=mp.get_context(method)) as pool:
            futures = [pool.submit(_metered, start, fn, sub, **opts) for sub, _ in subs[1:]]
            results = [fn(subs[0][0], **opts)] + [f.result() for f in futures]
    except (BrokenProcessPool, OSError) as exc:
        log.warning("solvers: the worker pool failed (%s); solving the edges serially", exc)
        return fn(problem, **opts)
    n, ne = problem.num_devices, problem.num_edges
    x = np.zeros((n, problem.num_modules), dtype=bool)
    relay, band = np.arange(n), np.zeros(n)
    t_edge, known = np.zeros(ne), np.zeros(ne)
    for (_, dev), edges, part in zip(subs, chunks, results, strict=True):
        x[dev], relay[dev], band[dev] = part.x, dev[part.relay], part.bandwidth_hz
        t_edge[edges], known[edges] = part.edge_latency, part.known
    return EdgeChoice(x=x, relay=relay, bandwidth_hz=band, edge_latency=t_edge, known=known)


def _metered(start: WorkMeter | None, fn: Callable[..., EdgeChoice], sub: RoundProblem, **opts: Any) -> EdgeChoice:
    """fn(sub, **opts) in a worker: on a copy of the solve's work meter (`start`), or the wall clock (None)."""
    with under_budget("time" if start is None else "work", meter=None if start is None else
                      dataclasses.replace(start)):
        return fn(sub, **opts)
