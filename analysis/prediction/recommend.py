"""Predictions at points the user names, under the law this table's own back-test recommends.

`recommend(table)` takes a canonical results table (columns n_params, n_tokens, loss; see
analysis/inputs/canonical_table.py) and:
1. back-tests every candidate law (`ladder.CANDIDATES`: approach 3's form and Gadre et al.'s
   over-training form, each on all runs or on runs chosen by a documented rule) on the table's
   own scale ladder: hold out the largest rung of N (or of C for IsoFLOP grids), fit on the
   smaller rungs, score the held-out runs' mean |log error|, repeat one rung lower
   (`ladder.ladder_folds`). Nothing outside the table is looked at;
2. recommends the candidate with the lowest mean score over the folds, refits it on the whole
   table, bootstraps it, and calibrates its interval from its own back-test errors
   (analysis/prediction/calibration.py), growing with the square of the distance where the table's
   IsoFLOP
   frontier accelerates (a curvature no candidate law can follow);
3. flags what is ill-determined (E interval reaching 0, refits at a bound, huge condition number,
   no back-test possible).
`Recommendation.predict(N, D)` gives the predicted loss with that calibrated interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..inputs.row_sample import sample_note, sample_rows
from ..laws.identifiability import fit_warnings
from ..laws.isoflop import accelerating_frontier
from ..laws.joint_isoflop import joint_warnings
from ..laws.objective import LOG_FLOAT_MAX
from ..result_types import FitResult
from .calibration import (
    Calibration,
    bootstrap_thetas,
    calibrate,
    fold_sd,
    interval_problem,
    log_prediction_sd,
    log_sigma,
    robust_scale,
)
from .forms import is_joint, law_loss
from .ladder import (
    CANDIDATES,
    Candidate,
    distance,
    ladder_axis,
    ladder_folds,
    log_errors,
    n_rungs,
    reach,
)

__all__ = [
    "N_BOOTSTRAP",
    "Prediction",
    "Recommendation",
    "accelerates",
    "backtest_candidates",
    "canonical",
    "folds_sd",
    "planned_flops",
    "recommend",
]

_REQUIRED = ("n_params", "n_tokens", "loss")
N_BOOTSTRAP = 200
# The relative noise below which an accelerating frontier is not believed, where the table's
# seed noise was not measured (no configuration repeated with another seed): the report's too.
FRONTIER_NOISE = 0.01


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

    @property
    def problem(self) -> str | None:
        """Why the interval must not be printed as bare digits (unbounded, zero width, or wider
        than the prediction), or None (`calibration.interval_problem`)."""
        return interval_problem(self.loss, self.interval)

    @property
    def width(self) -> float:
        """(hi - lo) / loss: the interval's relative width."""
        return (self.interval[1] - self.interval[0]) / self.loss

    def to_dict(self) -> dict[str, Any]:
        problem = self.problem
        bounded = problem is None or "wider than" in problem
        return {
            "n_params": self.n_params,
            "n_tokens": self.n_tokens,
            "flops": self.flops,
            "loss": self.loss,
            "interval": [self.interval[0], self.interval[1]] if bounded else None,
            "relative_width": self.width if bounded else None,
            "interval_warning": problem,
            "level": self.level,
            "law": self.law,
        }


@dataclass(frozen=True)
class Recommendation:
    """The law a table's own back-test chose, why, and what looked ill-determined.

    fit: the chosen law refitted on the whole table (its rule's runs); thetas: bootstrap refits
    (rows of log A, log B, log E, alpha, beta; approach 2 made joint: `forms`); calibration:
    its extrapolation-error model; reach: the largest N, D and N x D it was fitted on; scores:
    back-test mean |log error| of every candidate (NaN where its rule left too few runs).
    """

    law: str
    why: str
    warnings: tuple[str, ...] = ()
    fit: FitResult | None = field(default=None, repr=False, compare=False)
    thetas: np.ndarray | None = field(default=None, repr=False, compare=False)
    calibration: Calibration | None = field(default=None, repr=False, compare=False)
    reach: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    scores: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    def predict(self, n_params: float, n_tokens: float, *, level: float = 0.95) -> Prediction:
        """Predicted loss at N = `n_params`, D = `n_tokens`, with a calibrated `level` interval."""
        if not 0 < level < 1:
            raise AnalysisError(f"predict: level={level} must lie strictly between 0 and 1")
        n, d = float(n_params), float(n_tokens)
        if not (math.isfinite(n) and math.isfinite(d) and n > 0 and d > 0):
            raise AnalysisError(
                f"predict: N={n_params}, D={n_tokens}: both must be finite and positive numbers"
            )
        assert self.fit is not None and self.thetas is not None and self.calibration is not None
        loss = float(law_loss(self.fit, n, d))
        sd = float(log_prediction_sd(self.thetas, n, d, fit=self.fit)[0])
        x = float(distance(self.reach, n, d))
        half = self.calibration.quantile(level) * float(log_sigma(self.calibration, x, sd))
        wide = math.exp(half) if half < LOG_FLOAT_MAX else math.inf  # inf: no bound this far
        interval = (loss / wide, loss * wide)
        return Prediction(n, d, 6 * n * d, loss, interval, level, self.law)

    def to_dict(self) -> dict[str, Any]:
        c = self.calibration
        out: dict[str, Any] = {"law": self.law, "why": self.why, "warnings": list(self.warnings)}
        if self.fit is not None:
            keys = ("E", "A", "gamma", "k", "G", "a") if is_joint(self.fit) else (
                "E", "A", "B", "alpha", "beta")  # fmt: skip
            out["params"] = {k: self.fit.params[k] for k in keys}
        if c is not None:
            out["calibration"] = {"s0": c.s0, "k": c.k, "n_folds": c.n_folds,
                                  "n_points": c.n_points, "growth": c.growth}  # fmt: skip
        out["backtest"] = dict(self.scores)
        return out


