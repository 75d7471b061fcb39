"""The rows a large table is fitted on: every row up to `MAX_FIT_ROWS`, a stratified sample beyond.

Every law here is refitted hundreds of times (the bootstrap, the ladder's folds, their spreads),
each refit touching every row, and approach 3's grid of 4,500 starts holds an array of
starts x rows: on 200,000 rows that is tens of GiB and hours (issue 35: 2,000 rows did not finish
in 10 minutes, 200,000 not in 15). Beyond `MAX_FIT_ROWS` rows the fits, back-tests and bootstraps
use a sample of them instead, and the report and the printed summary say so
(`sample_note`), with both counts in fits.json (`subsample`).

The sample is stratified by model size (rungs of N, `RUNG_TOLERANCE` wide): every size keeps its
share of the rows, and at least `MIN_PER_SIZE` of them (all of a size with fewer), so the ladder's
rungs and the largest size, which the back-test holds out, survive. Which rows a size keeps is
decided by a hash of each row's own values (N, D, loss), not by its position: the same rows are
kept whatever order the table comes in, so the report and `--predict` fit the same sample. The
sample keeps the table's order.

What it costs: the intervals are those of a fit to `MAX_FIT_ROWS` runs, so wider than all rows
would give where rows are independent runs (at most sqrt(n / MAX_FIT_ROWS) wider); rows that
repeat a configuration (seeds, points of one curve) carry less new information than their count,
and the sample loses less than that.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["MAX_FIT_ROWS", "MIN_PER_SIZE", "sample_note", "sample_rows"]

MAX_FIT_ROWS = 2000
MIN_PER_SIZE = 20
_RUNG = 0.01  # = ladder.RUNG_TOLERANCE: sizes within 1% are one size (inputs cannot import it)


def _row_keys(values: np.ndarray) -> np.ndarray:
    """A pseudo-random uint64 per row from its values alone (splitmix64 over the float bits)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    h = np.full(bits.shape[0], 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(bits.shape[1]):
            z = h ^ bits[:, j]
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = z ^ (z >> np.uint64(31))
    return h


def _size_rungs(n: np.ndarray) -> np.ndarray:
    u = np.unique(n)
    starts = np.concatenate([[True], u[1:] > u[:-1] * (1 + _RUNG)])
    label = np.cumsum(starts) - 1
    return label[np.searchsorted(u, n)]


def sample_rows(
    frame: pd.DataFrame,
    *,
    max_rows: int | None = None,
    columns: tuple[str, str, str] = ("n_params", "n_tokens", "loss"),
) -> tuple[pd.DataFrame, int]:
    """(`frame`'s rows to fit, the number it had): all of them up to `max_rows` (default
    `MAX_FIT_ROWS`; 0: all), else a stratified sample of about `max_rows` (module docstring).
    `columns`: N, D and loss."""
    max_rows = MAX_FIT_ROWS if max_rows is None else max_rows
    n_rows = len(frame)
    if max_rows <= 0 or n_rows <= max_rows:
        return frame, n_rows
    values = frame[list(columns)].to_numpy(float)
    rung = _size_rungs(values[:, 0])
    key = _row_keys(values)
    share = max_rows / n_rows
    keep = np.zeros(n_rows, bool)
    for r in np.unique(rung):
        idx = np.flatnonzero(rung == r)
        k = min(idx.size, max(MIN_PER_SIZE, math.ceil(idx.size * share)))
        keep[idx[np.argsort(key[idx], kind="stable")[:k]]] = True
    out = frame[keep]
    out.attrs = dict(frame.attrs)
    return out, n_rows


def sample_note(n_used: int, n_rows: int) -> str:
    """The line the report and the printed summary carry when a sample was fitted."""
    return (
        f"large table: the fits, back-tests and bootstraps used a sample of {n_used:,} of its "
        f"{n_rows:,} rows (stratified by model size, each size keeping its share; "
        "analysis/inputs/row_sample.py), so the intervals are those of a "
        f"{n_used:,}-run fit: wider than all rows would give"
    )
