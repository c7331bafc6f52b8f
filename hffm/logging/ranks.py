"""One log line per run, whatever the number of Fabric processes."""

from __future__ import annotations

import logging

from lightning.fabric.utilities.rank_zero import rank_zero_only


class RankZeroFilter(logging.Filter):
    """Passes records only in the process of global rank 0 (Fabric sets the rank when it launches)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(rank_zero_only, "rank", 0) == 0


def log_from_rank_zero(*names: str) -> None:
    """Install the filter on these loggers (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RankZeroFilter) for f in logger.filters):
            logger.addFilter(RankZeroFilter())