def canonical(table: pd.DataFrame) -> pd.DataFrame:
    """`table`'s n_params, n_tokens, loss and flops (6 N D where absent) as floats, checked;
    beyond `row_sample.MAX_FIT_ROWS` rows, the stratified sample of them that is fitted (its
    `attrs["n_rows"]` says how many the table had)."""
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise AnalysisError(
            f"recommend: the table has no column {', '.join(missing)}; "
            "map yours with --columns (e.g. --columns n_params=params)"
        )
    out = table[list(_REQUIRED)].astype(float).reset_index(drop=True)
    out["flops"] = (table["flops"].to_numpy(float) if "flops" in table.columns
                    else 6 * out["n_params"] * out["n_tokens"])  # fmt: skip
    if not np.isfinite(out.to_numpy()).all() or (out.to_numpy() <= 0).any():
        raise AnalysisError(
            "recommend: n_params, n_tokens and loss must be finite and positive in every row; "
            "drop diverged or incomplete runs first"
        )
    out, n_rows = sample_rows(out)
    out = out.reset_index(drop=True)
    out.attrs = {**out.attrs, "n_rows": n_rows}
    if n_rungs(out["n_params"]) < 3:
        raise AnalysisError(
            f"recommend: {n_rungs(out['n_params'])} distinct model size(s) (column n_params, "
            "sizes within 1% counted as one); "
            "a law that extrapolates in N needs at least 3, better 5 or more"
        )
    return out


