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

Bootstrap refits (`refit_kaplan_joint`, for `bootstrap.bootstrap_kaplan_joint`) repeat that
recipe under each resample's run weights, polished by a batched Levenberg-Marquardt instead.

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
    "kaplan_joint_loss",
    "refit_kaplan_joint",
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


def _distinct(starts: np.ndarray, f: np.ndarray, k: int) -> np.ndarray:
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
    for s0 in _distinct(grid, f0, 4):
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


def _joint_residuals(x, log_n, log_d, log_loss):
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


def _joint_residuals_jacobian(x, log_n, log_d, log_loss):
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
    r = _joint_residuals(x, log_n, log_d, log_loss)
    psi = np.clip(r, -delta, delta)
    return float(np.sum(huber(r, delta))), psi @ _joint_jacobian(x, log_n, log_d)


def _joint_grid() -> np.ndarray:
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
    starts = _joint_grid()
    with np.errstate(over="ignore", invalid="ignore"):  # far starts overflow: they get f = inf
        f0 = np.sum(huber(_joint_residuals(starts, log_n, log_d, log_loss), delta), axis=1)
    best = None
    for s0 in _distinct(starts, f0, 4):
        res = least_squares(
            _joint_residuals,
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


def _newton_try(x, f, idx, wi, inside, done, jac, g, objective) -> np.ndarray:
    """The semismooth Newton step of each row idx (weights wi): Gauss-Newton on the points inside
    the Huber threshold only (`inside`; with >= 4 of them), kept where it lowers the objective
    (x, f updated in place) -> which rows moved. Near the optimum the set of points inside
    settles and this step lands on it, where the IRLS step of `_lm_batch` alone converges
    linearly (~80 steps from the full-data optimum on a 250-run table, 10 with this)."""
    moved = np.zeros(idx.size, bool)
    tryn = ~done & (np.count_nonzero(inside & (wi > 0), axis=1) >= 4)
    if not tryn.any():
        return moved
    w_in = wi[tryn] * inside[tryn]
    h_in = (jac[tryn] * w_in[:, None, :]) @ np.swapaxes(jac[tryn], 1, 2)
    ridge = (1e-10 * np.abs(np.diagonal(h_in, axis1=1, axis2=2)) + 1e-300)[:, :, None] * np.eye(4)
    with np.errstate(all="ignore"):
        try:
            cand = x[idx[tryn]] - np.linalg.solve(h_in + ridge, g[tryn][..., None])[..., 0]
        except np.linalg.LinAlgError:  # a singular row: no Newton step this time
            return moved
        fc = objective(cand, wi[tryn])
    good = np.isfinite(fc) & (fc < f[idx[tryn]])
    rows = idx[np.flatnonzero(tryn)[good]]
    x[rows], f[rows] = cand[good], fc[good]
    moved[np.flatnonzero(tryn)[good]] = True
    return moved


def _lm_batch(x, w, log_n, log_d, log_loss, delta, max_iter, gtol):
    """Batched Levenberg-Marquardt for sum_i w_i Huber(r_i) of the joint law, one problem per row
    of x (b, 4) and w (b, n); see `refit_kaplan_joint`."""
    x = np.array(x, float)
    b = x.shape[0]

    def objective(xs, ws):
        with np.errstate(over="ignore", invalid="ignore"):
            f = np.sum(ws * huber(_joint_residuals(xs, log_n, log_d, log_loss), delta), axis=1)
        return np.where(np.isfinite(f), f, np.inf)

    f = objective(x, w)
    lam = np.full(b, 1e-3)
    active, converged = np.isfinite(f), np.zeros(b, bool)
    scale = delta * np.maximum(w.sum(axis=1), 1.0)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        xi, wi = x[idx], w[idx]
        with np.errstate(over="ignore", invalid="ignore"):
            r, jac = _joint_residuals_jacobian(xi, log_n, log_d, log_loss)  # (b, n), (b, 4, n)
        g = (jac @ (wi * np.clip(r, -delta, delta))[..., None])[..., 0]
        irls = np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))  # psi(r) / r
        h = (jac * (wi * irls)[:, None, :]) @ np.swapaxes(jac, 1, 2)
        g_max = np.max(np.abs(g), axis=1)
        converged[idx] = g_max <= 1e-6 * scale[idx]
        done = (g_max <= gtol * scale[idx]) | ~np.isfinite(g_max)
        moved = _newton_try(x, f, idx, wi, np.abs(r) <= delta, done, jac, g, objective)
        damp = np.abs(np.diagonal(h, axis1=1, axis2=2)) + 1e-12
        for _ in range(8):  # damping trials: a rejected step costs an objective call only
            todo = ~moved & ~done & (lam[idx] <= 1e10)
            if not todo.any():
                break
            a = h[todo] + (lam[idx][todo, None] * damp[todo])[:, :, None] * np.eye(4)
            try:
                step = -np.linalg.solve(a, g[todo][..., None])[..., 0]
            except np.linalg.LinAlgError:
                step = -g[todo] / (lam[idx][todo, None] * damp[todo])
            cand = xi[todo] + step
            fc = objective(cand, wi[todo])
            good = fc < f[idx][todo]
            sub = np.flatnonzero(todo)
            rows = idx[sub[good]]
            x[rows], f[rows] = cand[good], fc[good]
            lam[rows] = np.maximum(lam[rows] / 10, 1e-12)
            lam[idx[sub[~good]]] *= 10
            moved[sub[good]] = True
        active[idx[done | (lam[idx] > 1e10)]] = False
    return x, f, converged


