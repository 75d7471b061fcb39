"""Chinchilla approach 2 (IsoFLOP profiles): per compute budget, a parabola of loss in log N.

For each budget C (runs grouped by their planned `flops_budget`, else by log10 of their FLOPs
rounded to 0.1), loss is fitted as a parabola in ln N (np.polyfit). Its vertex gives N*(C) and
L*(C); D*(C) = C / (6 N*). A budget is rejected, with a warning naming it and the sizes to add,
when the curvature is <= 0 or the minimum sits at the grid's edge (vertex outside the sizes run, or
the smallest observed loss at the smallest or largest size). The accepted budgets give power laws
N* = k_N C^a, D* = k_D C^b and L* = k_L C^(-gamma) by least squares in log-log space.
C = 6 N D with N the records' n_params (matmul convention) unless told otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .bootstrap import percentile_intervals
from .errors import AnalysisError
from .results import MATMUL_CONVENTION, FitResult
from .runs import check_points

__all__ = [
    "Parabola",
    "budget_groups",
    "fit_parabolas",
    "fit_isoflop",
    "isoflop_optimum",
    "bootstrap_isoflop",
]


@dataclass(frozen=True)
class Parabola:
    """loss = c2 (ln N)^2 + c1 ln N + c0 at one budget; accepted only with an interior minimum."""

    budget: float
    coef: tuple[float, float, float]
    n_params: tuple[float, ...]
    loss: tuple[float, ...]
    n_star: float
    loss_star: float
    accepted: bool
    reason: str


def budget_groups(flops_budget, flops) -> np.ndarray:
    """The budget of each run: its planned flops_budget, else 10^(round(log10 C, 1))."""
    b = np.asarray(flops_budget, float)
    c = np.asarray(flops, float)
    fallback = 10 ** np.round(np.log10(c), 1)
    return np.where(np.isfinite(b) & (b > 0), b, fallback)


def fit_parabolas(n_params, loss, budget, *, min_points: int = 3) -> list[Parabola]:
    """One parabola per budget (ascending C); see the module docstring for when one is rejected."""
    n, loss, budget = (np.asarray(x, float) for x in (n_params, loss, budget))
    out = []
    for c in np.unique(budget):
        m = budget == c
        x, y = np.log(n[m]), loss[m]
        order = np.argsort(x)
        x, y = x[order], y[order]
        sizes = tuple(np.exp(x))
        if np.unique(x).size < min_points:
            out.append(
                Parabola(
                    c,
                    (math.nan,) * 3,
                    sizes,
                    tuple(y),
                    math.nan,
                    math.nan,
                    False,
                    f"C={c:.3g}: {np.unique(x).size} model size(s); need at least "
                    f"{min_points} to fit a parabola: add sizes",
                )
            )
            continue
        c2, c1, c0 = np.polyfit(x, y, 2)
        if c2 <= 0:
            out.append(
                Parabola(
                    c,
                    (c2, c1, c0),
                    sizes,
                    tuple(y),
                    math.nan,
                    math.nan,
                    False,
                    f"C={c:.3g}: non-positive curvature ({c2:.3g}), loss has no "
                    "minimum in N here: widen the range of sizes",
                )
            )
            continue
        x_star = -c1 / (2 * c2)
        l_star = c0 - c1 * c1 / (4 * c2)
        i_min = int(np.argmin(y))
        reason, accepted = "", True
        if x_star <= x[0] or i_min == 0:
            accepted = False
            reason = (
                f"C={c:.3g}: minimum at the smallest size N={sizes[0]:.3g}: add sizes "
                f"below it (e.g. N={sizes[0] / 3:.2g} and {sizes[0] / 10:.2g})"
            )
        elif x_star >= x[-1] or i_min == x.size - 1:
            accepted = False
            reason = (
                f"C={c:.3g}: minimum at the largest size N={sizes[-1]:.3g}: add sizes "
                f"above it (e.g. N={sizes[-1] * 3:.2g} and {sizes[-1] * 10:.2g})"
            )
        out.append(
            Parabola(c, (c2, c1, c0), sizes, tuple(y), math.exp(x_star), l_star, accepted, reason)
        )
    return out


def _power_laws(c, n_star, l_star):
    slope_n, icpt_n = np.polyfit(np.log(c), np.log(n_star), 1)
    d_star = c / (6 * n_star)
    slope_d, icpt_d = np.polyfit(np.log(c), np.log(d_star), 1)
    slope_l, icpt_l = np.polyfit(np.log(c), np.log(l_star), 1)
    return {
        "a": slope_n,
        "k_N": math.exp(icpt_n),
        "b": slope_d,
        "k_D": math.exp(icpt_d),
        "gamma": -slope_l,
        "k_L": math.exp(icpt_l),
    }


def fit_isoflop(
    n_params, n_tokens, loss, budget, *, convention: str = MATMUL_CONVENTION
) -> FitResult:
    """Approach 2. budget: the compute budget (FLOPs) of each run (see `budget_groups`).

    params: a, k_N (N* = k_N C^a), b, k_D (D* = k_D C^b), gamma, k_L (L* = k_L C^-gamma).
    details["parabolas"]: the per-budget Parabola objects. Raises AnalysisError when fewer than two
    budgets have an interior minimum (the warnings say which sizes to add).
    """
    n = np.asarray(n_params, float)
    loss = check_points(loss=loss, n_free=3, law="isoflop", sizes=(n,), names=("N",))
    budget = np.asarray(budget, float)
    if not np.all(np.isfinite(budget) & (budget > 0)):
        raise AnalysisError("isoflop: field flops_budget (or flops) has NaN or non-positive values")
    parabolas = fit_parabolas(n, loss, budget)
    warns = tuple(p.reason for p in parabolas if not p.accepted)
    good = [p for p in parabolas if p.accepted]
    if len(good) < 2:
        raise AnalysisError(
            f"isoflop: {len(good)} of {len(parabolas)} budget(s) have an interior minimum; need 2. "
            + " ".join(warns)
        )
    c = np.array([p.budget for p in good])
    n_star = np.array([p.n_star for p in good])
    l_star = np.array([p.loss_star for p in good])
    params = _power_laws(c, n_star, l_star)
    resid = np.log(n_star) - np.log(params["k_N"] * c ** params["a"])
    return FitResult(
        law="isoflop",
        params=params,
        objective=float(np.sum(resid**2)),
        converged=True,
        message=f"closed-form least squares on {len(good)} of {len(parabolas)} budgets",
        n_points=int(loss.size),
        warnings=warns,
        convention=convention,
        details={"parabolas": parabolas},
    )


def isoflop_optimum(fit: FitResult, flops) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N*, D*, L*) predicted by an approach-2 fit at compute C (FLOPs)."""
    c = np.asarray(flops, float)
    p = fit.params
    n_star = p["k_N"] * c ** p["a"]
    return n_star, c / (6 * n_star), p["k_L"] * c ** -p["gamma"]