def planned_flops(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with each run's planned IsoFLOP budget (`flops_budget`, where finite and positive)
    as its `flops`: the budgets are then the back-test's ladder and the frontier's rungs, as the
    report's calibrated prediction, `--predict` and the planner all fit them. A run's own FLOPs
    (2.98e10, 2.99e10, ... around a budget of 3e10) would make each run its own budget, and an
    accelerating frontier would go unseen. A table without budgets is returned as it is."""
    if "flops_budget" not in table.columns:
        return table
    budget = pd.to_numeric(table["flops_budget"], errors="coerce").to_numpy(float)
    planned = np.isfinite(budget) & (budget > 0)
    if not planned.any():
        return table
    if "flops" in table.columns:
        own = pd.to_numeric(table["flops"], errors="coerce").to_numpy(float)
    else:
        own = 6 * table["n_params"].to_numpy(float) * table["n_tokens"].to_numpy(float)
    out = table.copy()
    out["flops"] = np.where(planned, budget, own)
    return out


def backtest_candidates(
    table: pd.DataFrame, candidates: tuple[Candidate, ...] = CANDIDATES
) -> tuple[dict[str, float], dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Back-test each candidate down `table`'s ladder: (score per candidate name: mean over folds
    of the held-out runs' mean |log error|, NaN if any fold left it too few runs; per candidate
    the held-out log errors and distances; the number of folds)."""
    folds = ladder_folds(table)
    scores: dict[str, float] = {}
    errors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for cand in candidates:
        per_fold, es, xs = [], [], []
        for fold in folds:
            fit = cand.fit(fold.train)
            if fit is None:
                break
            e = log_errors(fit, fold.test)
            per_fold.append(float(np.mean(np.abs(e))))
            es.append(e)
            xs.append(distance(reach(fold.train), fold.test["n_params"], fold.test["n_tokens"]))
        complete = folds and len(per_fold) == len(folds)
        scores[cand.name] = float(np.mean(per_fold)) if complete else math.nan
        if complete:
            errors[cand.name] = (np.concatenate(es), np.concatenate(xs))
    return scores, errors, len(folds)


# The CLI asks twice for the same table (the report's calibrated prediction and --predict's
# points): a Recommendation is immutable, so the second answer is the first (a few seconds saved).
_MEMO: dict[tuple[bytes, int, int, float | None], Recommendation] = {}


def recommend(table: pd.DataFrame, *, seed: int = 0, noise: float | None = None) -> Recommendation:
    """Choose, fit and calibrate the law `table`'s own back-test recommends (module docstring).

    noise: the table's measured relative seed noise (`seed_noise.pooled_rel_sd`), which a bend of
    the
    IsoFLOP frontier must clear to count; None (or NaN) where not measured: 1% is assumed."""
    data = canonical(table)
    n_groups = int(table["group"].nunique()) if "group" in table.columns else 0
    noise = noise if noise is not None and math.isfinite(noise) and noise > 0 else None
    key = (np.ascontiguousarray(data.to_numpy(float)).tobytes(), n_groups, seed, noise)
    if key not in _MEMO:
        if len(_MEMO) >= 8:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = _recommend(table, data, seed, noise)
    return _MEMO[key]


def _recommend(
    table: pd.DataFrame, data: pd.DataFrame, seed: int, noise: float | None
) -> Recommendation:
    scores, errors, n_folds = backtest_candidates(data)
    ranked = sorted((s, i) for i, s in enumerate(scores.values()) if math.isfinite(s))
    warns: list[str] = []
    if ranked:
        cand = CANDIDATES[ranked[0][1]]
        e, x = errors[cand.name]
        axis = ladder_folds(data)[0].axis
        why = (
            f"{cand.name} had the lowest back-test error on this table: mean |log error| "
            f"{ranked[0][0]:.2%} over {n_folds} fold(s) that hold out the largest "
            f"{'N' if axis == 'n_params' else 'C'} rung(s) and fit the smaller ones"
        )
        if len(ranked) > 1:
            why += f" (next: {CANDIDATES[ranked[1][1]].name}, {ranked[1][0]:.2%})"
    else:  # the first candidate the table has enough runs for (6 runs fit the 4-parameter form)
        cand = next((c for c in CANDIDATES if c.select(data) is not None), CANDIDATES[0])
        e, x = np.zeros(0), np.zeros(0)
        why = f"{cand.name} by default: the table has too few rungs for a back-test"
        warns.append(
            "no back-test was possible (fewer than 4 model sizes or budgets): the interval covers "
            "noise and estimation only, not the law's extrapolation error; add a larger rung"
        )
    sub = cand.select(data)
    fit = cand.fit(data)
    if sub is None or fit is None:  # the default candidate keeps every run
        raise AnalysisError(
            f"recommend: too few runs to fit a law ({len(data)}; the smallest form needs 6, "
            "at 3 or more model sizes and 2 or more token counts); add runs"
        )
    n, d, loss = (sub[c].to_numpy(float) for c in _REQUIRED)
    thetas = bootstrap_thetas(fit, n, d, loss, n_resamples=N_BOOTSTRAP,
                              rng=np.random.default_rng(seed))  # fmt: skip
    resid = np.log(law_loss(fit, n, d) / loss)
    bends = accelerates(data, noise)
    folds = ladder_folds(data)
    sd_f = folds_sd(cand, folds, seed) if e.size else None
    fold_of = np.repeat(np.arange(len(folds)), [len(f.test) for f in folds]) if e.size else None
    calib = calibrate(robust_scale(resid), e, x, n_folds, growth=2.0 if bends else 1.0,
                      fold_sd=sd_f, fold=fold_of)  # fmt: skip
    if bends:
        warns.append(
            f"{bends}; so the calibrated interval's extrapolation error grows with the square "
            "of the distance beyond the runs, not linearly (analysis/prediction/calibration.py)"
        )
    warns += list(fit.warnings) + (joint_warnings(fit, thetas, n, d) if is_joint(fit)
                                   else fit_warnings(fit, thetas, n, d))  # fmt: skip
    if data.attrs.get("n_rows", len(data)) > len(data):
        warns.append(sample_note(len(data), data.attrs["n_rows"]))
    if "group" in table.columns and table["group"].nunique() > 1:
        warns.append(
            f"the table mixes {table['group'].nunique()} groups (column group) in one law; laws "
            "differ by corpus and architecture: fit each group apart (--group group)"
        )
    return Recommendation(cand.name, why, tuple(warns), fit, thetas, calib, reach(data), scores)


FOLD_BOOTSTRAP = 100  # refits per fold behind `fold_sd` (a spread, not a percentile: 100 do)


def folds_sd(cand: Candidate, folds: list, seed: int) -> np.ndarray:
    """The bootstrap sd of each fold fit's log prediction at its held-out runs, in the order of
    `backtest_candidates`' errors (`calibration.fold_sd`)."""
    out = []
    rng = np.random.default_rng([seed, 1])
    for fold in folds:
        fit, sub = cand.fit(fold.train), cand.select(fold.train)
        assert fit is not None and sub is not None  # it was back-tested on this fold
        out.append(fold_sd(fit, sub, fold.test, n_resamples=FOLD_BOOTSTRAP, rng=rng))
    return np.concatenate(out)


def accelerates(data: pd.DataFrame, noise: float | None) -> str | None:
    """The frontier warning of an IsoFLOP ladder (budgets as its rungs) whose best loss per budget
    falls faster at every larger budget, or None (other ladders, or a frontier that slows)."""
    if ladder_axis(data) != "flops":
        return None
    if noise is None:
        return accelerating_frontier(data["loss"], data["flops"], rel_noise=FRONTIER_NOISE,
                                     noise=f"an assumed {FRONTIER_NOISE:.0%} noise",
                                     n_params=data["n_params"])  # fmt: skip
    return accelerating_frontier(data["loss"], data["flops"], rel_noise=noise,
                                 noise=f"the measured seed noise, {noise:.2%}",
                                 n_params=data["n_params"])  # fmt: skip
