"""CPU threads spent on whole passes, not on the pieces of each operation: 2 threads never run slower than 1.

torch splits one operation across its intra-op threads, and every operation ends at a barrier where each
thread waits for the others. A packed pass is thousands of mid-sized operations, so on a machine whose cores
other processes also want, every barrier waits until the operating system schedules the thread that was
preempted: 2 threads took 20.1 s of wall where 1 took 10.8 (1,000-device evaluation, load 4;
experiments/bench_threads.py measures it). ``OMP_WAIT_POLICY=PASSIVE`` (`hffm.openmp`) stops idle threads
spinning but not the waiting.

So the packed engine spends its CPU threads on independent units instead: evaluation passes, training waves.
Each worker runs its units with one intra-op thread, and no worker waits for another until the end. A pass
computes what it computes on one thread, so the results are bit-equal to a one-thread run whatever the
number of workers. The number of workers is torch's thread count when the engine is called (``threads`` of
the config); on an accelerator, or with one unit, the units run in the calling thread as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def pass_workers(device: torch.device) -> int:
    """How many units of work run at once: torch's intra-op threads on the CPU, 1 on an accelerator."""
    return torch.get_num_threads() if device.type == "cpu" else 1


def run_units(fn: Callable[[T], R], units: Sequence[T], workers: int) -> list[R]:
    """``[fn(u) for u in units]``, on ``min(workers, len(units))`` threads with one intra-op thread each and the
    caller's autograd mode (torch's thread count is restored after). ``fn`` must not depend on the order the units
    run in, nor change state another unit reads."""
    workers = min(workers, len(units))
    if workers <= 1:
        return [fn(u) for u in units]
    threads = torch.get_num_threads()
    grad = torch.is_grad_enabled()  # thread-local: a worker starts with autograd on
    torch.set_num_threads(1)  # new threads read torch's count when they first run an operation

    def one(unit: T) -> R:
        torch.set_num_threads(1)
        with torch.set_grad_enabled(grad):
            return fn(unit)

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="hffm-pass") as pool:
            return list(pool.map(one, units))
    finally:
        torch.set_num_threads(threads)
