"""The exception and warning classes of `analysis/`: every message names the file or field and the fix."""

from __future__ import annotations

__all__ = ["AnalysisError", "AnalysisWarning"]


class AnalysisError(ValueError):
    """Input the analysis cannot use (records, folders, fit data); the message says what to change."""


class AnalysisWarning(UserWarning):
    """Something was skipped or looks wrong (a malformed record, an edge minimum, a duplicate run)."""
