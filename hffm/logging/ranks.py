"""One log line per run, whatever the number of Fabric processes."""

from __future__ import annotations

import logging

from lightning.fabric.utilities.rank_zero import rank_zero_only


class RankZeroFilter(logging.Filter):
    """Passes records only in the process of global rank 0 (Fabric sets the rank when it launches)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(rank_zero_only, "rank", 0) == 0


def log_from_rank_zero() -> None:
    """Install the filter on the root logger's handlers (idempotent), so every logger's records
    (hffm.*, solvers, ...) are printed by rank 0 only. Call after logging is configured (in a Hydra app)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RankZeroFilter) for f in handler.filters):
            handler.addFilter(RankZeroFilter())
