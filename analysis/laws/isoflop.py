"""Chinchilla approach 2 (IsoFLOP profiles): per compute budget, a parabola of loss in log N.

For each budget C (runs grouped by their planned `flops_budget`, else by log10 of their FLOPs
rounded to 0.1), loss is fitted as a parabola in ln N (np.polyfit). Its vertex gives N*(C) and
L*(C); D*(C) = C / (6 N*). A budget is rejected, with a warning naming it and the sizes to add,
when the curvature is <= 0 or the minimum sits at the grid's edge (vertex outside the sizes run, or
the smallest observed loss at the smallest or largest size). The accepted budgets give power laws
N* = k_N C^a and D* = k_D C^b by least squares in log-log space, and the optimal loss as
L*(C) = E + k_L C^(-gamma) with an irreducible term (least squares in log L*): a plain power law in
C cannot flatten and extrapolates too low. E is fitted when at least 4 budgets are usable;
with fewer it is taken from `irreducible` (the report passes approach 3's E), else 0 (a plain power
law, with a warning); `details["loss_law"]` says which.
C = 6 N D with N the records' n_params (matmul convention) unless told otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError, check_points
from ..result_types import MATMUL_CONVENTION, FitResult
from .batched_isoflop import E_GRID, line_batch, loss_law_batch, parabolas_batch, polish_loss_law
from .bootstrap import percentile_intervals
from .identifiability import outside_intervals
from .objective import LOG_FLOAT_MAX

__all__ = [
    "Parabola",
    "budget_groups",
    "fit_parabolas",
    "fit_isoflop",
    "isoflop_optimum",
    "fit_loss_law",
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
        # a near-flat slice (c2 ~ 1e-17 from rounding) puts its vertex past float range
        n_star = math.exp(x_star) if x_star < LOG_FLOAT_MAX else math.inf
        out.append(Parabola(c, (c2, c1, c0), sizes, tuple(y), n_star, l_star, accepted, reason))
    return out


MIN_BUDGETS_FREE_E = 4  # E, k_L, gamma from fewer points would interpolate, not fit


def _loglinear(log_c, y):
    """Least-squares line y = icpt + slope log C -> (slope, icpt, sse); y may be (k, n): one line
    per row (closed form: np.polyfit per row cost most of the IsoFLOP bootstrap's time)."""
    y = np.asarray(y, float)
    xc = log_c - log_c.mean()
    slope = (y - y.mean(axis=-1, keepdims=True)) @ xc / (xc @ xc)
    icpt = y.mean(axis=-1) - slope * log_c.mean()
    sse = np.sum((np.expand_dims(icpt, -1) + np.expand_dims(slope, -1) * log_c - y) ** 2, axis=-1)
    return slope, icpt, sse


def fit_loss_law(c, l_star, *, irreducible: float | None = None) -> tuple[dict[str, float], str]:
    """L*(C) = E + k_L C^-gamma through the per-budget optimal losses -> (params, how E was set).

    Least squares in log L*. With >= MIN_BUDGETS_FREE_E budgets E is free in [0, min L*):
    profiled on a grid (for a given E the law is a line in log(L* - E)), then polished by
    scipy least_squares. With fewer, E = `irreducible` if given (and below min L*), else 0.
    """
    c, l_star = np.asarray(c, float), np.asarray(l_star, float)
    log_c, log_l, l_min = np.log(c), np.log(l_star), float(l_star.min())
    if c.size >= MIN_BUDGETS_FREE_E:
        grid = l_min * E_GRID  # (k,)
        slopes, icpts, _ = _loglinear(log_c, np.log(l_star[None] - grid[:, None]))
        fitted = np.log(grid[:, None] + np.exp(icpts[:, None] + slopes[:, None] * log_c))
        sse = np.sum((fitted - log_l) ** 2, axis=1)
        i = int(np.argmin(sse))  # the first of equal ones, as the loop that this replaces
        x0 = (float(grid[i]), float(icpts[i]), -float(slopes[i]))
        e, icpt, gamma = polish_loss_law(log_c, log_l, l_min * (1 - 1e-9), x0)
        how = f"E fitted on {c.size} budgets"
    else:
        e = float(irreducible) if irreducible is not None and irreducible < l_min else 0.0
        slope, icpt, _ = _loglinear(log_c, np.log(l_star - e))
        gamma = -slope
        how = (
            f"E = {e:.4g} from approach 3 (only {c.size} budgets: too few to fit E)"
            if e > 0
            else f"E = 0: plain power law (only {c.size} budgets and no approach-3 E)"
        )
    return {"gamma": gamma, "k_L": math.exp(icpt), "E": e}, how


def _power_laws(c, n_star, l_star, irreducible=None):
    slope_n, icpt_n = np.polyfit(np.log(c), np.log(n_star), 1)
    d_star = c / (6 * n_star)
    slope_d, icpt_d = np.polyfit(np.log(c), np.log(d_star), 1)
    loss_law, how = fit_loss_law(c, l_star, irreducible=irreducible)
    return {
        "a": slope_n,
        "k_N": math.exp(icpt_n),
        "b": slope_d,
        "k_D": math.exp(icpt_d),
    } | loss_law, how


def fit_isoflop(
    n_params,
    n_tokens,
    loss,
    budget,
    *,
    irreducible: float | None = None,
    convention: str = MATMUL_CONVENTION,
) -> FitResult:
    """Approach 2. budget: the compute budget (FLOPs) of each run (see `budget_groups`).

    params: a, k_N (N* = k_N C^a), b, k_D (D* = k_D C^b), E, gamma, k_L
    (L* = E + k_L C^-gamma; `irreducible`: E to use when too few budgets to fit it).
    details["parabolas"]: the per-budget Parabola objects; details["loss_law"]: how E was set.
    Raises AnalysisError when fewer than two
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
    params, how = _power_laws(c, n_star, l_star, irreducible)
    if params["E"] == 0.0 and len(good) < MIN_BUDGETS_FREE_E:
        warns += (f"isoflop: L*(C) is a plain power law ({how}); it cannot flatten",)
    elif len(good) >= MIN_BUDGETS_FREE_E:
        e, l_min = params["E"], float(l_star.min())
        if e <= 1e-6 * l_min or e >= (1 - 1e-6) * l_min:  # E free, but it ran to its bound
            where = "0" if e <= 1e-6 * l_min else f"the best loss, {l_min:.4g}"
            warns += (
                f"isoflop: the irreducible loss E of L*(C) sits at its bound ({e:.3g}, at "
                f"{where}): the per-budget optima do not determine it, and L*(C) far out leans "
                "on that bound (curves of a decaying schedule, read mid-run, do this)",
            )
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
        details={"parabolas": parabolas, "loss_law": how, "irreducible": irreducible},
    )


def isoflop_optimum(fit: FitResult, flops) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N*, D*, L*) predicted by an approach-2 fit at compute C (FLOPs)."""
    c = np.asarray(flops, float)
    p = fit.params
    n_star = p["k_N"] * c ** p["a"]
    return n_star, c / (6 * n_star), p.get("E", 0.0) + p["k_L"] * c ** -p["gamma"]


def _resample_indices(groups, n_resamples, rng) -> list[np.ndarray]:
    """Each budget's runs drawn with replacement, per resample -> one (n_resamples, size) array of
    run indices per budget: the draws of `rng.choice(g, g.size)` per resample and budget in turn,
    made in one call (integers with one bound per draw give the same stream)."""
    sizes = np.array([g.size for g in groups])
    draws = rng.integers(0, np.tile(np.repeat(sizes, sizes), (n_resamples, 1)))
    cuts = np.cumsum(sizes)[:-1]
    return [g[d] for g, d in zip(groups, np.split(draws, cuts, axis=1), strict=True)]


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
    idx = _resample_indices(groups, n_resamples, rng)
    # every budget's parabolas for all resamples at once, then the power laws through each
    # resample's usable budgets (a mask): batched_isoflop, pinned to the loop it replaces
    x_star, l_star, ok = (np.stack(v, axis=1) for v in zip(*(
        parabolas_batch(np.log(n[i]), loss[i]) for i in idx), strict=True))  # fmt: skip
    usable = ok.sum(axis=1) >= 2
    n_failed = int((~usable).sum())
    x_star, l_star, ok = x_star[usable], l_star[usable], ok[usable]
    log_c = np.log(np.unique(budget))
    slope_n, icpt_n = line_batch(log_c, x_star, ok)
    # ln D* = ln C - ln 6 - ln N*
    slope_d, icpt_d = line_batch(log_c, log_c - math.log(6) - np.where(ok, x_star, 0.0), ok)
    e, icpt_l, gamma = loss_law_batch(log_c, l_star, ok, irreducible=fit.details.get("irreducible"))
    samples = {
        "a": slope_n,
        "k_N": np.exp(icpt_n),
        "b": slope_d,
        "k_D": np.exp(icpt_d),
        "gamma": gamma,
        "k_L": np.exp(icpt_l),
        "E": e,
    }
    if target_flops is not None:
        n_s = samples["k_N"] * target_flops ** samples["a"]
        d_s = target_flops / (6 * n_s)
        samples |= {
            "n_star": n_s,
            "d_star": d_s,
            "tokens_per_param": d_s / n_s,
            "loss_at_target": e + samples["k_L"] * target_flops**-gamma,
        }
    samples = samples if usable.any() else {}
    intervals = percentile_intervals(samples, confidence)
    # E borrowed from approach 3 (too few budgets to fit it) is held fixed: no interval, not [E, E]
    intervals = {k: v for k, v in intervals.items() if np.ptp(samples[k]) > 0}
    warns = fit.warnings
    if samples and np.ptp(samples["a"]) <= 1e-12 * abs(fit.params["a"]):
        # Every budget has as many runs as its parabola has points to pin (3 sizes): a resample
        # either repeats them all, giving the same fit, or cannot be fitted. Zero-width
        # intervals would claim a certainty the data do not have.
        intervals = {}
        warns += (
            "isoflop bootstrap: no intervals: every resample that could be fitted repeats the "
            "original fit (a budget with only 3 sizes fits its parabola exactly); add sizes per "
            "budget",
        )
    n_refits = n_resamples - n_failed
    warns += tuple(outside_intervals("isoflop", fit.params, intervals, n_refits))
    if n_failed:
        warns += (
            f"isoflop bootstrap: {n_failed} of {n_resamples} resamples had < 2 usable "
            "budgets (dropped)",
        )
    return fit.replace(intervals=intervals, warnings=warns)


def accelerating_frontier(
    loss, budget, *, rel_noise: float, noise: str = "the seed noise", n_params=None
) -> str | None:
    """A warning when the best loss per budget falls faster at every larger budget.

    E + k C^-gamma, and approach 3 along its optimum, can only fall more slowly as C grows; a
    frontier that accelerates (beyond 2 x the seed noise on each decrement) is pre-asymptotic,
    and laws fitted to it over-predict the loss of larger budgets. Needs >= 3 budgets; None when
    the frontier slows down as it should (or the data cannot tell). `noise` names `rel_noise` in
    the message. With `n_params` (each run's N), a budget of fewer than 3 sizes (sizes within 1%
    are one, as ladder.rungs counts them) is left out: a minimum takes 3 (a parabola in log N),
    and the best of one or two runs says little about the frontier there (a wave that bought two
    sizes of a slice hid the demo's bend: the drop into their better run refuted the
    acceleration below it). It is a count: a budget of 3 sizes or more whose best run sits at an
    edge of them stays, as before.
    """
    loss, budget = np.asarray(loss, float), np.asarray(budget, float)
    ok = np.isfinite(loss) & np.isfinite(budget) & (budget > 0)
    # one budget per value up to float noise (a table's C computed as 6 N D per row)
    key = np.round(np.log10(np.where(ok, budget, 1.0)), 6)
    keys = np.unique(key[ok])
    left_out = []
    if n_params is not None:
        size = np.log(np.asarray(n_params, float))
        few = [k for k in keys if _n_sizes(size[ok & (key == k)]) < 3]
        left_out = [f"{10.0**k:.3g}" for k in few]
        keys = np.array([k for k in keys if k not in few])
    if keys.size < 3:
        return None
    cs = 10.0**keys
    best = np.array([loss[ok & (key == k)].min() for k in keys])
    decades = np.diff(keys)
    drops = -np.diff(best) / decades  # nats per decade of compute
    tol = 2.0 * rel_noise * best[:-1] / decades
    if not np.all(np.diff(drops) > tol[1:]):
        return None
    per = ", ".join(f"{d:.3g}" for d in drops)
    at = ", ".join(f"{c:.3g}" for c in cs)
    out = (f" (C = {', '.join(left_out)} left out: fewer than 3 sizes there, and a minimum "
           "takes 3)" if left_out else "")  # fmt: skip
    return (
        f"frontier accelerates: the best loss per budget (C = {at}) falls by {per} nats per "
        f"decade of compute, faster at each larger budget (beyond 2x {noise}){out}; "
        "E + k C^-gamma and approach 3 can only slow down, so laws fitted here over-predict the "
        "loss at larger budgets (a pre-asymptotic regime: add larger budgets before trusting "
        "the extrapolation)"
    )


def _n_sizes(log_n: np.ndarray) -> int:
    """Distinct sizes among log N values, those within 1% of the next smaller one counted as one
    (analysis/prediction/ladder.py's rungs; not imported: laws/ sits below prediction/)."""
    v = np.sort(log_n[np.isfinite(log_n)])
    return int(v.size > 0) + int(np.sum(np.diff(v) > math.log1p(0.01)))
