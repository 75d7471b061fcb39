"""Exceptions and warnings of `analysis/`: every message names the file or field and the fix."""

from __future__ import annotations

__all__ = ["AnalysisError", "AnalysisWarning"]


class AnalysisError(ValueError):
    """Input the analysis cannot use (records, folders, fit data); the message says the fix."""


class AnalysisWarning(UserWarning):
    """Something was skipped or looks wrong (malformed record, edge minimum, duplicate run)."""
