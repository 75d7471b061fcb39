"""Prediction intervals that hold when the law is misspecified (flags for ill-determined fits:
`analysis/laws/identifiability.py`).

An interval on log L at a point x = `ladder.distance` beyond the training runs combines three
independent spreads:
- the bootstrap spread of the prediction (runs reweighted, the law refitted: estimation noise);
- s0, the robust scale of the fit's own log residuals (run-to-run noise: seeds, data order);
- k x, the law's extrapolation error, growing with the distance: k is calibrated from the
  table's own back-test (leave-largest-rung-out down the ladder, `ladder.ladder_folds`), as the
  root mean square of sqrt(max(e^2 - s0^2, 0)) / x over the held-out runs, where e is a held-out
  run's log error and x its distance from that fold's training runs.
sigma^2 = sd_boot^2 + s0^2 + (k x)^2, and the interval is log L_hat +- q sigma with q the Student-t
quantile on (held-out runs behind k) - 1 degrees of freedom: k is estimated, not known. Why that
many: on synthetic tables from four laws none of the candidates can express exactly
(benchmarks/interval_calibration.py: Kaplan's L(N, D), an N x D interaction term, a broken power
law in N, and Hoffmann's law itself; 0.5% noise; 4 rungs fitted, 2 larger rungs predicted) it gave
79% and 95% coverage for nominal 80% and 95%, where the Gaussian quantile gave 73% and 90% and the
more cautious n_folds + 1 degrees of freedom 90% and 98%. Intervals are symmetric in log L: a
law that errs to one side at every rung widens its interval rather than shifting its prediction.

The extrapolation term grows linearly with the distance unless the table shows a misfit of
curvature: on an IsoFLOP ladder whose frontier accelerates (`isoflop.accelerating_frontier`: the
best loss per budget falls faster at each larger budget, which no law here can follow), the law
bends the wrong way, and a curvature mismatch grows with the square of the distance (a Taylor
expansion about the last rung). Then `growth` = 2: k is calibrated as error / x^2 and sigma carries
(k x^2)^2. It changes nothing elsewhere (no shipped suite and no synthetic table of
benchmarks/interval_calibration.py has an accelerating frontier, so every number there is as
before). On the demo's grid, whose frontier accelerates through 1e11-1e12 FLOPs, a run trained
near the optimum at 1e13 reached 1.516 (N = 32,768), below the linear 95% interval there,
[1.532, 2.297]; the quadratic one is [1.343, 2.619] (docs/fidelity.md). This rule was written
after that miss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from ..laws.bootstrap import resample_weights
from ..laws.chinchilla import HUBER_DELTA
from ..laws.objective import newton_batch
from ..laws.varpro import reduced_design, to_full_theta
from ..result_types import FitResult

__all__ = [
    "Calibration",
    "bootstrap_thetas",
    "calibrate",
    "log_sigma",
    "robust_scale",
]


@dataclass(frozen=True)
class Calibration:
    """The extrapolation-error model of one law on one table (see the module docstring)."""

    s0: float  # robust scale of the log residuals in the full fit
    k: float  # extrapolation log-error per unit of log distance
    n_folds: int
    n_points: int  # held-out runs behind k
    growth: float = 1.0  # the extrapolation error grows as k x^growth (2: curvature misfit)

    def quantile(self, level: float) -> float:
        """The two-sided `level` quantile multiplying sigma (Gaussian when there was no
        back-test: then k = 0 and the recommendation carries a warning)."""
        # without a back-test sigma is bootstrap + noise only, both estimated from every run
        df = max(self.n_points - 1, 1) if self.n_points else math.inf
        return float(student_t.ppf(0.5 + level / 2, df=df))


def calibrate(
    s0: float, errors: np.ndarray, distances: np.ndarray, n_folds: int, *, growth: float = 1.0
) -> Calibration:
    """k from the back-test's held-out log errors and their distances (points at distance 0
    carry no information on k and are left out); the error is modelled as k x^`growth`."""
    e, x = np.asarray(errors, float), np.asarray(distances, float)
    use = x > 1e-9
    if not use.any():
        return Calibration(s0, 0.0, n_folds, 0, growth)
    excess = np.sqrt(np.maximum(e[use] ** 2 - s0**2, 0.0)) / x[use] ** growth
    return Calibration(s0, float(np.sqrt(np.mean(excess**2))), n_folds, int(use.sum()), growth)


def robust_scale(log_residuals: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (a standard deviation under Gaussian noise)."""
    r = np.asarray(log_residuals, float)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def log_sigma(calib: Calibration, distance, boot_sd) -> np.ndarray:
    """sigma of log L at the given distances, with the bootstrap's sd of log L_hat there."""
    x, sb = np.asarray(distance, float), np.asarray(boot_sd, float)
    # k = 0 (no extrapolation error measured) adds nothing, even at an infinite distance
    grow = calib.k * x**calib.growth if calib.k != 0 else np.zeros_like(x)  # NaN k stays NaN
    return np.sqrt(sb**2 + calib.s0**2 + grow**2)


def bootstrap_thetas(
    fit: FitResult,
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    *,
    n_resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Refits of `fit` (a `varpro.fit_varpro` result) on Bayesian-bootstrap run weights, batched
    Newton from the optimum: (n_kept, 5) rows of (a, b, e, alpha, beta). Refits that fail to
    give a finite optimum are dropped."""
    equal = bool(fit.details.get("equal_exponents"))
    p = fit.params
    theta = [p["log_A"], p["log_B"], p["log_E"], p["alpha"]] + ([] if equal else [p["beta"]])
    design = reduced_design(n, d, equal)
    weights = resample_weights(n.size, n_resamples, rng)
    starts = np.repeat(np.array(theta)[None], n_resamples, 0)
    sol = newton_batch(starts, design, np.log(loss), delta=HUBER_DELTA, weights=weights,
                       max_iter=300)  # fmt: skip
    ok = np.isfinite(sol.objective) & np.isfinite(sol.theta).all(axis=1)
    return to_full_theta(sol.theta[ok], equal)
