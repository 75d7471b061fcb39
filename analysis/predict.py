"""Predictions at points the user names, under the law this table's own back-test recommends.

`recommend(table)` fits the candidate laws to a canonical results table (columns n_params, n_tokens,
loss; see analysis/tables.py), chooses one by a back-test on that table alone and returns a
`Recommendation`; `Recommendation.predict(N, D)` gives the predicted loss with an interval.

First version: the only candidate is approach 3 (analysis/chinchilla.py) and the interval is the
bootstrap percentile interval of the predicted loss (analysis/bootstrap.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .bootstrap import bootstrap_chinchilla
from .chinchilla import chinchilla_loss, fit_chinchilla
from .errors import AnalysisError
from .results import FitResult

__all__ = ["Prediction", "Recommendation", "recommend"]

_REQUIRED = ("n_params", "n_tokens", "loss")


@dataclass(frozen=True)
class Prediction:
    """The predicted loss (nats/token) at one (N, D), C = 6 N D, with its `level` interval."""

    n_params: float
    n_tokens: float
    flops: float
    loss: float
    interval: tuple[float, float]
    level: float
    law: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_params": self.n_params,
            "n_tokens": self.n_tokens,
            "flops": self.flops,
            "loss": self.loss,
            "interval": [self.interval[0], self.interval[1]],
            "level": self.level,
            "law": self.law,
        }


@dataclass(frozen=True)
class Recommendation:
    """The law a table's own back-test chose, why, and what looked ill-determined.

    fit: the chosen law fitted to every run of the table; samples: bootstrap replicates of its
    parameters (name -> array), from which `predict` takes its intervals.
    """

    law: str
    why: str
    warnings: tuple[str, ...] = ()
    fit: FitResult | None = field(default=None, repr=False, compare=False)
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def predict(self, n_params: float, n_tokens: float, *, level: float = 0.95) -> Prediction:
        """Predicted loss at N = `n_params`, D = `n_tokens`, with a `level` interval."""
        if not 0 < level < 1:
            raise AnalysisError(f"predict: level={level} must lie strictly between 0 and 1")
        n, d = float(n_params), float(n_tokens)
        if not (math.isfinite(n) and math.isfinite(d) and n > 0 and d > 0):
            raise AnalysisError(
                f"predict: N={n_params}, D={n_tokens}: both must be finite and positive"
            )
        assert self.fit is not None
        loss = float(chinchilla_loss(self.fit.params, n, d))
        reps = chinchilla_loss(self.samples, n, d)  # type: ignore[arg-type]
        lo, hi = np.percentile(reps, [50 * (1 - level), 50 * (1 + level)])
        return Prediction(n, d, 6 * n * d, loss, (float(lo), float(hi)), level, self.law)

    def to_dict(self) -> dict[str, Any]:
        params = {} if self.fit is None else dict(self.fit.params)
        return {"law": self.law, "why": self.why, "warnings": list(self.warnings),
                "params": params}  # fmt: skip


def _columns(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise AnalysisError(
            f"recommend: the table has no column {', '.join(missing)}; "
            "map yours with --columns (e.g. --columns n_params=params)"
        )
    return tuple(table[c].to_numpy(float) for c in _REQUIRED)  # type: ignore[return-value]


def recommend(table: pd.DataFrame, *, seed: int = 0) -> Recommendation:
    """Fit the candidate laws to `table` and recommend one (see the module docstring)."""
    n, d, loss = _columns(table)
    fit = fit_chinchilla(n, d, loss)
    fit, boot = bootstrap_chinchilla(fit, n, d, loss, n_resamples=400,
                                     rng=np.random.default_rng(seed))  # fmt: skip
    samples = {k: boot.samples[k] for k in ("E", "A", "B", "alpha", "beta")}
    why = f"approach 3 fitted to all {n.size} runs (the only candidate law so far)"
    return Recommendation("chinchilla", why, fit.warnings, fit, samples)
