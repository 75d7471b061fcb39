"""Approach 2 made joint: one law for every run of an IsoFLOP grid, fitted at once.

    L(N, C) = L*(C) + k (ln N - ln N*(C))^2,   L*(C) = E + A C^-gamma,   N*(C) = G C^a

with C = 6 N D, so that it is a law in (N, D) like the others. Approach 2 (analysis/laws/
isoflop.py) fits a parabola in ln N per budget and then power laws through the parabolas' minima;
here the parabolas share one curvature k and their minima lie on the two power laws by
construction, so every run informs every parameter, and a table's budgets need not each hold a
well-bracketed minimum. Six parameters: E, A, gamma, k, G, a.

Fitted like `varpro.fit_varpro`: for fixed (gamma, ln G, a) the law is linear in (E, A, k), so
those are an exact non-negative least-squares solve of the relative residuals; a grid over the
three exponents gives starts, and the best few are polished on approach 3's objective (the sum of
Huber(delta = 1e-3) of the log residuals) by a batched Levenberg-Marquardt on iteratively
reweighted least squares (`_irls`), which also refits bootstrap resamples from the optimum
(`bootstrap_joint`). Internally C is scaled by c0 (the geometric mean of the fitted budgets) so
that the coefficients stay near 1; `params` gives both (A, G against C itself, and the scaled
log_A0, log_G0 with c0).

Where it fails: fewer than 3 budgets (or 3 sizes) leave E, A and gamma undetermined (an error:
`check_points`); an IsoFLOP slice is not a parabola far from its minimum (step-starved large
models rise faster), which the robust objective tolerates and the back-test measures. Outside an
IsoFLOP grid's neighbourhood the law is not meant to hold: at fixed N and growing D its loss rises
again (N*(C) moves away), so `ladder` offers it only to tables designed on budgets.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import nnls

from ..errors import AnalysisError, check_points
from ..result_types import MATMUL_CONVENTION, FitResult
from .bootstrap import resample_weights
from .chinchilla import HUBER_DELTA

__all__ = [
    "LAW",
    "bootstrap_joint",
    "fit_joint_isoflop",
    "joint_log_grad",
    "joint_log_loss",
    "joint_loss",
    "joint_optimal",
    "joint_warnings",
    "n_budgets",
]

LAW = "isoflop-joint"
_GAMMAS = np.geomspace(0.02, 1.0, 10)
_SLOPES = np.linspace(0.2, 0.9, 8)


def n_budgets(flops) -> int:
    """How many budgets `flops` holds, values within 1% of a neighbour counted as one."""
    u = np.unique(np.asarray(flops, float))
    return int(1 + np.sum(u[1:] > u[:-1] * 1.01)) if u.size else 0


def _columns(ln_n: np.ndarray, lc: np.ndarray, gamma: float, ln_g0: float, a: float) -> np.ndarray:
    u = ln_n - ln_g0 - a * lc
    return np.column_stack([np.ones_like(lc), np.exp(-gamma * lc), u * u])


def _model(theta: np.ndarray, ln_n: np.ndarray, lc: np.ndarray):
    """Loss (B, n) and its Jacobian in theta (B, n, 6) for theta rows (ln E, ln A0, gamma, ln k,
    ln G0, a), with C scaled by c0 (lc = ln(C / c0))."""
    th = np.atleast_2d(theta)
    gamma, ln_g0, slope = th[:, 2:3], th[:, 4:5], th[:, 5:6]
    with np.errstate(over="ignore", invalid="ignore"):
        e, a0, k = np.exp(th[:, 0:1]), np.exp(th[:, 1:2]), np.exp(th[:, 3:4])
        p = a0 * np.exp(-gamma * lc)
        u = ln_n - ln_g0 - slope * lc
        loss = e + p + k * u * u
        jac = np.stack([np.broadcast_to(e, loss.shape), p, -lc * p, k * u * u, -2 * k * u,
                        -2 * k * u * lc], axis=-1)  # fmt: skip
    return loss, jac


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _irls(theta0, ln_n, lc, y, w, delta: float, max_iter: int = 300):
    """Batched Levenberg-Marquardt on sum w Huber(ln L - y): each step solves the reweighted
    Gauss-Newton system (Huber weights min(1, delta / |r|)), damped by lam diag, kept only where
    the objective falls. Returns (theta (B, 6), objective (B,))."""
    theta = np.array(np.atleast_2d(theta0), float)
    b = theta.shape[0]
    w = np.broadcast_to(np.asarray(w, float), (b, y.size))

    def objective(th, wt):
        loss, jac = _model(th, ln_n, lc)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(loss) - y
        f = np.sum(wt * _huber(r, delta), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.isfinite(f), f, np.inf), r, jac / loss[..., None]

    f, r, jac = objective(theta, w)
    lam = np.full(b, 1e-3)
    active = np.isfinite(f)
    eye = np.eye(theta.shape[1])
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        ww = w[idx] * np.minimum(1.0, delta / np.maximum(np.abs(r[idx]), 1e-300))
        jw = jac[idx] * ww[..., None]
        h = np.einsum("bnp,bnq->bpq", jw, jac[idx])
        g = np.einsum("bnp,bn->bp", jw, r[idx])
        dh = np.einsum("bpp->bp", h)
        sys_ = h + lam[idx, None, None] * (dh[:, :, None] * eye + 1e-12 * eye)
        try:
            step = -np.linalg.solve(sys_, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(s, v, rcond=None)[0]
                              for s, v in zip(sys_, g, strict=True)])
        trial = theta[idx] + step
        f_t, r_t, j_t = objective(trial, w[idx])
        better = f_t < f[idx]
        gain = np.where(better, (f[idx] - f_t) / np.maximum(f[idx], 1e-300), 0.0)
        keep = idx[better]
        theta[keep], f[keep] = trial[better], f_t[better]
        r[keep], jac[keep] = r_t[better], j_t[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3, 1e-12), lam[idx] * 10)
        done = (better & (gain < 1e-13)) | (lam[idx] > 1e12)
        active[idx[done]] = False
    return theta, f


def _scaled(n, d):
    ln_n = np.log(n)
    ln_c = np.log(6.0) + ln_n + np.log(d)
    return ln_n, ln_c


def fit_joint_isoflop(
    n_params,
    n_tokens,
    loss,
    *,
    delta: float = HUBER_DELTA,
    n_starts: int = 4,
    weights=None,
    convention: str = MATMUL_CONVENTION,
) -> FitResult:
    """Fit L(N, C) = E + A C^-gamma + k (ln N - ln G - a ln C)^2, C = 6 N D (module docstring).

    weights: optional per-run weights. Returns a FitResult named "isoflop-joint" with params E, A,
    gamma, k, G, a (and c0, log_E, log_A0, log_k, log_G0 for the scaled form)."""
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    ln_n, ln_c = _scaled(n, d)
    y_loss = check_points(loss=loss, n_free=6, law=LAW, sizes=(n, np.exp(ln_c)), names=("N", "C"))
    if n_budgets(np.exp(ln_c)) < 3:
        raise AnalysisError(
            f"{LAW}: {n_budgets(np.exp(ln_c))} compute budget(s) (C = 6 N D within 1% counted as "
            "one); E, A and gamma of L*(C) need 3 or more: add a budget"
        )
    w = np.ones_like(y_loss) if weights is None else np.asarray(weights, float)
    ln_c0 = float(np.average(ln_c, weights=w))
    lc = ln_c - ln_c0
    scale = np.sqrt(w) / y_loss
    grid = []
    for gamma in _GAMMAS:
        for slope in _SLOPES:
            for ln_g0 in np.linspace(ln_n.min(), ln_n.max(), 12):
                x = _columns(ln_n, lc, gamma, ln_g0, slope) * scale[:, None]
                coef, rnorm = nnls(x, y_loss * scale)
                grid.append((rnorm, gamma, ln_g0, slope, coef))
    grid.sort(key=lambda g: g[0])
    floor = 1e-6 * float(np.median(y_loss))
    starts = np.array([[math.log(max(c[0], floor)), math.log(max(c[1], floor)), gm,
                        math.log(max(c[2], 1e-8)), lg, s]
                       for _, gm, lg, s, c in grid[:n_starts]])  # fmt: skip
    theta, obj = _irls(starts, ln_n, lc, np.log(y_loss), w, delta)
    i = int(np.nanargmin(obj))
    params = _params(theta[i], ln_c0)
    warns = []
    if params["k"] < 1e-6:
        warns.append(f"{LAW}: curvature k ~ 0: the slices show no minimum in N")
    return FitResult(
        law=LAW,
        params=params,
        objective=float(obj[i]),
        converged=bool(np.isfinite(obj[i])),
        message="exact NNLS for (E, A, k) on a grid of (gamma, G, a); Huber polish by batched "
        "Levenberg-Marquardt",
        n_points=y_loss.size,
        warnings=tuple(warns),
        convention=convention,
        details={"theta": theta[i].tolist(), "ln_c0": ln_c0},
    )


def _params(theta: np.ndarray, ln_c0: float) -> dict[str, float]:
    le, la0, gamma, lk, lg0, a = (float(v) for v in theta)
    return {"E": math.exp(le), "A": math.exp(la0 + gamma * ln_c0), "gamma": gamma,
            "k": math.exp(lk), "G": math.exp(lg0 - a * ln_c0), "a": a, "c0": math.exp(ln_c0),
            "log_E": le, "log_A0": la0, "log_k": lk, "log_G0": lg0}  # fmt: skip


def _theta(fit: FitResult) -> tuple[np.ndarray, float]:
    return np.asarray(fit.details["theta"], float), float(fit.details["ln_c0"])


def joint_log_loss(thetas: np.ndarray, ln_c0: float, n_params, n_tokens) -> np.ndarray:
    """ln L at each (N, D) under each theta row (B, P); inf where a refit's law overflows."""
    n = np.atleast_1d(np.asarray(n_params, float))
    d = np.atleast_1d(np.asarray(n_tokens, float))
    ln_n, ln_c = _scaled(n, d)
    loss, _ = _model(np.atleast_2d(thetas), ln_n, ln_c - ln_c0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(loss)


def joint_loss(fit: FitResult, n_params, n_tokens) -> np.ndarray | float:
    """The fitted law's loss at (N, D) (arrays broadcast like N and D)."""
    theta, ln_c0 = _theta(fit)
    shape = np.broadcast(np.asarray(n_params), np.asarray(n_tokens)).shape
    n = np.broadcast_to(np.asarray(n_params, float), shape).ravel()
    d = np.broadcast_to(np.asarray(n_tokens, float), shape).ravel()
    out = np.exp(joint_log_loss(theta, ln_c0, n, d)[0]).reshape(shape)
    return out if shape else float(out)


def joint_optimal(fit: FitResult, flops) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N*, D*, L*) at budget(s) C: N* = G C^a, D* = C / (6 N*), L* = E + A C^-gamma."""
    p = fit.params
    c = np.asarray(flops, float)
    theta, ln_c0 = _theta(fit)
    lc = np.log(c) - ln_c0
    n_star = np.exp(p["log_G0"] + p["a"] * lc)
    loss = p["E"] + math.exp(p["log_A0"]) * np.exp(-p["gamma"] * lc)
    return n_star, c / (6 * n_star), loss


def bootstrap_joint(
    fit: FitResult, n, d, loss, *, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Refits of `fit` on Bayesian-bootstrap run weights (as `calibration.bootstrap_thetas`),
    batched from the optimum: (n_kept, 6) theta rows for `joint_log_loss` (with the fit's c0)."""
    theta, ln_c0 = _theta(fit)
    n, d, loss = (np.asarray(v, float) for v in (n, d, loss))
    ln_n, ln_c = _scaled(n, d)
    w = resample_weights(n.size, n_resamples, rng)
    sol, obj = _irls(np.repeat(theta[None], n_resamples, 0), ln_n, ln_c - ln_c0, np.log(loss), w,
                     HUBER_DELTA)  # fmt: skip
    ok = np.isfinite(obj) & np.isfinite(sol).all(axis=1)
    return sol[ok]


