"""L(N, D) = E + A/N^alpha + B/D^beta by variable projection: search only the exponents.

For fixed exponents the law is linear in (E, A, B), so the best non-negative (E, A, B) is an exact
non-negative least-squares solve (scipy.optimize.nnls) of the relative residuals
(E + A N^-alpha + B D^-beta - L) / L, i.e. least squares on log L to first order. What is left is
a smooth function of one or two exponents: it is minimised from a grid (every grid point
evaluated, the best polished with bounded L-BFGS-B on the exponents only). No start values for
A, B or E are needed and none can be missed: for each exponent pair their optimum is exact.

Variants (keyword arguments of `fit_varpro`):
- `equal_exponents=True`: alpha = beta, the form of Gadre et al. (2024, eq. 4) for over-trained
  models, L(C, M) = E + (a M^eta + b M^-eta) C^-eta with C = 6 N D and M = D / N, which is this
  law with alpha = beta = 2 eta, a = A 6^eta, b = B 6^eta (`overtrain_params` gives a, b, eta);
- `irreducible=E0`: E fixed at E0 (a prior, e.g. the entropy of the data where it is known);
  only A and B are solved for.

Where it fails: with one distinct N or one distinct D the exponent of that axis is not identified
(an error); an exponent at the edge of the search range (0.01 or 3) or E = 0 means the data do
not pin the law down (a warning on the fit).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize, nnls

from ..errors import check_points
from ..result_types import MATMUL_CONVENTION, FitResult
from .chinchilla import HUBER_DELTA, chinchilla_params
from .objective import chinchilla_design, newton_batch, objective_batch, representable

__all__ = [
    "EXPONENT_RANGE",
    "fit_varpro",
    "grid_sse",
    "overtrain_params",
    "reduced_design",
    "solve_linear",
    "to_full_theta",
]

EXPONENT_RANGE = (0.01, 3.0)
_GRID = np.geomspace(0.02, 2.0, 30)


def solve_linear(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    alpha: float,
    beta: float,
    *,
    weights: np.ndarray | None = None,
    irreducible: float | None = None,
) -> tuple[np.ndarray, float]:
    """Exact non-negative (E, A, B) for fixed exponents; returns (coefs, weighted sum of squared
    relative residuals). With `irreducible`, E is that value and only (A, B) are solved."""
    w = np.ones_like(loss) if weights is None else weights
    scale = np.sqrt(w) / loss
    cols = [n**-alpha, d**-beta]
    target = loss if irreducible is None else loss - irreducible
    if irreducible is None:
        cols.insert(0, np.ones_like(loss))
    x = np.column_stack(cols) * scale[:, None]
    coef, rnorm = nnls(x, target * scale)
    if irreducible is not None:
        coef = np.concatenate([[irreducible], coef])
    return coef, float(rnorm**2)


def _profile(n, d, loss, weights, equal, irreducible):
    def f(x):
        alpha, beta = (x[0], x[0]) if equal else (x[0], x[1])
        return solve_linear(n, d, loss, alpha, beta, weights=weights, irreducible=irreducible)[1]

    return f


def grid_sse(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    pairs: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    irreducible: float | None = None,
) -> np.ndarray:
    """`solve_linear`'s sum of squares at every exponent pair of `pairs` (G, 2) at once.

    The non-negative least-squares optimum is the unconstrained least-squares fit on its own
    support, and every other support's fit with non-negative coefficients is a feasible point:
    so over the 7 (3 with E fixed) column subsets, the smallest sum of squares among the fits
    whose coefficients are all >= 0 is the NNLS optimum, exactly. Each subset is one batched QR
    over all pairs; a grid of 900 pairs costs what about 20 scipy nnls calls do.
    """
    w = np.ones_like(loss) if weights is None else weights
    scale = np.sqrt(w) / loss
    y = (loss if irreducible is None else loss - irreducible) * scale
    cols = [n[None, :] ** -pairs[:, :1], d[None, :] ** -pairs[:, 1:]]
    if irreducible is None:
        cols.insert(0, np.ones((pairs.shape[0], loss.size)))
    x = np.stack(cols, axis=2) * scale[None, :, None]  # (G, m, k)
    best = np.full(pairs.shape[0], float(y @ y))  # every coefficient 0
    k = x.shape[2]
    for mask in range(1, 2**k):
        cols_s = [j for j in range(k) if mask >> j & 1]
        xs = x[:, :, cols_s]
        q, r = np.linalg.qr(xs)
        coef = np.linalg.solve(r, (np.swapaxes(q, 1, 2) @ y)[..., None])  # (G, s, 1)
        resid = y[None, :] - (xs @ coef)[..., 0]
        sse = np.einsum("gm,gm->g", resid, resid)
        ok = np.all(coef[..., 0] >= 0, axis=1) & np.isfinite(sse)
        best = np.where(ok, np.minimum(best, sse), best)
    return best


def _search(f, equal: bool, n_keep: int, grid_f=None) -> tuple[np.ndarray, np.ndarray]:
    """Grid over the exponents, then bounded L-BFGS-B from the best grid point. Returns the
    optimum and the `n_keep` best grid points (starts for a robust polish). grid_f: f over all
    grid points at once (`grid_sse`), else f is called at each."""
    if equal:
        grid = _GRID[:, None]
    else:
        grid = np.array(np.meshgrid(_GRID, _GRID, indexing="ij")).reshape(2, -1).T
    pairs = np.column_stack([grid[:, 0], grid[:, -1]])
    vals = grid_f(pairs) if grid_f is not None else np.array([f(g) for g in grid])
    order = np.argsort(vals)
    best = grid[order[0]]
    res = minimize(f, best, method="L-BFGS-B", bounds=[EXPONENT_RANGE] * best.size,
                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000})  # fmt: skip
    x = np.asarray(res.x) if res.fun <= f(best) else best
    return x, grid[order[:n_keep]]


def reduced_design(n: np.ndarray, d: np.ndarray, equal_exponents: bool) -> np.ndarray:
    """approach 3's design (n, 3, 5), restricted to alpha = beta ((n, 3, 4): theta = (a, b, e,
    alpha)) when `equal_exponents`."""
    g = chinchilla_design(n, d)
    if not equal_exponents:
        return g
    return g @ _EQUAL


def to_full_theta(theta: np.ndarray, equal_exponents: bool) -> np.ndarray:
    """(a, b, e, alpha[, beta]) rows -> full (a, b, e, alpha, beta) rows."""
    theta = np.atleast_2d(theta)
    return theta @ _EQUAL.T if equal_exponents else theta


_EQUAL = np.zeros((5, 4))
_EQUAL[0, 0] = _EQUAL[1, 1] = _EQUAL[2, 2] = _EQUAL[3, 3] = _EQUAL[4, 3] = 1.0


def _plausible(theta: np.ndarray) -> np.ndarray:
    """Rows (a, b, e, alpha, beta) a Huber polish may end at: exponents within twice the search
    range and coefficients that exp() can hold. The damped Newton keeps any step that lowers the
    objective, and with few points one term can buy a lower one by running off to a wall: log A
    = 1016, alpha = 64 on ten runs of Porian et al.'s cosine table (an AVX-512 CPU; OverflowError
    in chinchilla_params before)."""
    exps = theta[:, 3:5]
    return representable(theta) & np.all((exps > 0) & (exps <= 2 * EXPONENT_RANGE[1]), axis=1)


def _log_theta(coef: np.ndarray, alpha: float, beta: float, equal: bool) -> np.ndarray:
    e, a, b = (math.log(max(float(c), 1e-8)) for c in coef)
    return np.array([a, b, e, alpha] if equal else [a, b, e, alpha, beta])


def fit_varpro(
    n_params,
    n_tokens,
    loss,
    *,
    equal_exponents: bool = False,
    irreducible: float | None = None,
    robust: bool = True,
    delta: float = HUBER_DELTA,
    n_starts: int = 4,
    weights=None,
    convention: str = MATMUL_CONVENTION,
) -> FitResult:
    """Fit E + A/N^alpha + B/D^beta by variable projection (see the module docstring).

    robust (default): the exact least-squares solution gives starts (the `n_starts` best
    exponent grid points, their (E, A, B) exact) for approach 3's objective, the sum of
    Huber_delta(log residuals), minimised by batched Newton over all parameters (E free only);
    robust=False returns the least-squares optimum itself ("-ls" in the law's name).
    weights: optional per-run weights (a bootstrap resample). Returns a FitResult with the
    Chinchilla parameter names (E, A, B, alpha, beta, a, b); the law is named "chinchilla-vp",
    "overtrain-vp" (alpha = beta), with "-ls" when not robust and "-fixedE" when E is fixed.
    """
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    robust = robust and irreducible is None
    law = (
        ("overtrain-vp" if equal_exponents else "chinchilla-vp")
        + ("" if robust else "-ls")
        + ("-fixedE" if irreducible is not None else "")
    )
    n_free = (2 if equal_exponents else 3) + (0 if irreducible is not None else 1)
    loss = check_points(loss=loss, n_free=n_free, law=law, sizes=(n, d), names=("N", "D"))
    w = None if weights is None else np.asarray(weights, float)
    f = _profile(n, d, loss, w, equal_exponents, irreducible)
    x, tops = _search(f, equal_exponents, n_starts, grid_f=lambda pairs: grid_sse(
        n, d, loss, pairs, weights=w, irreducible=irreducible))
    alpha, beta = (x[0], x[0]) if equal_exponents else (x[0], x[1])
    coef, sse = solve_linear(n, d, loss, alpha, beta, weights=w, irreducible=irreducible)
    e, a, b = (max(float(c), 1e-300) for c in coef)
    theta = np.array([math.log(a), math.log(b), math.log(e), alpha, beta])
    objective, ran_off = sse, False
    if robust:
        starts = [_log_theta(coef, alpha, beta, equal_exponents)]
        for t in tops:
            ta, tb = (t[0], t[0]) if equal_exponents else (t[0], t[1])
            c, _ = solve_linear(n, d, loss, ta, tb, weights=w)
            starts.append(_log_theta(c, ta, tb, equal_exponents))
        design = reduced_design(n, d, equal_exponents)
        sol = newton_batch(np.array(starts), design, np.log(loss), delta=delta, weights=w,
                           max_iter=300)  # fmt: skip
        full, obj = to_full_theta(sol.theta, equal_exponents), sol.objective
        obj = np.where(_plausible(full), obj, np.nan)
        ran_off = bool(np.isnan(obj).all())
        if ran_off:  # every polish left the exponents' range: the best start stays
            full = to_full_theta(np.array(starts), equal_exponents)
            obj = objective_batch(np.array(starts), design, np.log(loss), delta=delta, weights=w)
        i = int(np.nanargmin(obj))
        theta = full[i]
        alpha, beta, e, objective = theta[3], theta[4], math.exp(theta[2]), obj[i]
    params = chinchilla_params(theta)
    if irreducible is not None:
        params["E"] = float(irreducible)
    warns = []
    if robust and ran_off:
        warns.append(f"{law}: every Huber polish ran off the exponents' range; the best of its "
                     "starts is kept unpolished (the runs do not pin the law down)")  # fmt: skip
    lo, hi = EXPONENT_RANGE
    if min(alpha, beta) <= lo * 1.01 or max(alpha, beta) >= hi * 0.99:
        warns.append(
            f"{law}: an exponent sits at the edge of its search range (alpha {alpha:.3g}, "
            f"beta {beta:.3g}): the data do not pin it down; widen the N or D range"
        )
    if irreducible is None and params["E"] <= 1e-6:
        warns.append(f"{law}: irreducible loss E = 0: the curves do not bend towards a floor")
    return FitResult(
        law=law,
        params=params,
        objective=float(objective),
        converged=True,
        message="exact NNLS for (E, A, B); exponents by grid + L-BFGS-B"
        + ("; Huber polish by batched Newton" if robust else ""),
        n_points=loss.size,
        warnings=tuple(warns),
        convention=convention,
        details={"equal_exponents": equal_exponents, "irreducible": irreducible},
    )


def overtrain_params(params: dict[str, float]) -> dict[str, float]:
    """Gadre et al.'s (a, b, eta, E) of L(C, M) = E + (a M^eta + b M^-eta) C^-eta from an
    equal-exponent fit (alpha = beta = 2 eta, C = 6 N D)."""
    eta = params["alpha"] / 2
    return {"E": params["E"], "a": params["A"] * 6**eta, "b": params["B"] * 6**eta, "eta": eta}
