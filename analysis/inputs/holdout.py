"""The points a fit or back-test takes, from arrays or a table, and a held-out split of them.

`as_points(n_params, n_tokens, loss)` accepts three equal-length arrays or one canonical table
(`canonical_table.load_table`, or any DataFrame with n_params, n_tokens and loss columns) in place
of
`n_params`, and returns float arrays; unequal lengths are one error naming the arguments.
`parse_holdout("C>1e21")` reads a split: a column (a canonical name or N, D, C, L, M = D/N), an
operator (> >= < <=) and a number; `Holdout.mask(...)` marks the held-out points.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import AnalysisError

__all__ = ["HOLDOUT_ALIASES", "Holdout", "as_points", "parse_holdout"]

HOLDOUT_ALIASES = {
    "N": "n_params",
    "D": "n_tokens",
    "C": "flops",
    "L": "loss",
    "M": "tokens_per_param",
}
_COLUMNS = ("n_params", "n_tokens", "flops", "loss", "tokens_per_param", "lr", "step", "seed")
_SPLIT = re.compile(r"^\s*([A-Za-z_][A-Za-z_0-9]*)\s*(>=|<=|>|<)\s*(\S+)\s*$")
_OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}


def as_points(n_params, n_tokens=None, loss=None, *, what: str = "fit"):
    """(N, D, loss) float arrays from three arrays or from a table passed as `n_params`."""
    if isinstance(n_params, pd.DataFrame):
        table = n_params
        missing = [c for c in ("n_params", "n_tokens", "loss") if c not in table]
        if missing:
            raise AnalysisError(
                f"{what}: the table has no column {', '.join(missing)}; load it with "
                "analysis.load_table(path, columns={...}) to map its names"
            )
        if n_tokens is not None or loss is not None:
            raise AnalysisError(f"{what}: pass a table alone, or three arrays, not both")
        n_params, n_tokens, loss = table["n_params"], table["n_tokens"], table["loss"]
    if n_tokens is None or loss is None:
        raise AnalysisError(f"{what}: pass n_params, n_tokens and loss (or one table)")
    arrays = [np.asarray(x, float).ravel() for x in (n_params, n_tokens, loss)]
    sizes = [a.size for a in arrays]
    if len(set(sizes)) > 1:
        raise AnalysisError(
            f"{what}: n_params, n_tokens and loss have different lengths "
            f"({', '.join(map(str, sizes))}); pass one value per run in each"
        )
    return tuple(arrays)


@dataclass(frozen=True)
class Holdout:
    """A held-out split `column op value` (column canonical: n_params, flops, tokens_per_param)."""

    column: str
    op: str
    value: float
    text: str

    def mask(self, table: pd.DataFrame | None = None, **arrays) -> np.ndarray:
        """Boolean mask of the held-out points of `table` (or of arrays given by canonical name)."""
        cols = dict(arrays) if table is None else {c: table[c] for c in table.columns}
        if "flops" not in cols and {"n_params", "n_tokens"} <= set(cols):
            cols["flops"] = (
                6.0 * np.asarray(cols["n_params"], float) * np.asarray(cols["n_tokens"], float)
            )
        if "tokens_per_param" not in cols and {"n_params", "n_tokens"} <= set(cols):
            cols["tokens_per_param"] = np.asarray(cols["n_tokens"], float) / np.asarray(
                cols["n_params"], float
            )
        if self.column not in cols:
            raise AnalysisError(
                f"--holdout {self.text!r}: the table has no {self.column} column; split on "
                "N, D, C, M (tokens per parameter) or a column the table has"
            )
        x = np.asarray(cols[self.column], float)
        return np.asarray(_OPS[self.op](x, self.value), bool)

    def check(self, mask: np.ndarray, *, min_train: int = 1) -> None:
        """Refuse a split that holds out nothing, or leaves fewer than `min_train` points."""
        if not mask.any():
            raise AnalysisError(
                f"--holdout {self.text!r}: no point is held out; choose a cut inside the table's "
                f"range of {self.column}"
            )
        if (~mask).sum() < min_train:
            raise AnalysisError(
                f"--holdout {self.text!r}: leaves {int((~mask).sum())} point(s) to fit, a law "
                f"needs at least {min_train}; move the cut so more points are fitted"
            )


def parse_holdout(text: str | Holdout) -> Holdout:
    """`"C>1e21"`, `"n_params>=1e9"`, `"M<=100"` -> Holdout; AnalysisError naming the fix."""
    if isinstance(text, Holdout):
        return text
    m = _SPLIT.match(str(text))
    if m is None:
        raise AnalysisError(
            f"--holdout {text!r}: write COLUMN OP NUMBER, e.g. 'C>1e21' or 'n_params>=1e9' "
            "(OP one of > >= < <=)"
        )
    name, op, number = m.groups()
    column = HOLDOUT_ALIASES.get(name, name)
    if column not in _COLUMNS:
        raise AnalysisError(
            f"--holdout {text!r}: unknown column {name!r}; use N, D, C, L, M (= D/N) or "
            f"{', '.join(_COLUMNS)}"
        )
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise AnalysisError(f"--holdout {text!r}: {number!r} is not a finite number")
    return Holdout(column=column, op=op, value=value, text=f"{name}{op}{number}")
