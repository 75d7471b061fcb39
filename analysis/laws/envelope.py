"""Chinchilla approach 1: the lower envelope of loss against compute over every training curve.

Each evaluation of each included run is a point (C = 6 N t, loss) with t the tokens seen so far and
N the run's n_params (matmul convention). Compute is cut into log-spaced bins; the lowest loss in a
bin gives (N, D) on the envelope. Bins whose best N is the smallest or largest size in the sweep
are edge bins (the true optimum may lie outside the grid) and are kept out of the power laws
N* = k_N C^a, D* = k_D C^b. Caveat: an intermediate evaluation of a long cosine run is not a
cooled-down loss, so envelopes from such curves favour small, long-trained models.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..result_types import MATMUL_CONVENTION, FitResult
from .bootstrap import percentile_intervals

__all__ = ["lower_envelope", "fit_envelope", "bootstrap_envelope"]


def lower_envelope(curves: pd.DataFrame, *, n_bins: int = 30) -> pd.DataFrame:
    """Per log-compute bin, the evaluation with the lowest loss: columns C, L, N, D, run_id, edge.

    curves: rows with n_params, n_tokens (tokens seen so far) and loss (NaN rows are dropped).
    """
    need = {"n_params", "n_tokens", "loss", "run_id"}
    if not need <= set(curves.columns):
        raise AnalysisError(f"envelope: curves lack column(s) {sorted(need - set(curves.columns))}")
    df = curves[list(need)].dropna()
    df = df[(df["loss"] > 0) & (df["n_tokens"] > 0) & (df["n_params"] > 0)]
    if len(df) < 3 or df["n_params"].nunique() < 2:
        raise AnalysisError(
            "envelope: need curve.jsonl evaluations of runs at two or more sizes; "
            "the runs have no usable curves"
        )
    c = 6.0 * df["n_params"].to_numpy() * df["n_tokens"].to_numpy()
    edges = np.geomspace(c.min(), c.max() * (1 + 1e-12), n_bins + 1)
    df = df.assign(C=c, bin=np.clip(np.searchsorted(edges, c, side="right") - 1, 0, n_bins - 1))
    best = df.loc[df.groupby("bin")["loss"].idxmin()].sort_values("C")
    sizes = np.sort(df["n_params"].unique())
    out = pd.DataFrame(
        {
            "C": best["C"].to_numpy(),
            "L": best["loss"].to_numpy(),
            "N": best["n_params"].to_numpy(),
            "D": best["n_tokens"].to_numpy(),
            "run_id": best["run_id"].to_numpy(),
        }
    )
    out["edge"] = out["N"].isin([sizes[0], sizes[-1]])
    return out


def fit_envelope(
    curves: pd.DataFrame, *, n_bins: int = 30, convention: str = MATMUL_CONVENTION
) -> FitResult:
    """Approach 1: power laws N* = k_N C^a and D* = k_D C^b through the envelope's interior bins.

    details["envelope"]: the envelope table. Raises AnalysisError with fewer than 3 interior bins.
    """
    env = lower_envelope(curves, n_bins=n_bins)
    inner = env[~env["edge"]]
    if len(inner) < 3 or inner["N"].nunique() < 2:
        raise AnalysisError(
            f"envelope: {len(inner)} compute bin(s) have their best model strictly inside the size "
            "grid; need 3 with two sizes: add sizes above and below the current ones"
        )
    lc = np.log(inner["C"].to_numpy())
    slope_n, icpt_n = np.polyfit(lc, np.log(inner["N"].to_numpy()), 1)
    slope_d, icpt_d = np.polyfit(lc, np.log(inner["D"].to_numpy()), 1)
    warns: tuple[str, ...] = ()
    if env["edge"].any():
        warns = (
            f"envelope: {int(env['edge'].sum())} of {len(env)} bins have the smallest or "
            "largest size as best model and are left out of the power laws",
        )
    return FitResult(
        law="envelope",
        params={"a": slope_n, "k_N": math.exp(icpt_n), "b": slope_d, "k_D": math.exp(icpt_d)},
        converged=True,
        message=f"least squares on {len(inner)} interior bins",
        n_points=len(inner),
        warnings=warns,
        convention=convention,
        details={"envelope": env},
    )


def bootstrap_envelope(
    fit: FitResult,
    curves: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    rng: np.random.Generator,
    confidence: float = 0.95,
    n_bins: int = 30,
) -> FitResult:
    """Percentile intervals of approach 1's exponents and constants by resampling runs with
    replacement and refitting the envelope on their curves (a run drawn twice is one curve: the
    envelope is a minimum). Resamples with too few interior bins are dropped and counted."""
    run_ids = curves["run_id"].unique()
    samples: dict[str, list[float]] = {}
    n_failed = 0
    for _ in range(n_resamples):
        drawn = np.unique(rng.choice(run_ids, run_ids.size, replace=True))
        try:
            refit = fit_envelope(curves[curves["run_id"].isin(drawn)], n_bins=n_bins)
        except AnalysisError:
            n_failed += 1
            continue
        for k, v in refit.params.items():
            samples.setdefault(k, []).append(v)
    intervals = percentile_intervals({k: np.asarray(v) for k, v in samples.items()}, confidence)
    warns = fit.warnings
    if n_failed > n_resamples // 2:  # the survivors are no longer a sample of the same design
        intervals = {}
        warns += (
            f"envelope bootstrap: no intervals: {n_failed} of {n_resamples} resamples had too "
            "few interior bins to refit; add sizes",
        )
    elif n_failed:
        warns += (
            f"envelope bootstrap: {n_failed} of {n_resamples} resamples had too few interior bins "
            "(dropped)",
        )
    return fit.replace(intervals=intervals, warnings=warns)