def refit_kaplan_joint(
    fit: FitResult,
    n_params,
    n_tokens,
    loss,
    weights: np.ndarray,
    *,
    delta: float = HUBER_DELTA,
    n_starts: int = 4,
    max_iter: int = 1000,
    gtol: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refit the joint law once per row of `weights` (point weights, e.g. a bootstrap's), all at
    once, minimising sum_i w_i Huber(r_i). Each row repeats `fit_kaplan_joint`'s recipe on its
    weights (its own `n_starts` best distinct grid starts, polished) plus `fit`'s optimum as a
    start, and keeps the best. On noisy runs the objective has several local minima (on the
    demo's runs, 3 of 40 refits from the optimum alone ended in another basin 0.3-1.8% above
    the best one found), so one start is not enough.

    Each start is polished by a batched Levenberg-Marquardt on the iteratively reweighted
    Gauss-Newton matrix J^T diag(w psi(r)/r) J (the Huber loss's quadratic majoriser; with only
    the points inside the threshold, 40% of the demo refits stalled 5-50% above the optimum),
    damped by lam * its diagonal; a step is kept only if the objective falls (lam shrinks), else
    lam grows. Each iteration first tries the undamped semismooth Newton step (`_newton_try`:
    the points inside the threshold only), which ends the IRLS step's linear crawl once the set
    of points inside settles (2x faster on a 250-run table; on Gadre et al.'s RefinedWeb runs 2 of
    200 refits ended in a lower minimum than the IRLS path found).
    Returns the rows (ln Nc, ln Dc, alphaN, alphaD), each one's weighted objective
    (inf where every start went non-finite) and whether it converged by `fit_kaplan_joint`'s test
    (max |gradient| <= 1e-6 delta sum w); the others stopped where no step lowers the objective
    (a flat direction). Iteration goes on to `gtol` (same scale) or until no step helps.
    """
    log_n, log_d = np.log(np.asarray(n_params, float)), np.log(np.asarray(n_tokens, float))
    log_loss = np.log(np.asarray(loss, float))
    w = np.atleast_2d(np.asarray(weights, float))
    b = w.shape[0]
    x0 = np.array([fit.params[k] for k in ("log_N_c", "log_D_c", "alpha_N", "alpha_D")])
    k = n_starts + 1
    starts = np.repeat(x0[None, None], b, 0).repeat(k, 1)  # (b, k, 4); short rows keep x0
    if n_starts > 0:
        grid = _joint_grid()
        with np.errstate(over="ignore", invalid="ignore"):
            h0 = huber(_joint_residuals(grid, log_n, log_d, log_loss), delta)  # (grid, n)
            f0 = w @ np.where(np.isfinite(h0), h0, np.inf).T  # (b, grid): each row's ranking
        f0 = np.where(np.isnan(f0), np.inf, f0)
        for i in range(b):
            picked = _distinct(grid, f0[i], n_starts)
            starts[i, 1 : 1 + len(picked)] = picked
    x, f, conv = _lm_batch(
        starts.reshape(b * k, 4), np.repeat(w, k, axis=0), log_n, log_d, log_loss, delta,
        max_iter, gtol,
    )  # fmt: skip
    f = f.reshape(b, k)
    best = np.argmin(f, axis=1)
    rows = np.arange(b) * k + best
    return x[rows], f[np.arange(b), best], conv[rows]


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
    for s0 in _joint_grid() if starts is None else starts:
        with np.errstate(over="ignore", invalid="ignore"):
            res = minimize(_joint_value_grad, s0, args=(log_n, log_d, log_loss, delta),
                           jac=True, method="L-BFGS-B", options=LBFGS_OPTIONS)  # fmt: skip
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    assert best is not None
    return _joint_result(best.x, best.fun, best.success, f"L-BFGS-B: {best.message}", n.size,
                         convention, law="kaplan_joint_reference")  # fmt: skip
