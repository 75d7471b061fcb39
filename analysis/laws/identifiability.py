"""Flags for a fit whose digits should not be trusted: an irreducible loss whose bootstrap interval
reaches 0, refits piling at a bound, a huge condition number of the fit's Jacobian. Used for the
recommended law (analysis/prediction/recommend.py) and for approach 3's bootstrap
(analysis/laws/bootstrap.py), so a
report never prints tight-looking digits of a law its runs do not determine.
"""

from __future__ import annotations

import math

import numpy as np

from ..result_types import FitResult
from .varpro import reduced_design

__all__ = ["fit_warnings", "outside_intervals"]


def fit_warnings(fit: FitResult, thetas: np.ndarray, n: np.ndarray, d: np.ndarray) -> list[str]:
    """Flags for a fit whose digits should not be trusted: an E interval reaching 0, refits
    piling at a bound, a huge condition number of the fit's Jacobian."""
    warns = []
    e = np.exp(thetas[:, 2])
    e_lo = float(np.percentile(e, 2.5)) if e.size else math.nan
    if e.size and e_lo < 0.05 * fit.params["E"]:
        warns.append(
            f"{fit.law}: the irreducible loss E is not determined (95% bootstrap interval "
            f"{e_lo:.2g} to {np.percentile(e, 97.5):.3g}): predictions far out lean on it"
        )
    at_bound = (e < 1e-4) | (thetas[:, 3] < 0.02) | (thetas[:, 4] < 0.02) | (thetas[:, 3] > 2.9)
    if e.size and at_bound.mean() > 0.05:
        warns.append(
            f"{fit.law}: {100 * at_bound.mean():.0f}% of bootstrap refits pile at a bound "
            "(E ~ 0 or an exponent ~ 0): the runs do not pin the law down"
        )
    cond = _condition(fit, n, d)
    if cond > 1e8:
        warns.append(
            f"{fit.law}: condition number {cond:.1e} of the fit's Jacobian: parameters trade off "
            "against each other; trust predictions near the runs, not the digits of E, A, B"
        )
    return warns


MIN_REFITS_OUTSIDE = 50  # fewer: the 2.5/97.5 percentiles sit near the extremes, and a clean
# fit's estimate falls outside them by chance (8 of 20 synthetic fits at 5 refits, 0 at 20+)


def outside_intervals(
    law: str,
    estimates: dict[str, float],
    intervals: dict[str, tuple[float, float]],
    n_refits: int,
) -> list[str]:
    """One flag naming the quantities whose estimate lies outside its own bootstrap interval (or
    is NaN where the refits give an interval): the refits land elsewhere than the fit, so the fit
    sits at an edge of its objective and neither its digits nor the interval describe the law."""
    if n_refits < MIN_REFITS_OUTSIDE:
        return []
    odd = []
    for k, (lo, hi) in intervals.items():
        v = estimates.get(k)
        if v is None or k.startswith("log_") or not (math.isfinite(lo) and math.isfinite(hi)):
            continue  # (log_A etc. repeat A's verdict)
        if not math.isfinite(v) or not lo <= v <= hi:
            odd.append(k)
    if not odd:
        return []
    return [
        f"{law}: the estimate of {', '.join(odd)} lies outside its own bootstrap interval: the "
        "refits find another law than the fit (which sits at an edge of its objective); trust "
        "neither the digits nor the interval; add runs beyond the sizes and token counts tried "
        "(for IsoFLOP budgets, on both sides of each budget's best size)"
    ]


def _condition(fit: FitResult, n: np.ndarray, d: np.ndarray) -> float:
    """Condition number of d log L_hat / d theta (columns scaled to unit norm)."""
    equal = bool(fit.details.get("equal_exponents"))
    p = fit.params
    theta = np.array(
        [p["log_A"], p["log_B"], p["log_E"], p["alpha"]] + ([] if equal else [p["beta"]])
    )
    design = reduced_design(n, d, equal)
    z = design @ theta
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    jac = np.einsum("nk,nkp->np", soft, design)
    jac = jac / np.maximum(np.linalg.norm(jac, axis=0), 1e-300)
    s = np.linalg.svd(jac, compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else math.inf
