"""Chinchilla approach 3: L(N, D) = E + A/N^alpha + B/D^beta, and the compute-optimal allocation.

The fit minimises the SUM over runs of Huber_delta(LSE(a - alpha log N, b - beta log D, e) - log L)
with delta = 1e-3 (Hoffmann et al. 2022), A = exp(a), B = exp(b), E = exp(e), from Hoffmann's grid
of 4500 starts (alpha, beta in {0, 0.5, ..., 2}; e in {-1, ..., 1}; a, b in {0, 5, ..., 25}).

How it stays fast and still finds the same minimum as running scipy from every start:
1. the objective is evaluated at all 4500 starts at once (one vectorised numpy pass);
2. the `n_polish` best starts are optimised together by a batched damped Newton method with the
   exact gradient and Hessian (`objective.newton_batch`);
3. the best of those is finished with scipy L-BFGS-B (analytic gradient, ftol 1e-15, gtol 1e-11),
   whose verdict, with the final gradient, sets `converged`.
`fit_chinchilla_reference` is the straightforward loop (L-BFGS-B from each start); the tests and
`benchmarks/fit_speed.py` check that both reach the same objective.

Where it fails: with one model size or one token count the exponents are not identified (an error);
if the data do not bend towards an irreducible loss, E can drift to 0 or alpha to 0 (a warning).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import check_points
from ..result_types import MATMUL_CONVENTION, Allocation, FitResult
from .objective import (
    CHINCHILLA_PARAMS,
    chinchilla_design,
    chinchilla_grid,
    minimize_lbfgs,
    newton_batch,
    objective_batch,
    representable,
    value_and_grad,
)

__all__ = [
    "HUBER_DELTA",
    "fit_chinchilla",
    "fit_chinchilla_reference",
    "fit_chinchilla_likelihood",
    "chinchilla_loss",
    "chinchilla_params",
    "compute_optimal",
]

HUBER_DELTA = 1e-3


def chinchilla_params(theta: np.ndarray) -> dict[str, float]:
    """(a, b, e, alpha, beta) -> named params incl. E, A, B and the allocation exponents a, b."""
    log_a, log_b, log_e, alpha, beta = (float(v) for v in theta)
    p = {"log_A": log_a, "log_B": log_b, "log_E": log_e, "alpha": alpha, "beta": beta}
    p["E"], p["A"], p["B"] = math.exp(log_e), math.exp(log_a), math.exp(log_b)
    s = alpha + beta
    p["a"] = beta / s if s != 0 else math.nan  # N* ~ C^a
    p["b"] = alpha / s if s != 0 else math.nan  # D* ~ C^b
    return p


def chinchilla_loss(params: dict[str, float], n_params, n_tokens) -> np.ndarray:
    """Predicted loss (nats/token) E + A/N^alpha + B/D^beta."""
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    return params["E"] + params["A"] * n ** -params["alpha"] + params["B"] * d ** -params["beta"]


def params_to_theta(params: dict[str, float]) -> np.ndarray:
    """The fitted parameters as the optimiser's vector, in CHINCHILLA_PARAMS order."""
    return np.array([params[k] for k in CHINCHILLA_PARAMS])


def _finish(theta, design, log_loss, delta, law, n, convention, extra_warn=(), details=None):
    res = minimize_lbfgs(theta, design, log_loss, delta=delta)
    # keep the better of the two (L-BFGS-B cannot make the Newton optimum worse, but be explicit),
    # unless L-BFGS-B ran off to coefficients no float holds
    f_theta, _ = value_and_grad(theta, design, log_loss, delta)
    kept = bool(res.fun <= f_theta and representable(res.x)[0])
    if kept:
        theta = res.x
    f, g = value_and_grad(theta, design, log_loss, delta)
    g_max = float(np.max(np.abs(g)))
    g_tol = 1e-7 * delta * n  # |g| <= delta * n * max|dr/dtheta|; see objective.newton_batch
    converged = bool((kept and res.success) or g_max <= g_tol) and np.isfinite(f)
    message = f"L-BFGS-B: {res.message}; max |gradient| {g_max:.2e} (tolerance {g_tol:.1e})"
    params = chinchilla_params(theta)
    warns = list(extra_warn)
    if not converged:
        warns.append(f"{law}: optimiser did not converge ({message})")
    if params["alpha"] <= 0.01 or params["beta"] <= 0.01:
        warns.append(
            f"{law}: an exponent is ~0 or negative (alpha {params['alpha']:.3g}, beta "
            f"{params['beta']:.3g}): the data do not constrain it, or the loss does not fall "
            "with N or D; no compute-optimal allocation; widen the N or D range of the grid"
        )
    if params["E"] < 1e-3:
        warns.append(f"{law}: irreducible loss E ~ 0 ({params['E']:.2e}): the curves do not bend")
    return FitResult(
        law=law,
        params=params,
        objective=float(f),
        converged=converged,
        message=message,
        n_points=n,
        warnings=tuple(warns),
        convention=convention,
        details=details or {},
    )


