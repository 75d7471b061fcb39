"""The law forms a recommendation can hold, behind one interface: its loss at (N, D), its
compute-optimal allocation, its bootstrap refits and their spread at (N, D).

Two families: the (N, D) power laws of `laws.varpro` (approach 3's form and Gadre et al.'s
over-training form; bootstrap rows (ln A, ln B, ln E, alpha, beta)) and approach 2 made joint
(`laws.joint_isoflop`, offered on IsoFLOP grids only; rows (ln E, ln A0, gamma, ln k, ln G0, a)).
A FitResult says which by its law's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from ..laws.chinchilla import chinchilla_loss, compute_optimal
from ..laws.joint_isoflop import LAW as JOINT
from ..laws.joint_isoflop import joint_log_grad, joint_log_loss, joint_loss, joint_optimal
from ..result_types import Allocation, FitResult

__all__ = ["JOINT", "is_joint", "law_loss", "law_optimal", "law_theta", "thetas_log_loss",
           "thetas_optimal_n"]


def is_joint(fit: FitResult) -> bool:
    """Whether `fit` is approach 2 made joint (not an (N, D) power law)."""
    return fit.law == JOINT


def law_loss(fit: FitResult, n_params, n_tokens) -> np.ndarray:
    """The fitted law's loss at (N, D)."""
    if is_joint(fit):
        return np.asarray(joint_loss(fit, n_params, n_tokens), float)
    return np.asarray(chinchilla_loss(fit.params, n_params, n_tokens), float)


def law_optimal(fit: FitResult, flops) -> Allocation:
    """The compute-optimal N*, D* and loss at budget(s) C (as `chinchilla.compute_optimal`)."""
    if not is_joint(fit):
        return compute_optimal(fit.params, flops, convention=fit.convention)
    n, d, loss = joint_optimal(fit, flops)
    conv = (lambda x: float(x)) if np.ndim(flops) == 0 else (lambda x: x)  # noqa: E731
    return Allocation(flops=conv(np.asarray(flops, float)), n_params=conv(n), n_tokens=conv(d),
                      tokens_per_param=conv(d / n), loss=conv(loss),
                      convention=fit.convention)  # fmt: skip


def thetas_log_loss(fit: FitResult | None, thetas: np.ndarray, n_params, n_tokens) -> np.ndarray:
    """ln L at each (N, D) (P points) under each bootstrap row of `fit`'s form (None: a power
    law's rows): (B, P), inf or NaN where a refit overflows."""
    th = np.asarray(thetas, float)
    if fit is not None and is_joint(fit):
        return joint_log_loss(th, float(fit.details["ln_c0"]), n_params, n_tokens)
    ln = np.log(np.atleast_1d(np.asarray(n_params, float)))
    ld = np.log(np.atleast_1d(np.asarray(n_tokens, float)))
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.stack([th[:, 0, None] - th[:, 3, None] * ln, th[:, 1, None] - th[:, 4, None] * ld,
                      np.broadcast_to(th[:, 2, None], (th.shape[0], ln.size))])  # fmt: skip
        return np.logaddexp.reduce(z, axis=0)


def law_theta(fit: FitResult) -> tuple[np.ndarray, Callable[..., np.ndarray] | None]:
    """The fit's parameter vector in its bootstrap rows' coordinates, and the gradient of ln L in
    them at (N, D) (None: a power law's, `planning.value.log_loss_grad`)."""
    if is_joint(fit):
        return np.asarray(fit.details["theta"], float), partial(
            joint_log_grad, ln_c0=float(fit.details["ln_c0"]))  # fmt: skip
    p = fit.params
    return np.array([p["log_A"], p["log_B"], p["log_E"], p["alpha"], p["beta"]], float), None


def thetas_optimal_n(fit: FitResult, thetas: np.ndarray, flops: float) -> np.ndarray:
    """N*(C) under each bootstrap row of `fit`'s form (NaN or inf where a refit has none)."""
    th = np.asarray(thetas, float)
    with np.errstate(all="ignore"):
        if is_joint(fit):
            return np.exp(th[:, 4] + th[:, 5] * (math.log(flops) - float(fit.details["ln_c0"])))
        alpha, beta = th[:, 3], th[:, 4]
        s = alpha + beta
        log_g = (np.log(alpha) + th[:, 0] - np.log(beta) - th[:, 1]) / s
        return np.exp(log_g + beta / s * math.log(flops / 6))
