"""Idle OpenMP threads that sleep: 2 torch threads on a busy machine must not spin on a core others need.

torch's CPU wheel runs intra-op threads on GNU OpenMP, whose idle threads spin before they sleep. The
engine's passes are many small ops, so with 2 threads on cores other processes also want, a spinning
thread holds a core the working thread needs (experiments/bench_threads.py ``--policy default``). The
waiting at each operation's barrier that is left the packed engine avoids by giving each thread whole
passes (`hffm.engine.workers`). With
``OMP_WAIT_POLICY=PASSIVE`` idle threads sleep at once. libgomp reads the variable once, when torch
loads it, so this runs before hffm imports torch, and only sets a default: an environment that
sets the policy, or ``HFFM_KEEP_OMP_WAIT_POLICY=1``, is left alone.
"""

from __future__ import annotations

import os
import sys


def prefer_passive_wait() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for this process and its children, unless the environment chose a policy
    (or ``HFFM_KEEP_OMP_WAIT_POLICY=1``) or torch is already imported (libgomp has read the variable then)."""
    chosen = "OMP_WAIT_POLICY" in os.environ or os.environ.get("HFFM_KEEP_OMP_WAIT_POLICY") == "1"
    if not chosen and "torch" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
