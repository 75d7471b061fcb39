"""Frozen result objects returned by every fit: compute first, draw and report second."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FitResult", "Allocation", "Backtest", "Report"]

# The FLOP/N convention every fit states unless told otherwise (see sweeps/records.py).
MATMUL_CONVENTION = (
    "C = 6 N D with N = n_params (matmul convention: every weight in a per-token matmul, output "
    "head included; embedding lookups, norms and biases excluded); D = tokens seen; "
    "loss in nats/token"
)


@dataclass(frozen=True)
class FitResult:
    """One fitted law.

    params: fitted values (names per law, e.g. E, A, B, alpha, beta, a, b for Chinchilla);
    intervals: (low, high) percentile bootstrap intervals, empty until `bootstrap_*` fills them;
    objective: the minimised objective (sum of Huber terms, or squared error for log-linear fits);
    converged/message: the optimiser's own verdict; n_points: points used; warnings: what looked
    wrong; convention: what N, D and C mean; details: law-specific extras (per-budget parabolas...).
    """

    law: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    objective: float = math.nan
    converged: bool = False
    message: str = ""
    n_points: int = 0
    warnings: tuple[str, ...] = ()
    convention: str = MATMUL_CONVENTION
    details: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> FitResult:
        """A copy with some fields changed (results are frozen)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (details dropped where they are not plain data)."""
        d = dataclasses.asdict(self)
        d["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        d["warnings"] = list(self.warnings)
        return d


@dataclass(frozen=True)
class Allocation:
    """Compute-optimal N*, D* at a compute budget C (FLOPs, under `convention`)."""

    flops: float
    n_params: float
    n_tokens: float
    tokens_per_param: float
    loss: float
    convention: str = MATMUL_CONVENTION


@dataclass(frozen=True)
class Backtest:
    """A fit refitted without its largest scale, predicting the held-out runs.

    rel_errors: (predicted - observed) / observed loss of each held-out run; n_star_rel_error:
    relative error of the predicted compute-optimal N at the held-out budget; loss_star_rel_error:
    of the predicted optimal loss there (against the held-out budget's own parabola). The last
    two exist only when the runs have compute budgets; they compare approaches 2 and 3 fairly.
    coverage_80, coverage_95: the share of held-out runs inside the law's calibrated 80% and 95%
    intervals (the recommended law's back-test on a user's split only); width_80, width_95:
    their median (hi - lo) / prediction; score_80, score_95: their mean interval score
    (Gneiting & Raftery 2007, relative to the prediction: the width plus 2 / (1 - level) times
    how far a run falls outside; lower is better, and coverage bought by width scores badly).
    """

    law: str
    held_out: str
    n_train: int
    n_test: int
    rel_errors: tuple[float, ...]
    mean_abs_rel_error: float
    max_abs_rel_error: float
    n_star_rel_error: float = math.nan
    loss_star_rel_error: float = math.nan
    coverage_80: float = math.nan
    coverage_95: float = math.nan
    width_80: float = math.nan
    width_95: float = math.nan
    score_80: float = math.nan
    score_95: float = math.nan
    message: str = ""


@dataclass
class Report:
    """What `build_report` computed and wrote."""

    out_dir: Path
    target_flops: float
    fits: dict[str, FitResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    backtests: dict[str, Any] = field(default_factory=dict)
    allocation: dict[str, dict[str, float]] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    excluded_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    n_runs: int = 0
    n_fitted: int = 0
    name: str = ""
    arch: str = ""
    convention: str = ""
    n_convention: str = ""
    sensitivity: Any = None
    figures: list[str] = field(default_factory=list)
    seed_noise: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    prediction: dict[str, Any] | None = None
    verify: dict[str, Any] | None = None
    diagnostics: list[str] = field(default_factory=list)  # model-free checks on the runs
    # a large table's sample (analysis/inputs/row_sample.py): {"n_rows", "n_used", "why"}, or None
    subsample: dict[str, Any] | None = None
