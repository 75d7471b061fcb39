"""One irreducible loss for every group of a table: the candidate laws with E shared.

Groups of one table are often scored on the same evaluation text: Gadre et al. 2024 train on three
corpora and score every model on C4's validation split. In L = E + A/N^alpha + B/D^beta, E is the
loss no model size or token count removes, which is a property of the evaluation text more than
of the training corpus; each group keeps its own A, B and exponents (how fast its models approach
the floor). Fitting one E to every group lets the groups that bend towards the floor pin it for
those that do not yet, where a separate fit per group leaves E to trade off against A, B and the
exponents within the group's own narrow range. Whether a table is better fitted this way is not
assumed: `analysis/prediction/groups.py` back-tests both, pooled over the groups, and keeps the
better.

The fit is approach 3's objective (the sum of Huber(delta = 1e-3) of log residuals over every
group's runs) in one parameter vector theta = (log E, then per group log A, log B, alpha[, beta]):
log L = LSE(a_g - alpha_g log N, b_g - beta_g log D, e) is affine in theta inside the LSE, so the
batched Newton of analysis/laws/objective.py minimises it as it does one group's law. Starts: E on a
grid below the smallest loss, each group's exact least-squares fit at that E
(`varpro.fit_varpro(irreducible=E)`), the 4 best E by summed squared error, and each group's own
free fit with their mean log E. Bootstrap: Bayesian weights over every group's runs at once,
refitted from the optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..result_types import FitResult
from .bootstrap import resample_weights
from .chinchilla import HUBER_DELTA, chinchilla_params
from .objective import newton_batch
from .varpro import fit_varpro

__all__ = ["SharedFit", "bootstrap_shared", "fit_shared_floor", "joint_design"]

_E_GRID = 12  # E values profiled for starts, from 0 to just below the smallest loss
_N_STARTS = 4


def joint_design(parts: list[tuple[np.ndarray, np.ndarray]], equal_exponents: bool) -> np.ndarray:
    """G of shape (n_total, 3, P) with z = G @ theta = (a_g - alpha_g log N, b_g - beta_g log D,
    e) for each run of group g; P = 1 + groups x (3 if `equal_exponents` else 4)."""
    q = 3 if equal_exponents else 4
    total = sum(len(n) for n, _ in parts)
    g = np.zeros((total, 3, 1 + q * len(parts)))
    g[:, 2, 0] = 1.0
    row = 0
    for k, (n, d) in enumerate(parts):
        rows = slice(row, row + len(n))
        base = 1 + q * k
        g[rows, 0, base] = 1.0
        g[rows, 1, base + 1] = 1.0
        g[rows, 0, base + 2] = -np.log(n)
        g[rows, 1, base + (2 if equal_exponents else 3)] = -np.log(d)
        row += len(n)
    return g


def group_theta(theta: np.ndarray, k: int, equal_exponents: bool) -> np.ndarray:
    """Rows of the joint theta -> group k's (log A, log B, log E, alpha, beta) rows."""
    theta = np.atleast_2d(theta)
    q = 3 if equal_exponents else 4
    base = 1 + q * k
    beta = theta[:, base + 2] if equal_exponents else theta[:, base + 3]
    return np.stack([theta[:, base], theta[:, base + 1], theta[:, 0], theta[:, base + 2], beta], 1)


@dataclass(frozen=True)
class SharedFit:
    """The joint fit: one FitResult per group (their E equal) and what a bootstrap refits."""

    fits: dict[str, FitResult]
    theta: np.ndarray
    design: np.ndarray
    log_loss: np.ndarray
    equal_exponents: bool


def _group_start(table: pd.DataFrame, e: float | None, equal: bool) -> tuple[list[float], float]:
    """Group's (log A, log B, alpha[, beta]) and its E: exact least squares at E = `e`, or free."""
    n, d, y = (table[c].to_numpy(float) for c in ("n_params", "n_tokens", "loss"))
    fit = fit_varpro(n, d, y, equal_exponents=equal, irreducible=e, robust=False)
    p = fit.params
    coef = [math.log(max(p["A"], 1e-8)), math.log(max(p["B"], 1e-8)), p["alpha"]]
    return coef + ([] if equal else [p["beta"]]), fit.objective if e is not None else p["E"]


def fit_shared_floor(tables: dict[str, pd.DataFrame], *, equal_exponents: bool) -> SharedFit:
    """Fit one E and per-group A, B, exponents to every group's runs (module docstring).

    tables: group name -> its runs (columns n_params, n_tokens, loss), each enough for its own
    law. The law is named "overtrain-vp[shared-E]" or "chinchilla-vp[shared-E]"."""
    names = list(tables)
    parts = [
        (t["n_params"].to_numpy(float), t["n_tokens"].to_numpy(float)) for t in tables.values()
    ]
    log_loss = np.log(np.concatenate([t["loss"].to_numpy(float) for t in tables.values()]))
    design = joint_design(parts, equal_exponents)
    floor = min(float(t["loss"].min()) for t in tables.values())
    profiled = []
    for e in np.linspace(0.0, 0.98 * floor, _E_GRID):
        coefs, sse = zip(*(_group_start(t, float(e), equal_exponents) for t in tables.values()),
                         strict=True)  # fmt: skip
        profiled.append((float(sum(sse)), [math.log(max(e, 1e-8)), *np.concatenate(coefs)]))
    profiled.sort(key=lambda s: s[0])
    starts = [theta for _, theta in profiled[:_N_STARTS]]
    free = [_group_start(t, None, equal_exponents) for t in tables.values()]
    mean_e = float(np.mean([math.log(max(e, 1e-8)) for _, e in free]))
    starts.append([mean_e, *np.concatenate([c for c, _ in free])])
    sol = newton_batch(np.array(starts), design, log_loss, delta=HUBER_DELTA, max_iter=500)
    best = int(np.nanargmin(sol.objective))
    theta = sol.theta[best]
    form = "overtrain-vp" if equal_exponents else "chinchilla-vp"
    fits = {}
    for k, name in enumerate(names):
        params = chinchilla_params(group_theta(theta, k, equal_exponents)[0])
        fits[name] = FitResult(
            law=f"{form}[shared-E]",
            params=params,
            objective=float(sol.objective[best]),
            converged=bool(sol.converged[best]),
            message=f"one E for {len(names)} groups; Huber objective by batched Newton",
            n_points=len(parts[k][0]),
            details={"equal_exponents": equal_exponents, "shared_irreducible": names},
        )
    return SharedFit(fits, theta, design, log_loss, equal_exponents)


def bootstrap_shared(
    shared: SharedFit, *, n_resamples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Refits of the joint law on Bayesian-bootstrap weights over every group's runs at once:
    per group, (n_kept, 5) rows of (log A, log B, log E, alpha, beta). Failed refits dropped."""
    weights = resample_weights(shared.log_loss.size, n_resamples, rng)
    starts = np.repeat(shared.theta[None], n_resamples, 0)
    sol = newton_batch(starts, shared.design, shared.log_loss, delta=HUBER_DELTA,
                       weights=weights, max_iter=300)  # fmt: skip
    ok = np.isfinite(sol.objective) & np.isfinite(sol.theta).all(axis=1)
    return {name: group_theta(sol.theta[ok], k, shared.equal_exponents)
            for k, name in enumerate(shared.fits)}  # fmt: skip
