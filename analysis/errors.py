"""Exceptions and warnings of `analysis/`, and the input check every fit makes: every message
names the file or field and the fix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["AnalysisError", "AnalysisWarning", "TableError", "check_points"]


class AnalysisError(ValueError):
    """Input the analysis cannot use (records, folders, fit data); the message says the fix."""


class TableError(AnalysisError):
    """A results table the analysis cannot use; the message names the column and the fix."""


class AnalysisWarning(UserWarning):
    """Something was skipped or looks wrong (malformed record, edge minimum, duplicate run)."""


def check_points(
    *, loss: np.ndarray, n_free: int, law: str, sizes: Sequence[np.ndarray] = (), names=()
) -> np.ndarray:
    """Validate a fit's input: finite positive losses, more points than parameters, > 1 size.

    `sizes` are the covariates (N, D, C ...) named by `names`; each needs at least two distinct
    values. Returns the losses as floats; raises AnalysisError naming the problem and the fix.
    """
    loss = np.asarray(loss, float)
    if loss.size == 0:
        raise AnalysisError(f"{law}: no points to fit; check the records were loaded and included")
    bad = ~(np.isfinite(loss) & (loss > 0))
    if bad.any():
        raise AnalysisError(
            f"{law}: {int(bad.sum())} loss value(s) are NaN, inf or <= 0 (field loss); "
            "drop diverged runs first (load_runs marks them) or fix the records"
        )
    for x, name in zip(sizes, names, strict=True):
        x = np.asarray(x, float)
        if not np.all(np.isfinite(x) & (x > 0)):
            raise AnalysisError(f"{law}: field {name} has NaN, inf or non-positive values")
        if np.unique(x).size < 2:
            raise AnalysisError(
                f"{law}: only one value of {name} ({x[0]:.3g}); a scaling law needs runs at "
                f"several {name} values: add sizes to the sweep grid"
            )
    if loss.size <= n_free:
        raise AnalysisError(
            f"{law}: {loss.size} point(s) for {n_free} free parameters; "
            f"add runs (at least {n_free + 1}, better several times more)"
        )
    return loss
