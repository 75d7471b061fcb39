"""Kaplan et al. (2020) forms: L(x) = E + A x^-alpha for x in N, D or C, and the joint L(N, D).

Single-variable laws are fitted like approach 3: the SUM of Huber(delta=1e-3) of
LSE(a - alpha ln x, e) - ln L, with A = exp(a), E = exp(e), from a grid of starts (a in
{0, 5, ..., 25}, e in {-1, ..., 1}, alpha in {0, 0.25, ..., 2}) evaluated in one vectorised pass;
the best few distinct starts are polished and the best result wins. Kaplan's original L(x) has no
E; with E ~ 0 the fit says so in its warnings.

The joint form L(N, D) = [(Nc/N)^(alphaN/alphaD) + Dc/D]^alphaD has no irreducible loss; it is
fitted with the same Huber objective in log space over (ln Nc, ln Dc, alphaN, alphaD): a grid of
~1800 starts (ln Nc, ln Dc in {10, 15, ..., 40}, exponents in {0.03, ..., 0.8}) evaluated at once,
the best 4 distinct ones polished.

Bootstrap refits (`batched_kaplan.refit_kaplan_joint`, for `bootstrap.bootstrap_kaplan_joint`)
repeat that recipe under each resample's run weights, polished by a batched Levenberg-Marquardt.

The polish is scipy `least_squares` with `loss="huber"`, `f_scale=delta` (its cost is exactly the
Huber objective), the analytic Jacobian and tolerances 1e-15: a trust-region Gauss-Newton method,
~10x faster here than L-BFGS-B to the same minimum. `fit_kaplan_joint_reference` runs L-BFGS-B
from every start of a grid; the tests check both reach the same objective.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import logsumexp, softmax

from ..errors import check_points
from ..result_types import MATMUL_CONVENTION, FitResult
from .chinchilla import HUBER_DELTA
from .objective import (
    LBFGS_OPTIONS,
    huber,
    objective_batch,
    power_design,
    value_and_grad,
)

__all__ = [
    "fit_power_law",
    "power_law_loss",
    "fit_kaplan_joint",
    "fit_kaplan_joint_reference",
    "distinct_starts",
    "joint_grid",
    "joint_residuals",
    "joint_residuals_jacobian",
    "kaplan_joint_loss",
]


def _power_grid() -> np.ndarray:
    mesh = np.meshgrid(
        np.arange(0.0, 25.1, 5.0),
        np.arange(-1.0, 1.01, 0.5),
        np.arange(0.0, 2.01, 0.25),
        indexing="ij",
    )
    return np.stack([m.ravel() for m in mesh], axis=1)


_LSQ = {"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15, "method": "trf", "max_nfev": 400}


def distinct_starts(starts: np.ndarray, f: np.ndarray, k: int) -> np.ndarray:
    """The k best starts by objective, skipping near-copies (starts in the same basin)."""
    order = np.argsort(np.where(np.isfinite(f), f, np.inf))
    picked: list[np.ndarray] = []
    for i in order:
        if not np.isfinite(f[i]):
            break
        if all(np.max(np.abs(starts[i] - p)) > 1e-6 for p in picked):
            picked.append(starts[i])
        if len(picked) == k:
            break
    return np.array(picked) if picked else starts[order[:1]]


def power_law_loss(params: dict[str, float], x) -> np.ndarray:
    """E + A x^-alpha (nats/token)."""
    return params["E"] + params["A"] * np.asarray(x, float) ** -params["alpha"]


def fit_power_law(
    x,
    loss,
    *,
    variable: str = "N",
    delta: float = HUBER_DELTA,
    convention: str = MATMUL_CONVENTION,
) -> FitResult:
    """Fit L = E + A x^-alpha; `variable` names x ("N", "D" or "C") in the law and messages."""
    x = np.asarray(x, float)
    law = f"kaplan_{variable}"
    loss = check_points(loss=loss, n_free=3, law=law, sizes=(x,), names=(variable,))
    design, log_loss = power_design(x), np.log(loss)
    grid = _power_grid()
    f0 = objective_batch(grid, design, log_loss, delta=delta)
    g2 = design  # (n, 2, 3): z = G theta

    def resid(theta):
        return logsumexp(g2 @ theta, axis=1) - log_loss

    def jac(theta):
        return np.einsum("nk,nkp->np", softmax(g2 @ theta, axis=1), g2)

    best = None
    for s0 in distinct_starts(grid, f0, 4):
        res = least_squares(resid, s0, jac=jac, loss="huber", f_scale=delta, **_LSQ)
        f = float(objective_batch(res.x, design, log_loss, delta=delta)[0])
        if np.isfinite(f) and (best is None or f < best[0]):
            best = (f, res)
    assert best is not None
    theta, res = best[1].x, best[1]
    f, g = value_and_grad(theta, design, log_loss, delta)
    g_max = float(np.max(np.abs(g)))
    converged = bool((res.status > 0 and g_max <= 1e-6 * delta * x.size) or g_max <= 1e-9)
    log_a, log_e, alpha = (float(v) for v in theta)
    params = {
        "E": math.exp(log_e),
        "A": math.exp(log_a),
        "alpha": alpha,
        "log_A": log_a,
        "log_E": log_e,
    }
    warns = []
    if not converged:
        warns.append(f"{law}: optimiser did not converge ({res.message}; |g| {g_max:.2e})")
    if params["E"] < 1e-3:
        warns.append(f"{law}: E ~ 0: the losses do not flatten towards an irreducible loss")
    return FitResult(
        law=law,
        params=params,
        objective=float(f),
        converged=converged,
        message=f"least_squares (Huber): {res.message}; max |gradient| {g_max:.2e}",
        n_points=int(x.size),
        warnings=tuple(warns),
        convention=convention,
    )


def kaplan_joint_loss(params: dict[str, float], n_params, n_tokens) -> np.ndarray:
    """[(Nc/N)^(alphaN/alphaD) + Dc/D]^alphaD (nats/token)."""
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    an, ad = params["alpha_N"], params["alpha_D"]
    return ((params["N_c"] / n) ** (an / ad) + params["D_c"] / d) ** ad


def joint_residuals(x, log_n, log_d, log_loss):
    """Residuals ln L_pred - ln L for a batch of parameter rows x (..., 4) -> (..., n)."""
    x = np.asarray(x, float)
    lnc, ldc, an, ad = (x[..., i, None] for i in range(4))
    return ad * np.logaddexp(an / ad * (lnc - log_n), ldc - log_d) - log_loss


def _joint_jacobian_batch(x, log_n, log_d):
    """d residual / d (ln Nc, ln Dc, alphaN, alphaD) for a batch of rows x (b, 4) -> (b, n, 4)."""
    lnc, ldc, an, ad = (x[:, i, None] for i in range(4))
    u0, u1 = an / ad * (lnc - log_n), ldc - log_d
    s = np.logaddexp(u0, u1)
    q0 = np.exp(u0 - s)
    return np.stack([an * q0, ad * (1 - q0), q0 * (lnc - log_n), s - q0 * u0], axis=2)


def joint_residuals_jacobian(x, log_n, log_d, log_loss):
    """Residuals (b, n) and their Jacobian as (b, 4, n) (n last: batched matmuls over the points
    run on BLAS; `_joint_jacobian_batch`'s (b, n, 4) through einsum took half the bootstrap)."""
    lnc, ldc, an, ad = (x[:, i, None] for i in range(4))
    u0, u1 = an / ad * (lnc - log_n), ldc - log_d
    s = np.logaddexp(u0, u1)
    q0 = np.exp(u0 - s)
    jac = np.empty((x.shape[0], 4, log_n.size))
    jac[:, 0], jac[:, 1] = an * q0, ad * (1 - q0)
    jac[:, 2], jac[:, 3] = q0 * (lnc - log_n), s - q0 * u0
    return ad * s - log_loss, jac


def _joint_jacobian(x, log_n, log_d):
    """d residual / d (ln Nc, ln Dc, alphaN, alphaD), (n, 4)."""
    return _joint_jacobian_batch(np.asarray(x, float)[None], log_n, log_d)[0]


def _joint_value_grad(x, log_n, log_d, log_loss, delta):
    r = joint_residuals(x, log_n, log_d, log_loss)
    psi = np.clip(r, -delta, delta)
    return float(np.sum(huber(r, delta))), psi @ _joint_jacobian(x, log_n, log_d)


def joint_grid() -> np.ndarray:
    exps = [0.03, 0.06, 0.1, 0.2, 0.4, 0.8]
    mesh = np.meshgrid(np.arange(10.0, 41.0, 5.0), np.arange(10.0, 41.0, 5.0), exps, exps,
                       indexing="ij")  # fmt: skip
    return np.stack([m.ravel() for m in mesh], axis=1)


def _joint_result(x, f, converged, message, n, convention, law="kaplan_joint") -> FitResult:
    lnc, ldc, an, ad = (float(v) for v in x)
    params = {
        "N_c": math.exp(lnc),
        "D_c": math.exp(ldc),
        "alpha_N": an,
        "alpha_D": ad,
        "log_N_c": lnc,
        "log_D_c": ldc,
    }
    warns = () if converged else (f"{law}: not converged ({message})",)
    return FitResult(
        law=law,
        params=params,
        objective=float(f),
        converged=bool(converged),
        message=message,
        n_points=int(n),
        warnings=warns,
        convention=convention,
    )


def fit_kaplan_joint(
    n_params, n_tokens, loss, *, delta: float = HUBER_DELTA, convention: str = MATMUL_CONVENTION
) -> FitResult:
    """Fit Kaplan's L(N, D); params N_c, D_c, alpha_N, alpha_D (and their logs)."""
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    loss = check_points(loss=loss, n_free=4, law="kaplan_joint", sizes=(n, d), names=("N", "D"))
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)
    starts = joint_grid()
    with np.errstate(over="ignore", invalid="ignore"):  # far starts overflow: they get f = inf
        f0 = np.sum(huber(joint_residuals(starts, log_n, log_d, log_loss), delta), axis=1)
    best = None
    for s0 in distinct_starts(starts, f0, 4):
        res = least_squares(
            joint_residuals,
            s0,
            jac=lambda x, *_: _joint_jacobian(x, log_n, log_d),
            args=(log_n, log_d, log_loss),
            loss="huber",
            f_scale=delta,
            **_LSQ,
        )
        f = _joint_value_grad(res.x, log_n, log_d, log_loss, delta)[0]
        if np.isfinite(f) and (best is None or f < best[0]):
            best = (f, res)
    assert best is not None
    f, res = best
    g_max = float(np.max(np.abs(_joint_value_grad(res.x, log_n, log_d, log_loss, delta)[1])))
    converged = (res.status > 0 and g_max <= 1e-6 * delta * n.size) or g_max <= 1e-9
    message = f"least_squares (Huber): {res.message}; max |gradient| {g_max:.2e}"
    return _joint_result(res.x, f, converged, message, n.size, convention)


def fit_kaplan_joint_reference(
    n_params,
    n_tokens,
    loss,
    *,
    delta: float = HUBER_DELTA,
    starts: np.ndarray | None = None,
    convention: str = MATMUL_CONVENTION,
) -> FitResult:
    """The brute-force reference: L-BFGS-B (tight tolerances, analytic gradient) from every start
    of `starts` (default the fast fit's grid); slow, for tests."""
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    loss = check_points(loss=loss, n_free=4, law="kaplan_joint", sizes=(n, d), names=("N", "D"))
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)
    best = None
    for s0 in joint_grid() if starts is None else starts:
        with np.errstate(over="ignore", invalid="ignore"):
            res = minimize(_joint_value_grad, s0, args=(log_n, log_d, log_loss, delta),
                           jac=True, method="L-BFGS-B", options=LBFGS_OPTIONS)  # fmt: skip
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    assert best is not None
    return _joint_result(best.x, best.fun, best.success, f"L-BFGS-B: {best.message}", n.size,
                         convention, law="kaplan_joint_reference")  # fmt: skip
