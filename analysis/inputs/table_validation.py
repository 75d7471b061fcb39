"""The checks a results table passes before any fit (analysis/inputs/canonical_table.py reads it):
numeric, finite and
positive values, no repeated point, enough runs and sizes per group, a loss that looks like nats.

Each failure is one `TableError` line naming the column (as the user's table spells it), the first
bad row (1 = the first data row) and the fix.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..errors import AnalysisWarning, TableError

__all__ = [
    "MIN_POINTS",
    "PERPLEXITY_FLOOR",
    "check_values",
    "check_curve_runs",
    "check_duplicates",
    "check_fit_size",
    "check_loss_units",
]

_NUMERIC = ("n_params", "n_tokens", "loss", "flops", "seed", "lr", "step")
_POSITIVE = ("n_params", "n_tokens", "loss", "flops", "lr")
MIN_POINTS = 6  # approach 3 has 5 free parameters: a law needs more points than that
# a cross-entropy in nats/token is rarely above ln(50k) ~ 11 even at initialization: a loss
# above 20 is almost surely a perplexity (or a table in other units)
PERPLEXITY_FLOOR = 20.0


def check_values(t: pd.DataFrame, columns: dict[str, str], where: str) -> pd.DataFrame:
    """Numeric, finite, positive where it must be; the first bad row named (1 = first data row)."""
    for key in _NUMERIC:
        if key not in t:
            continue
        name = f"{columns.get(key, key)!r}" + (f" ({key})" if columns.get(key, key) != key else "")
        col = t[key]
        if col.dtype.kind in "bMm":  # to_numeric reads True as 1 and a date as nanoseconds
            bad = pd.Series(True, index=col.index)
        else:
            bad = col.map(lambda x: isinstance(x, bool | np.bool_))
        values = pd.to_numeric(col.where(~bad), errors="coerce")
        bad |= values.isna() & ~col.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise TableError(
                f"{where}: column {name} has non-numeric value {str(col.iloc[i])!r} (row "
                f"{i + 1}); numbers only (e.g. 1.3e9, not '1.3B', '1,300,000' or True)"
            )
        v = values.to_numpy(float)
        ok = np.isfinite(v) & ((v > 0) if key in _POSITIVE else (v >= 0))
        if key == "seed":
            ok = np.isfinite(v) | np.isnan(v)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            what = "positive" if key in _POSITIVE else "finite and >= 0"
            raise TableError(
                f"{where}: column {name} has {int((~ok).sum())} value(s) that are not {what} "
                f"(first: {v[i]:g} at row {i + 1}); drop those rows (diverged or missing runs) "
                "or fix them"
            )
        t[key] = v
    if "group" in t:
        if t["group"].isna().any():
            i = int(np.flatnonzero(t["group"].isna().to_numpy())[0])
            raise TableError(
                f"{where}: column {columns.get('group', 'group')!r} (group) is empty at row "
                f"{i + 1}; give every row a group or drop the mapping"
            )
        t["group"] = t["group"].astype(str)
    return t


def _pair(t: pd.DataFrame, key: list[str], dup: pd.Series) -> tuple[int, int]:
    """The first row flagged by `dup` and the next row equal to it on `key` (0-based)."""
    ids = t.groupby(key, sort=False, dropna=False).ngroup().to_numpy()
    i = int(np.flatnonzero(dup.to_numpy())[0])
    return i, int(np.flatnonzero(ids == ids[i])[1])


def _describe(row: pd.Series, cols: list[str], columns: dict[str, str]) -> str:
    def one(c: str) -> str:
        v, name = row[c], columns.get(c, c)
        if pd.isna(v):
            return f"{name} empty"
        return f"{name}={v:.4g}" if isinstance(v, float | int) else f"{name}={v}"

    return ", ".join(one(c) for c in cols)


def check_duplicates(t: pd.DataFrame, columns: dict[str, str], where: str) -> None:
    key = [c for c in ("n_params", "n_tokens", "seed", "group", "lr", "step", "run") if c in t]
    dup = t.duplicated(subset=key, keep=False)
    if dup.any():
        i, j = _pair(t, key, dup)
        fix = "add a seed column (--columns seed=...)" if "seed" not in t else "drop one"
        if "step" in t and "run" not in t:
            fix = "add a run column naming each curve (--columns run=...)"
        raise TableError(
            f"{where}: rows {i + 1} and {j + 1} repeat the same point "
            f"({_describe(t.iloc[i], key, columns)}); {fix} or average them"
        )


def check_curve_runs(t: pd.DataFrame, columns: dict[str, str], where: str) -> None:
    """A curve table without a `run` column groups its rows into runs by N, seed, group and lr:
    two rows of one such run at the same step (with different D) are two runs that would be
    merged into one without a word."""
    if "step" not in t or "run" in t:
        return
    key = [c for c in ("n_params", "seed", "group", "lr", "step") if c in t]
    dup = t.duplicated(subset=key, keep=False)
    if dup.any():
        i, j = _pair(t, key, dup)
        raise TableError(
            f"{where}: rows {i + 1} and {j + 1} have the same "
            f"{_describe(t.iloc[i], key, columns)} but other tokens, so they are two runs a "
            "curve table cannot tell apart: add a run column naming each run (--columns "
            "run=...), or drop the step column if each row is a finished run"
        )


def check_fit_size(t: pd.DataFrame, where: str) -> None:
    groups = t.groupby("group", sort=True) if "group" in t else [(None, t)]
    for name, g in groups:
        label = f"group {name!r}" if name is not None else "the table"
        sizes = np.unique(g["n_params"])
        if sizes.size < 2:
            raise TableError(
                f"{where}: {label} has a single model size (n_params={sizes[0]:.4g}); a scaling "
                "law needs runs at several sizes: add them"
                + (" or drop the group" if name is not None else "")
            )
        if len(g) < MIN_POINTS:
            raise TableError(
                f"{where}: {label} has {len(g)} run(s); a law needs at least {MIN_POINTS} "
                "(approach 3 fits 5 parameters): add runs"
                + (" or drop the group" if name is not None else "")
            )


def check_loss_units(t: pd.DataFrame, columns: dict[str, str], where: str) -> None:
    col = columns.get("loss", "loss")
    named = "perplex" in col.lower() or "ppl" in col.lower()
    if float(t["loss"].max()) > PERPLEXITY_FLOOR or named:
        warnings.warn(
            f"{where}: column {col!r} (loss) looks like perplexity (max {t['loss'].max():.4g}; a "
            f"loss in nats/token is rarely above {math.log(50_000):.1f}): if so, map "
            "log(perplexity) instead (docs/tables.md)",
            AnalysisWarning,
            stacklevel=3,
        )
