"""Approach 2's fits for many bootstrap resamples at once (`isoflop.bootstrap_isoflop`).

The same fits as `isoflop.fit_parabolas` and `isoflop.fit_loss_law`, with a leading resample axis:
- `parabolas_batch`: the parabolas of one budget for every resample, one batched least squares
  (numpy.polyfit's scaled Vandermonde matrix and pseudo-inverse, stacked), accepted or rejected by
  the same tests;
- `line_batch`: a least-squares line per resample through that resample's usable budgets (a mask);
- `loss_law_batch`: L*(C) = E + k_L C^-gamma per resample, E profiled on `fit_loss_law`'s grid and
  polished by a batched bounded Levenberg-Marquardt (`bounded_lm`) in place of one scipy
  least_squares per resample (4 of the 250-row report's 15 s went there).
The tests pin each to its unbatched twin (the same answers to solver tolerance, bounds active).
Imports numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "E_GRID",
    "bounded_lm",
    "line_batch",
    "loss_law_batch",
    "parabolas_batch",
    "polish_loss_law",
]

# fractions of the smallest L* tried for E before the polish (`isoflop.fit_loss_law`'s grid)
E_GRID = np.concatenate([[0.0], 1 - np.geomspace(1, 1e-3, 60)[1:]])


def parabolas_batch(x, y, *, min_points: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One budget's parabola y = c2 x^2 + c1 x + c0 (x = ln N) for each row of x, y (R, m):
    -> (x_star, l_star, accepted), each (R,). A row is accepted as `isoflop.fit_parabolas` accepts
    a budget: >= min_points distinct sizes, c2 > 0, and the vertex and the smallest loss inside
    the sizes run."""
    order = np.argsort(x, axis=1)  # the sort np.argsort gives one row: the same order of ties
    x, y = np.take_along_axis(x, order, 1), np.take_along_axis(y, order, 1)
    m = x.shape[1]
    n_distinct = 1 + np.count_nonzero(np.diff(x, axis=1), axis=1)
    # np.polyfit's recipe, stacked: columns scaled to unit norm, then least squares (pinv)
    lhs = x[..., None] ** np.arange(2, -1, -1)  # (R, m, 3)
    scale = np.sqrt(np.sum(lhs * lhs, axis=1))  # (R, 3)
    lhs = lhs / scale[:, None, :]
    coef = (np.linalg.pinv(lhs, rcond=m * np.finfo(float).eps) @ y[..., None])[..., 0] / scale
    c2, c1, c0 = coef.T
    with np.errstate(divide="ignore", invalid="ignore"):
        x_star = -c1 / (2 * c2)
        l_star = c0 - c1 * c1 / (4 * c2)
    i_min = np.argmin(y, axis=1)
    edge = (x_star <= x[:, 0]) | (i_min == 0) | (x_star >= x[:, -1]) | (i_min == m - 1)
    accepted = (n_distinct >= min_points) & (c2 > 0) & ~edge
    return x_star, l_star, accepted


def line_batch(x, y, mask) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line y = icpt + slope x per row of y (R, K) through its points where `mask`
    (R, K) holds (x (K,) shared) -> (slope, icpt), each (R,); rows need two distinct x."""
    w = mask.astype(float)
    n = w.sum(axis=1)
    x_mean = (w @ x) / n
    xc = x[None] - x_mean[:, None]
    y = np.where(mask, y, 0.0)
    y_mean = np.sum(w * y, axis=1) / n
    slope = np.sum(w * xc * (y - y_mean[:, None]), axis=1) / np.sum(w * xc * xc, axis=1)
    return slope, y_mean - slope * x_mean


def bounded_lm(
    resid_jac, x0, lower, upper, *, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on B least-squares problems at once, each x (B, P) in its own box.

    resid_jac(x, rows) -> (residuals (b, K), Jacobian (b, K, P)) for the rows `rows` of the batch
    (masked residuals are 0). A step solves (H + lam diag(H)) s = -g with H = J^T J, g = J^T r;
    a parameter at a bound that the gradient pushes outwards is held there (its row of H and g
    dropped: projected Gauss-Newton), the candidate is clipped into the box, and it is kept only
    if the cost falls (lam shrinks), else lam grows. A row stops when no damping lowers its cost,
    or its cost stops moving (1e-15 relative): far tighter than scipy least_squares' 1e-12, so
    the answers agree to scipy's tolerance. Returns (x, stopped): rows still moving after
    `max_iter` steps are not stopped (LM crawls along a curved valley, e.g. a loss law whose
    gamma -> 0 leaves E and k_L one direction).
    """
    x = np.clip(np.array(x0, float), lower, upper)
    b, p = x.shape
    lam = np.full(b, 1e-3)
    active = np.ones(b, bool)
    eye = np.eye(p)

    def cost(xs, rows):
        r, _ = resid_jac(xs, rows)
        return 0.5 * np.sum(r * r, axis=1)

    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        xi = x[idx]
        r, jac = resid_jac(xi, idx)
        f = 0.5 * np.sum(r * r, axis=1)
        g = np.einsum("bkp,bk->bp", jac, r)
        h = np.einsum("bkp,bkq->bpq", jac, jac)
        held = ((xi <= lower[idx]) & (g > 0)) | ((xi >= upper[idx]) & (g < 0))  # (b, P)
        free = (~held).astype(float)
        g = g * free
        h = h * free[:, :, None] * free[:, None, :] + eye * (1 - free)[:, :, None]
        damp = np.abs(np.diagonal(h, axis1=1, axis2=2)) + 1e-300
        moved = np.zeros(idx.size, bool)
        f_new = f.copy()
        for _ in range(12):  # damping trials: a rejected step costs a residual call only
            todo = ~moved & (lam[idx] <= 1e12)
            if not todo.any():
                break
            a = h[todo] + (lam[idx][todo, None] * damp[todo])[:, :, None] * eye
            step = -np.linalg.solve(a, g[todo][..., None])[..., 0]
            cand = np.clip(xi[todo] + step, lower[idx][todo], upper[idx][todo])
            fc = cost(cand, idx[todo])
            good = np.isfinite(fc) & (fc < f[todo])
            sub = np.flatnonzero(todo)
            x[idx[sub[good]]], f_new[sub[good]] = cand[good], fc[good]
            lam[idx[sub[good]]] = np.maximum(lam[idx[sub[good]]] / 10, 1e-15)
            lam[idx[sub[~good]]] *= 10
            moved[sub[good]] = True
        # stop: no damping helps (a stationary point), or the cost no longer moves
        stop = ~moved | (f - f_new <= 1e-15 * f)
        active[idx[stop]] = False
    return x, ~active