def bootstrap_isoflop(
    fit: FitResult,
    n_params,
    loss,
    budget,
    *,
    target_flops: float | None = None,
    n_resamples: int = 1000,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> FitResult:
    """Intervals by resampling runs with replacement within each budget (so every budget keeps its
    runs' count) and refitting parabolas and power laws. Resamples that leave fewer than two usable
    budgets are dropped (counted in the warnings)."""
    n, loss, budget = (np.asarray(x, float) for x in (n_params, loss, budget))
    groups = [np.flatnonzero(budget == c) for c in np.unique(budget)]
    samples: dict[str, list[float]] = {}
    n_failed = 0
    for _ in range(n_resamples):
        idx = np.concatenate([rng.choice(g, g.size, replace=True) for g in groups])
        good = [p for p in fit_parabolas(n[idx], loss[idx], budget[idx]) if p.accepted]
        if len(good) < 2:
            n_failed += 1
            continue
        p = _power_laws(
            np.array([q.budget for q in good]),
            np.array([q.n_star for q in good]),
            np.array([q.loss_star for q in good]),
        )
        if target_flops is not None:
            n_s = p["k_N"] * target_flops ** p["a"]
            d_s = target_flops / (6 * n_s)
            p |= {
                "n_star": n_s,
                "d_star": d_s,
                "tokens_per_param": d_s / n_s,
                "loss_at_target": p["k_L"] * target_flops ** -p["gamma"],
            }
        for k, v in p.items():
            samples.setdefault(k, []).append(v)
    intervals = percentile_intervals({k: np.asarray(v) for k, v in samples.items()}, confidence)
    warns = fit.warnings
    if n_failed:
        warns += (
            f"isoflop bootstrap: {n_failed} of {n_resamples} resamples had < 2 usable "
            "budgets (dropped)",
        )
    return fit.replace(intervals=intervals, warnings=warns)