def joint_warnings(fit: FitResult, thetas: np.ndarray, n, d) -> list[str]:
    """`identifiability.fit_warnings` for this law: an E whose 95% bootstrap interval reaches
    below 5% of E, and a condition number above 1e8 of the column-scaled Jacobian of ln L."""
    warns = []
    e = np.exp(np.asarray(thetas, float)[:, 0])
    if e.size and float(np.percentile(e, 2.5)) < 0.05 * fit.params["E"]:
        warns.append(
            f"{LAW}: the irreducible loss E is not determined (95% bootstrap interval "
            f"{np.percentile(e, 2.5):.2g} to {np.percentile(e, 97.5):.3g}): predictions far out "
            "lean on it"
        )
    theta, ln_c0 = _theta(fit)
    ln_n, ln_c = _scaled(np.asarray(n, float), np.asarray(d, float))
    loss, jac = _model(theta, ln_n, ln_c - ln_c0)
    j = jac[0] / loss[0][:, None]
    j = j / np.maximum(np.linalg.norm(j, axis=0), 1e-300)
    s = np.linalg.svd(j, compute_uv=False)
    cond = float(s[0] / s[-1]) if s[-1] > 0 else math.inf
    if cond > 1e8:
        warns.append(
            f"{LAW}: condition number {cond:.1e} of the fit's Jacobian: parameters trade off "
            "against each other; trust predictions near the runs, not the digits of E, A, gamma"
        )
    return warns


def joint_log_grad(theta: np.ndarray, n_params, n_tokens, *, ln_c0: float) -> np.ndarray:
    """d ln L / d theta at each (N, D): (P, 6) rows, theta = (ln E, ln A0, gamma, ln k, ln G0, a)
    with C scaled by exp(ln_c0) (the fit's `details`)."""
    ln_n, ln_c = _scaled(np.atleast_1d(np.asarray(n_params, float)),
                         np.atleast_1d(np.asarray(n_tokens, float)))  # fmt: skip
    loss, jac = _model(np.asarray(theta, float), ln_n, ln_c - ln_c0)
    return jac[0] / loss[0][:, None]