def fit_chinchilla(
    n_params,
    n_tokens,
    loss,
    *,
    delta: float = HUBER_DELTA,
    starts: np.ndarray | None = None,
    n_polish: int = 32,
    convention: str = MATMUL_CONVENTION,
) -> FitResult:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta (approach 3) to one (N, D, loss) per run.

    n_params: N per run (under `convention`); n_tokens: D; loss: final loss in nats/token.
    starts: (S, 5) starts in (a, b, e, alpha, beta) order, default Hoffmann's 4500-point grid.
    Raises AnalysisError on bad input (see `errors.check_points`).
    """
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    loss = check_points(loss=loss, n_free=5, law="chinchilla", sizes=(n, d), names=("N", "D"))
    design, log_loss = chinchilla_design(n, d), np.log(loss)
    starts = chinchilla_grid() if starts is None else np.atleast_2d(starts)
    f0 = objective_batch(starts, design, log_loss, delta=delta)
    best = np.argsort(np.where(np.isfinite(f0), f0, np.inf))[: max(1, n_polish)]
    sol = newton_batch(starts[best], design, log_loss, delta=delta, max_iter=500)
    # a polish that ran off to coefficients no float holds is not a fit (OverflowError in
    # chinchilla_params before); where every polish did, the best start is polished by L-BFGS-B
    obj = np.where(representable(sol.theta), sol.objective, np.nan)
    ran_off = bool(np.isnan(obj).all())
    theta = starts[best[0]] if ran_off else sol.theta[int(np.nanargmin(obj))]
    warn = ("chinchilla: every Newton polish ran off to coefficients beyond float range; the best "
            "grid start was polished by L-BFGS-B alone (the runs do not pin the law down)",)
    return _finish(theta, design, log_loss, delta, "chinchilla", loss.size, convention,
                   extra_warn=warn if ran_off else ())  # fmt: skip


def fit_chinchilla_reference(
    n_params,
    n_tokens,
    loss,
    *,
    delta: float = HUBER_DELTA,
    starts: np.ndarray | None = None,
    convention: str = MATMUL_CONVENTION,
) -> FitResult:
    """The straightforward fit: scipy L-BFGS-B (tight tolerances) from every start; keep the best.

    About 30 ms per start on 250 points, so ~2 minutes for the full grid: the reference that
    `fit_chinchilla` is tested against, not for daily use.
    """
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    loss = check_points(loss=loss, n_free=5, law="chinchilla", sizes=(n, d), names=("N", "D"))
    design, log_loss = chinchilla_design(n, d), np.log(loss)
    starts = chinchilla_grid() if starts is None else np.atleast_2d(starts)
    best = None
    for s in starts:
        res = minimize_lbfgs(s, design, log_loss, delta=delta)
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    assert best is not None
    params = chinchilla_params(best.x)
    return FitResult(
        law="chinchilla_reference",
        params=params,
        objective=float(best.fun),
        converged=bool(best.success),
        message=f"L-BFGS-B from {len(starts)} starts: {best.message}",
        n_points=loss.size,
        convention=convention,
    )


def fit_chinchilla_likelihood(
    n_params,
    n_tokens,
    loss,
    *,
    delta: float = 1.345,
    start: FitResult | None = None,
    convention: str = MATMUL_CONVENTION,
) -> FitResult:
    """Approach 3 as maximum likelihood under a Huber density with a free scale sigma.

    Residuals r = LSE(...) - log L have density exp(-Huber_delta(r / sigma)) / (sigma Z(delta)),
    delta in units of sigma (1.345: 95% efficiency under Gaussian noise). Minimises
    sum Huber_delta(r/sigma) + n log sigma over (a, b, e, alpha, beta, log sigma) with L-BFGS-B,
    started from the approach-3 optimum (`start`, fitted here if not given). Reports sigma and the
    negative log-likelihood (incl. the normaliser Z) as the objective.
    """
    from scipy.optimize import minimize
    from scipy.special import erf

    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    loss = check_points(
        loss=loss, n_free=6, law="chinchilla_likelihood", sizes=(n, d), names=("N", "D")
    )
    if start is None:
        start = fit_chinchilla(n, d, loss, convention=convention)
    design, log_loss = chinchilla_design(n, d), np.log(loss)
    theta0 = params_to_theta(start.params)
    r0 = np.log(chinchilla_loss(start.params, n, d)) - log_loss
    sigma0 = max(1.4826 * float(np.median(np.abs(r0 - np.median(r0)))), 1e-6)
    m = loss.size

    def nll(x):
        theta, log_s = x[:5], x[5]
        s = math.exp(log_s)
        f, g = value_and_grad(theta, design, log_loss, delta * s)
        # sum Huber_delta(r/s) = sum Huber_{delta s}(r) / s^2
        val = f / s**2 + m * log_s
        # d/ds of sum Huber_{delta s}(r) / s^2; the threshold moves with s for |r| > delta s
        z = design @ theta
        zm = z.max(axis=1)
        r = np.abs(zm + np.log(np.exp(z - zm[:, None]).sum(axis=1)) - log_loss)
        d_f_ds = (
            -2 * f / s**3 + np.sum(np.where(r > delta * s, delta * (r - delta * s), 0.0)) / s**2
        )
        grad = np.concatenate([g / s**2, [d_f_ds * s + m]])
        return val, grad

    res = minimize(
        nll,
        np.append(theta0, math.log(sigma0)),
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 20_000},
    )
    z_norm = (
        math.sqrt(2 * math.pi) * erf(delta / math.sqrt(2)) + 2 * math.exp(-(delta**2) / 2) / delta
    )
    params = chinchilla_params(res.x[:5]) | {"sigma": math.exp(res.x[5])}
    warns = () if res.success else (f"chinchilla_likelihood: not converged ({res.message})",)
    return FitResult(
        law="chinchilla_likelihood",
        params=params,
        objective=float(res.fun + m * math.log(z_norm)),
        converged=bool(res.success),
        message=f"L-BFGS-B: {res.message}",
        n_points=m,
        warnings=warns,
        convention=convention,
    )


def compute_optimal(params: dict[str, float], flops, *, convention: str = MATMUL_CONVENTION):
    """Compute-optimal N*, D* at budget C (FLOPs) from approach-3 parameters, with C = 6 N D.

    N*(C) = G (C/6)^a, D*(C) = (C/6)^b / G, a = beta/(alpha+beta), b = alpha/(alpha+beta),
    G = (alpha A / (beta B))^(1/(alpha+beta)). Returns an Allocation (arrays if `flops` is one).
    """
    alpha, beta, a_coef, b_coef = params["alpha"], params["beta"], params["A"], params["B"]
    c6 = np.asarray(flops, float) / 6.0
    n_star = np.full(np.shape(c6), math.nan)
    # an exponent or coefficient <= 0 has no compute-optimal allocation (the loss does not fall
    # with N or D): NaN. Else in logs, and NaN past float range (alpha + beta near 0 raises the
    # ratio to a huge power: an overflow, not an allocation)
    if alpha > 0 and beta > 0 and a_coef > 0 and b_coef > 0:
        s = alpha + beta
        log_g = (math.log(alpha) + math.log(a_coef) - math.log(beta) - math.log(b_coef)) / s
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            n_star = np.exp(log_g + beta / s * np.log(c6))
        n_star = np.where(np.isfinite(n_star) & (n_star > 0), n_star, math.nan)
    d_star = c6 / n_star
    loss = chinchilla_loss(params, n_star, d_star)
    scalar = np.ndim(flops) == 0
    conv = (lambda x: float(x)) if scalar else (lambda x: x)  # noqa: E731
    return Allocation(
        flops=conv(np.asarray(flops, float)),
        n_params=conv(n_star),
        n_tokens=conv(d_star),
        tokens_per_param=conv(d_star / n_star),
        loss=conv(loss),
        convention=convention,
    )
