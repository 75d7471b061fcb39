"""Kaplan et al. (2020) forms: L(x) = E + A x^-alpha for x in N, D or C, and the joint L(N, D).

Single-variable laws are fitted like approach 3: the SUM of Huber(delta=1e-3) of
LSE(a - alpha ln x, e) - ln L, with A = exp(a), E = exp(e), from a grid of starts (a in
{0, 5, ..., 25}, e in {-1, ..., 1}, alpha in {0, 0.25, ..., 2}), the best 16 polished together by
the batched Newton method and the best finished with L-BFGS-B. Kaplan's original L(x) has no E;
with E ~ 0 the fit says so in its warnings.

The joint form L(N, D) = [(Nc/N)^(alphaN/alphaD) + Dc/D]^alphaD has no irreducible loss; it is
fitted with the same Huber objective in log space over (ln Nc, ln Dc, alphaN, alphaD) by L-BFGS-B
from a small grid of starts (the best 3 by objective polished).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from .chinchilla import HUBER_DELTA
from .objective import (
    LBFGS_OPTIONS,
    huber,
    minimize_lbfgs,
    newton_batch,
    objective_batch,
    power_design,
    value_and_grad,
)
from .results import MATMUL_CONVENTION, FitResult
from .runs import check_points

__all__ = ["fit_power_law", "power_law_loss", "fit_kaplan_joint", "kaplan_joint_loss"]


def _power_grid() -> np.ndarray:
    mesh = np.meshgrid(
        np.arange(0.0, 25.1, 5.0),
        np.arange(-1.0, 1.01, 0.5),
        np.arange(0.0, 2.01, 0.25),
        indexing="ij",
    )
    return np.stack([m.ravel() for m in mesh], axis=1)


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
    sol = newton_batch(grid[np.argsort(f0)[:16]], design, log_loss, delta=delta, max_iter=500)
    theta = sol.theta[int(np.nanargmin(sol.objective))]
    res = minimize_lbfgs(theta, design, log_loss, delta=delta)
    if res.fun <= sol.objective.min():
        theta = res.x
    f, g = value_and_grad(theta, design, log_loss, delta)
    g_max = float(np.max(np.abs(g)))
    converged = bool(res.success or g_max <= 1e-7 * delta * x.size)
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
        warns.append(f"{law}: optimiser did not converge ({res.message})")
    if params["E"] < 1e-3:
        warns.append(f"{law}: E ~ 0: the losses do not flatten towards an irreducible loss")
    return FitResult(
        law=law,
        params=params,
        objective=float(f),
        converged=converged,
        message=f"L-BFGS-B: {res.message}; max |gradient| {g_max:.2e}",
        n_points=int(x.size),
        warnings=tuple(warns),
        convention=convention,
    )


def kaplan_joint_loss(params: dict[str, float], n_params, n_tokens) -> np.ndarray:
    """[(Nc/N)^(alphaN/alphaD) + Dc/D]^alphaD (nats/token)."""
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    an, ad = params["alpha_N"], params["alpha_D"]
    return ((params["N_c"] / n) ** (an / ad) + params["D_c"] / d) ** ad


def _joint_terms(x, log_n, log_d):
    lnc, ldc, an, ad = x
    u = np.stack([an / ad * (lnc - log_n), ldc - log_d], axis=-1)
    return u, logsumexp(u, axis=-1)


def _joint_value_grad(x, log_n, log_d, log_loss, delta):
    lnc, ldc, an, ad = x
    u, s = _joint_terms(x, log_n, log_d)
    q = softmax(u, axis=-1)
    r = ad * s - log_loss
    psi = np.clip(r, -delta, delta)
    jac = np.stack(
        [an * q[:, 0], ad * q[:, 1], q[:, 0] * (lnc - log_n), s - q[:, 0] * u[:, 0]], axis=1
    )
    return float(np.sum(huber(r, delta))), psi @ jac


def fit_kaplan_joint(
    n_params, n_tokens, loss, *, delta: float = HUBER_DELTA, convention: str = MATMUL_CONVENTION
) -> FitResult:
    """Fit Kaplan's L(N, D); params N_c, D_c, alpha_N, alpha_D (and their logs)."""
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    loss = check_points(loss=loss, n_free=4, law="kaplan_joint", sizes=(n, d), names=("N", "D"))
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)
    mesh = np.meshgrid(
        np.arange(10.0, 41.0, 5.0),
        np.arange(10.0, 41.0, 5.0),
        [0.05, 0.1, 0.2, 0.4],
        [0.05, 0.1, 0.2, 0.4],
        indexing="ij",
    )
    starts = np.stack([m.ravel() for m in mesh], axis=1)
    f0 = np.array([_joint_value_grad(s, log_n, log_d, log_loss, delta)[0] for s in starts])
    best = None
    for s in starts[np.argsort(f0)[:3]]:
        res = minimize(
            _joint_value_grad,
            s,
            args=(log_n, log_d, log_loss, delta),
            jac=True,
            method="L-BFGS-B",
            options=LBFGS_OPTIONS,
        )
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    assert best is not None
    lnc, ldc, an, ad = (float(v) for v in best.x)
    params = {
        "N_c": math.exp(lnc),
        "D_c": math.exp(ldc),
        "alpha_N": an,
        "alpha_D": ad,
        "log_N_c": lnc,
        "log_D_c": ldc,
    }
    warns = () if best.success else (f"kaplan_joint: not converged ({best.message})",)
    return FitResult(
        law="kaplan_joint",
        params=params,
        objective=float(best.fun),
        converged=bool(best.success),
        message=f"L-BFGS-B: {best.message}",
        n_points=int(n.size),
        warnings=warns,
        convention=convention,
    )
