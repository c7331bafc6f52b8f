"""The solvers' own exceptions (a leaf module: every other module may import it)."""

from __future__ import annotations


class InfeasibleError(ValueError):
    """No plan satisfies the instance (the message names the edge or cluster and the constraint)."""


class CoverageError(InfeasibleError):
    """Coverage cannot be met within memory (names the edge and module)."""


class TooLargeError(ValueError):
    """An exact method was asked for an instance beyond its enumeration limits (names the edge and the limit);
    `solve` lets it through instead of falling back, as documented."""
