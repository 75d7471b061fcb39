"""What runs are worth to a prediction: the expected variance of its calibrated interval after
they are trained.

The recommended law's interval at a target point (N, D) is log L_hat +- q sigma with
(analysis/prediction/calibration.py)

    sigma^2 = sd_boot^2 + s0^2 + (k x^g)^2,

sd_boot the bootstrap spread of the prediction, s0 the run-to-run noise, k x^g the law's
extrapolation error at x = `ladder.distance` beyond the runs. New runs shrink two of the three:
- sd_boot: to first order in the law's parameters theta = (log A, log B, log E, alpha, beta),
  sd_boot^2 = h' Sigma h, Sigma the bootstrap covariance of theta and h the gradient of log L
  at the target. A run at (N, D) with gradient g, measured with noise variance s^2, updates
  Sigma -> Sigma - Sigma g g' Sigma / (s^2 + g' Sigma g) (a Gaussian posterior update, the
  Sherman-Morrison formula); h' Sigma h falls by (h' Sigma g)^2 / (s^2 + g' Sigma g). This term
  alone is V-optimal design (the expected prediction variance at the targets; Li et al. 2026's
  "intra" term and their V-opt baseline);
- x: a run beyond the current reach moves the reach, and the target's distance falls.
s0 is what it is (seeds measure it; they do not lower it).

The linear model is used for ratios only: sd_boot^2 after = sd_boot^2 now x (h' Sigma_S h /
h' Sigma h), so the variance "now" is exactly the printed interval's. What it does not model:
a new rung also adds a back-test fold (k better measured), and a run may reveal misspecification
the law cannot express; both favour extending, which this criterion already does through x.
Several targets (a set of held-out runs) average their sigma^2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..prediction.calibration import log_prediction_sd
from ..prediction.forms import law_theta
from ..prediction.ladder import distance

__all__ = [
    "K_PRIOR", "TargetState", "log_loss_grad", "robust_cov", "sigma2", "target_state", "with_runs",
]

# k (extrapolation log-error per unit of log distance) assumed where a table has no back-test (too
# few rungs): the median k of the recommended law over the 96 synthetic tables of
# `python benchmarks/interval_calibration.py --rules` (4 truths x 2 noise levels x 12 seeds, four
# smallest sizes fitted: 0.0041; per truth and noise 0.0025 to 0.0091). Without it a table with
# no back-test would value no run beyond its reach.
K_PRIOR = 0.004


def log_loss_grad(theta: np.ndarray, n_params, n_tokens) -> np.ndarray:
    """d log L / d theta at each (N, D): (P, 5) rows, theta = (log A, log B, log E, alpha, beta)."""
    a, b, e, alpha, beta = (float(v) for v in theta)
    ln = np.log(np.atleast_1d(np.asarray(n_params, float)))
    ld = np.log(np.atleast_1d(np.asarray(n_tokens, float)))
    z = np.stack([a - alpha * ln, b - beta * ld, np.full(ln.shape, e)])  # log of each term
    w = np.exp(z - np.logaddexp.reduce(z, axis=0))  # each term's share of L
    return np.stack([w[0], w[1], w[2], -w[0] * ln, -w[1] * ld], axis=1)


def robust_cov(thetas: np.ndarray) -> np.ndarray:
    """The covariance of bootstrap refits, without the refits more than 6 robust sds from the
    median on any parameter (a refit that ran E to its bound would dominate a plain covariance)."""
    th = np.asarray(thetas, float)
    th = th[np.isfinite(th).all(axis=1)]
    med = np.median(th, axis=0)
    mad = 1.4826 * np.median(np.abs(th - med), axis=0)
    keep = (np.abs(th - med) <= 6 * np.maximum(mad, 1e-12)).all(axis=1)
    th = th[keep] if keep.sum() > 5 else th
    return np.cov(th, rowvar=False) if th.shape[0] > 1 else np.zeros((th.shape[1],) * 2)


@dataclass(frozen=True)
class TargetState:
    """What the target's interval variance depends on, before and after runs are added.

    theta: the law's parameters; cov: their covariance, updated as runs are added; h: gradients
    of log L at the targets (T, P); boot_var: each target's bootstrap variance of log L_hat now
    (the printed interval's), scaled by the linear model's ratio; s0, noise: the residual scale
    and a new run's noise variance (log); k, growth: the calibrated extrapolation error;
    reach: the runs' largest N, D and N x D; targets: (T, 2) rows of N, D."""

    theta: np.ndarray
    cov: np.ndarray
    h: np.ndarray
    boot_var: np.ndarray
    s0: float
    noise: float
    k: float
    growth: float
    reach: tuple[float, float, float]
    targets: np.ndarray
    ref: np.ndarray | None = None  # h' Sigma h now, per target (set on creation)
    # d log L / d theta at (N, D) rows: the law's form's (`prediction.forms.law_theta`)
    grad: Callable[..., np.ndarray] = field(default=log_loss_grad)

    def __post_init__(self) -> None:
        if self.ref is None:
            object.__setattr__(self, "ref", np.einsum("ti,ij,tj->t", self.h, self.cov, self.h))


def sigma2(state: TargetState) -> float:
    """The mean over the targets of sigma^2 = sd_boot^2 + s0^2 + (k x^g)^2 (module docstring)."""
    hsh = np.einsum("ti,ij,tj->t", state.h, state.cov, state.h)
    base = np.asarray(state.ref)
    ratio = np.where(base > 0, hsh / np.where(base > 0, base, 1.0), 1.0)
    x = distance(state.reach, state.targets[:, 0], state.targets[:, 1])
    grow = state.k * x**state.growth if state.k else np.zeros_like(x)
    return float(np.mean(state.boot_var * ratio + state.s0**2 + grow**2))


def with_runs(state: TargetState, n_params, n_tokens) -> TargetState:
    """The state after training runs at (N, D) pairs: the covariance updated one run at a time,
    the reach moved to cover them."""
    n = np.atleast_1d(np.asarray(n_params, float))
    d = np.atleast_1d(np.asarray(n_tokens, float))
    cov = state.cov.copy()
    for g in state.grad(state.theta, n, d):
        sg = cov @ g
        denom = state.noise + float(g @ sg)
        if denom > 0 and math.isfinite(denom):
            cov = cov - np.outer(sg, sg) / denom
    n_max, d_max, nd_max = state.reach
    reach = (max(n_max, float(n.max())), max(d_max, float(d.max())),
             max(nd_max, float((n * d).max())))  # fmt: skip
    return replace(state, cov=cov, reach=reach)  # `ref` kept: ratios stay against "now"


def target_state(rec, targets: np.ndarray, *, noise_sd: float | None = None) -> TargetState:
    """The state of a `prediction.recommend.Recommendation` at targets ((T, 2) rows of N, D):
    noise_sd, the measured seed noise (log), else the fit's residual scale s0 stands in."""
    assert rec.fit is not None and rec.thetas is not None and rec.calibration is not None
    c = rec.calibration
    theta, grad = law_theta(rec.fit)
    grad = grad or log_loss_grad
    t = np.atleast_2d(np.asarray(targets, float))
    boot = log_prediction_sd(rec.thetas, t[:, 0], t[:, 1], fit=rec.fit) ** 2
    noise = noise_sd if noise_sd is not None and noise_sd > 0 else max(c.s0, 1e-3)
    return TargetState(
        theta=theta,
        cov=robust_cov(rec.thetas),
        h=grad(theta, t[:, 0], t[:, 1]),
        boot_var=boot,
        s0=c.s0,
        noise=noise**2,
        k=c.k if c.n_points else K_PRIOR,
        growth=c.growth,
        reach=rec.reach,
        targets=t,
        grad=grad,
    )