def polish_loss_law(log_c, log_l, e_max: float, x0) -> tuple[float, float, float]:
    """Least squares of ln(E + exp(icpt - gamma ln C)) - ln L* from x0 = (E, icpt, gamma), E in
    [0, e_max]: scipy least_squares (trust-region reflective, analytic Jacobian, tolerances
    1e-12) -> (E, icpt, gamma). `isoflop.fit_loss_law`'s polish."""
    from scipy.optimize import least_squares

    def resid(x):
        return np.log(x[0] + np.exp(x[1] - x[2] * log_c)) - log_l

    def jac(x):  # analytic: finite differences cost 3 more residual calls per step
        u = np.exp(x[1] - x[2] * log_c)
        den = x[0] + u
        return np.stack([1 / den, u / den, -log_c * u / den], axis=1)

    res = least_squares(resid, list(x0), jac=jac, bounds=([0.0, -np.inf, -np.inf],
                        [e_max, np.inf, np.inf]), xtol=1e-12, ftol=1e-12)  # fmt: skip
    e, icpt, gamma = (float(v) for v in res.x)
    return e, icpt, gamma


def loss_law_batch(
    log_c, l_star, mask, *, irreducible: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`isoflop.fit_loss_law` per row of l_star (R, K), through the budgets where `mask` holds
    (log_c (K,) shared; rows need two) -> (E, ln k_L, gamma), each (R,).

    Rows with >= 4 budgets fit E in [0, min L* (1 - 1e-9)] (profiled on `E_GRID`, polished by
    `bounded_lm`); the others take E = `irreducible` if below their min L*, else 0."""
    log_c = np.asarray(log_c, float)
    l_safe = np.where(mask, l_star, 1.0)
    log_l = np.log(l_safe)
    l_min = np.min(np.where(mask, l_star, np.inf), axis=1)
    r_count = mask.sum(axis=1)
    free = r_count >= 4
    e_fixed = 0.0 if irreducible is None else float(irreducible)
    e = np.where(~free & (e_fixed < l_min), e_fixed, 0.0)
    slope, icpt = line_batch(log_c, np.log(np.maximum(l_safe - e[:, None], 1e-300)), mask)
    gamma = -slope
    rows = np.flatnonzero(free)
    if rows.size:
        grid = l_min[rows, None] * E_GRID  # (r, G)
        mk = mask[rows]
        # masked budgets hold L* = 1, possibly below E: a placeholder, never read
        ly = np.log(np.maximum(l_safe[rows, None, :] - grid[..., None], 1e-300))  # (r, G, K)
        g_count = grid.shape[1]
        s, ic = line_batch(log_c, ly.reshape(-1, log_c.size), np.repeat(mk, g_count, axis=0))
        s, ic = s.reshape(rows.size, g_count), ic.reshape(rows.size, g_count)
        fitted = np.log(grid[..., None] + np.exp(ic[..., None] + s[..., None] * log_c))
        sse = np.sum(np.where(mk[:, None], (fitted - log_l[rows, None]) ** 2, 0.0), axis=2)
        i = np.argmin(sse, axis=1)  # the first of equal ones, as fit_loss_law
        pick = np.arange(rows.size)
        # centred in ln C: ln k_L and gamma are nearly collinear on raw ln C (~40)
        lc0 = float(log_c.mean())
        x0 = np.stack([grid[pick, i], ic[pick, i] + s[pick, i] * lc0, -s[pick, i]], axis=1)
        lcc = log_c - lc0

        def resid_jac(x, sub):
            u = np.exp(x[:, 1, None] - x[:, 2, None] * lcc)
            den = x[:, 0, None] + u
            m = mask[rows[sub]]
            r = np.where(m, np.log(den) - log_l[rows[sub]], 0.0)
            jac = np.stack([1 / den, u / den, -lcc * u / den], axis=2) * m[..., None]
            return r, jac

        lower = np.zeros((rows.size, 3))
        lower[:, 1:] = -np.inf
        upper = np.full((rows.size, 3), np.inf)
        upper[:, 0] = l_min[rows] * (1 - 1e-9)
        x, stopped = bounded_lm(resid_jac, x0, lower, upper)
        e[rows], gamma[rows] = x[:, 0], x[:, 2]
        icpt[rows] = x[:, 1] + x[:, 2] * lc0
        for j in np.flatnonzero(~stopped):  # the rare crawler: the unbatched polish instead
            m = mask[rows[j]]
            e_j, icpt_j, gamma_j = polish_loss_law(
                log_c[m], log_l[rows[j], m], upper[j, 0],
                (grid[j, i[j]], ic[j, i[j]], -s[j, i[j]]),
            )  # fmt: skip
            e[rows[j]], icpt[rows[j]], gamma[rows[j]] = e_j, icpt_j, gamma_j
    return e, icpt, gamma
