"""Fitting the rules that sweeps/run/hparam_rules.py applies: each study's optimum from its
trials, then batch*(C or D) = k X^p and lr* = c N^-gamma B^delta across studies, with bootstrap
intervals.

Numpy only (no Optuna, no torch): `python -m sweeps.tune fit` (sweeps/tuning/summaries.py) reads
the study summaries and calls `optimum_of` and `fit_rules`; `format_rules` prints the result.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sweeps.errors import UserError
from sweeps.run.hparam_rules import BATCH_OF

__all__ = [
    "quadratic_optimum",
    "optimum_of",
    "fit_loglinear",
    "fit_power_law",
    "fit_rules",
    "format_rules",
]

EDGE_FRAC = 0.1  # an lr optimum within this share of the log range from an end is "at the edge"
NEAR_FRAC = 0.05  # the quadratic is fitted to the trials within this share of the best loss
MIN_NEAR = 6  # ... or to the MIN_NEAR best trials when fewer lie that close
MAX_ABOVE_BEST = 0.01  # a vertex predicted this much worse than the best trial: the fit is poor


def quadratic_optimum(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The vertex of a least-squares quadratic through the trials nearest the best one.

    loss ~ a + b x + c x^2 (+ d z (+ e z^2 + f x z)) with x = ln lr and z = log2 batch: the z terms
    enter only when the near trials span 2 (3) batch sizes. Averaging over several trials makes
    the optimum far less noisy than the single best trial (seed noise is ~0.6% of the loss, as
    large as the loss differences near the optimum). None when the fit is not a bowl, has fewer
    than 2 residual degrees of freedom, its vertex lies outside the fitted trials' range (no
    extrapolation), or it predicts the vertex more than MAX_ABOVE_BEST worse than the best trial
    (a poor fit): the caller then keeps the best trial.
    """
    ok = sorted(trials, key=lambda t: t["loss"])
    best = ok[0]["loss"]
    near = [t for t in ok if t["loss"] <= best * (1 + NEAR_FRAC)]
    if len(near) < MIN_NEAR:
        near = ok[:MIN_NEAR]
    x = np.log([t["lr"] for t in near])
    z = np.log2([t["batch_size"] for t in near])
    y = np.array([t["loss"] for t in near], float)
    n_z = len(np.unique(z))
    cols = [np.ones_like(x), x, x**2]
    if n_z >= 2:
        cols.append(z)
    full = n_z >= 3 and len(near) >= 8
    if full:
        cols += [z**2, x * z]
    design = np.stack(cols, axis=1)
    if len(near) < design.shape[1] + 2 or np.ptp(x) == 0:
        return None
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    z_best = float(np.log2(ok[0]["batch_size"]))
    if full:
        hess = np.array([[2 * coef[2], coef[5]], [coef[5], 2 * coef[4]]])
        if np.any(np.linalg.eigvalsh(hess) <= 0):
            return None
        xs, zs = np.linalg.solve(hess, -np.array([coef[1], coef[3]]))
    else:
        if coef[2] <= 0:
            return None
        xs, zs = -coef[1] / (2 * coef[2]), z_best
    if not (x.min() <= xs <= x.max() and z.min() <= zs <= z.max()):
        return None
    row = [1.0, xs, xs**2] + ([zs] if n_z >= 2 else []) + ([zs**2, xs * zs] if full else [])
    if float(np.dot(coef, row)) > best * (1 + MAX_ABOVE_BEST):
        return None  # a minimum above a trial it was fitted to by more than seed noise: poor fit
    return {
        "lr": float(np.exp(xs)),
        "batch_size": float(2**zs),
        "loss": float(np.dot(coef, row)),
        "n_fitted": len(near),
        "terms": "lr and batch" if full else "lr",
    }


def optimum_of(summary: dict[str, Any]) -> dict[str, Any] | None:
    """One study's optimum (None: no ok trial), edges flagged against its search space.

    `lr`, `batch_size`: the vertex of a quadratic fitted to the near-best trials where it is a
    bowl inside their range (`method` says which), else the best trial's; `best_*` are always the
    best trial's. `edges` names each parameter whose best trial sits at (or within EDGE_FRAC of the
    log range from) an end of the searched range: the true optimum may lie outside, so widen it.
    """
    ok = [t for t in summary["trials"] if t.get("loss") is not None and math.isfinite(t["loss"])]
    if not ok:
        return None
    best = min(ok, key=lambda t: t["loss"])
    space = summary["space"]
    edges = []
    lo, hi = math.log(space["lr_min"]), math.log(space["lr_max"])
    pos = (math.log(best["lr"]) - lo) / (hi - lo)
    if pos <= EDGE_FRAC:
        edges.append(f"lr {best['lr']:.3g} at the low end: lower tune.lr_min (e.g. /3)")
    elif pos >= 1 - EDGE_FRAC:
        edges.append(f"lr {best['lr']:.3g} at the high end: raise tune.lr_max (e.g. x3)")
    pows = [2**k for k in range(31) if space["batch_min"] <= 2**k <= space["batch_max"]]
    if len(pows) > 1 and best["batch_size"] == pows[0] == 1:
        edges.append(
            "batch 1 (the smallest possible) is best: at this budget more optimizer steps beat "
            "larger batches; the batch optimum is then 1 here, a bound, not a trend (tune at "
            "larger budget.tokens to see the batch grow)"
        )
    elif len(pows) > 1 and best["batch_size"] == pows[0]:
        edges.append(f"batch {best['batch_size']} at the low end: lower tune.batch_min")
    elif len(pows) > 1 and best["batch_size"] == pows[-1]:
        edges.append(f"batch {best['batch_size']} at the high end: raise tune.batch_max")
    fitted = quadratic_optimum(ok)
    return {
        "study": summary.get("study"),
        "n_params_target": summary.get("n_params_target"),
        "n_params": best["n_params"],
        "flops": best["flops"],
        "n_tokens": best.get("n_tokens") or best["flops"] / (6.0 * best["n_params"]),
        "lr": fitted["lr"] if fitted else best["lr"],
        "batch_size": fitted["batch_size"] if fitted else float(best["batch_size"]),
        "loss": fitted["loss"] if fitted else best["loss"],
        "method": f"quadratic fit ({fitted['terms']}) to {fitted['n_fitted']} near-best trials"
        if fitted
        else "best trial",
        "best_lr": best["lr"],
        "best_batch_size": best["batch_size"],
        "best_loss": best["loss"],
        "run_id": best.get("run_id"),
        "n_trials": len(summary["trials"]),
        "n_failed": len(summary["trials"]) - len(ok),
        "batch_min": space["batch_min"],
        "batch_max": space["batch_max"],
        "edges": edges,
    }


def fit_loglinear(
    xs: list[np.ndarray], y: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """ln y = a + sum_i b_i ln x_i by least squares (y = e^a * prod x_i^b_i); intervals two ways.

    `*_se`: the regression's standard errors (from the residual variance; None without residual
    degrees of freedom). `*_interval`: percentile bootstrap over the points (here: the studies),
    `level` coverage; None with too few points. Rank-deficient resamples are redrawn out. With a
    handful of studies both are rough: few points, few distinct resamples.
    """
    ly = np.log(np.asarray(y, float))
    design = np.column_stack([np.ones_like(ly), *(np.log(np.asarray(x, float)) for x in xs)])
    n, k = design.shape
    beta, *_ = np.linalg.lstsq(design, ly, rcond=None)
    out: dict[str, Any] = {
        "coef": float(np.exp(beta[0])),
        "exponents": [float(v) for v in beta[1:]],
        "n": n,
        "log_coef_se": None,
        "exponents_se": None,
        "coef_interval": None,
        "exponents_interval": None,
    }
    if n <= k:
        return out
    resid = ly - design @ beta
    cov = float(resid @ resid) / (n - k) * np.linalg.pinv(design.T @ design)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    out["log_coef_se"], out["exponents_se"] = float(se[0]), [float(v) for v in se[1:]]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if np.linalg.matrix_rank(design[idx]) < k:
            continue  # e.g. one distinct size cannot fix a slope
        b, *_ = np.linalg.lstsq(design[idx], ly[idx], rcond=None)
        draws.append(b)
    if len(draws) >= n_boot // 4:
        d = np.asarray(draws)
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        out["coef_interval"] = [float(v) for v in np.exp(np.percentile(d[:, 0], q))]
        out["exponents_interval"] = [
            [float(v) for v in np.percentile(d[:, j], q)] for j in range(1, k)
        ]
    return out


def fit_power_law(
    x: np.ndarray, y: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """y = coef * x^exponent by least squares on (log x, log y) (`fit_loglinear` in one x)."""
    lx = np.log(np.asarray(x, float))
    if lx.size < 2 or np.ptp(lx) == 0:
        raise UserError(
            "tune sizes",
            f"a power law needs at least 2 distinct sizes with a complete trial, got {lx.size}",
            "add sizes to hydra.sweeper.params model.n_params or more trials per size",
        )
    f = fit_loglinear([np.asarray(x, float)], y, n_boot=n_boot, seed=seed, level=level)
    return {
        "coef": f["coef"],
        "exponent": f["exponents"][0],
        "n": f["n"],
        "log_coef_se": f["log_coef_se"],
        "exponent_se": None if f["exponents_se"] is None else f["exponents_se"][0],
        "coef_interval": f["coef_interval"],
        "exponent_interval": None
        if f["exponents_interval"] is None
        else f["exponents_interval"][0],
    }


def _neg_interval(iv: list[float] | None) -> list[float] | None:
    return None if iv is None else sorted(-v for v in iv)


def fit_rules(
    optima: list[dict[str, Any]], *, source: str, seed: int = 0, batch_of: str = "compute"
) -> dict[str, Any]:
    """The rules file from the studies' optima: batch*(C or D) = k X^p, lr* = c N^-gamma B^delta.

    batch_of: "compute" (C = 6 N D, DeepSeek LLM's form) or "tokens" (D: right when the studies,
    or the grids that use the rule, span horizons at one C). delta is fitted only when the optima
    span at least a factor 2 in batch over at least 4 studies (else 0: no information). Intervals
    are percentile bootstraps over studies (95%), with the regression's standard errors beside
    them. Edge optima are fitted as found but listed in `warnings` with the fix.
    """
    if batch_of not in BATCH_OF:
        raise UserError("--batch-of", f"unknown {batch_of!r}", f"one of {', '.join(BATCH_OF)}")
    if not optima:
        raise UserError(
            "tune", "no size has a complete trial", "check the runs' records (all failed?)"
        )
    optima = sorted(optima, key=lambda o: (o["n_params"], o.get("n_tokens") or 0))
    n = np.array([o["n_params"] for o in optima], float)
    lr = np.array([o["lr"] for o in optima], float)
    flops = np.array([o["flops"] for o in optima], float)
    tokens = np.array(
        [o.get("n_tokens") or f / (6 * m) for o, f, m in zip(optima, flops, n, strict=True)]
    )
    batch = np.array([o["batch_size"] for o in optima], float)
    f_n = fit_power_law(n, lr, seed=seed)  # also the "at least 2 distinct sizes" check
    with_batch = (
        len(optima) >= 4
        and np.ptp(np.log2(batch)) >= 1
        and np.linalg.matrix_rank(np.column_stack([np.ones_like(n), np.log(n), np.log(batch)])) == 3
    )
    f_lr = fit_loglinear([n, batch] if with_batch else [n], lr, seed=seed)
    exp_iv = f_lr["exponents_interval"]
    exp_se = f_lr["exponents_se"]
    delta = f_lr["exponents"][1] if with_batch else 0.0
    n_ref = float(np.exp(np.mean(np.log(n))))
    b_ref = float(np.exp(np.mean(np.log(batch))))
    lr_rule = {
        "c": f_lr["coef"],
        "gamma": -f_lr["exponents"][0],
        "delta": delta,
        "delta_fitted": bool(with_batch),
        "n_ref": n_ref,
        "batch_ref": b_ref,
        "lr_at_ref": f_lr["coef"] * n_ref ** f_lr["exponents"][0] * b_ref**delta,
        "c_interval": f_lr["coef_interval"],
        "gamma_interval": None if exp_iv is None else _neg_interval(exp_iv[0]),
        "delta_interval": None if exp_iv is None or not with_batch else exp_iv[1],
        "log_c_se": f_lr["log_coef_se"],
        "gamma_se": None if exp_se is None else exp_se[0],
        "delta_se": None if exp_se is None or not with_batch else exp_se[1],
        "gamma_without_batch_term": -f_n["exponent"],
    }
    x = flops if batch_of == "compute" else tokens
    if np.ptp(np.log(x)) > 0:
        f_b = fit_power_law(x, batch, seed=seed)
        k, p = f_b["coef"], f_b["exponent"]
    else:
        f_b = {"coef_interval": None, "exponent_interval": None, "log_coef_se": None}
        f_b["exponent_se"] = None
        k, p = float(np.exp(np.mean(np.log(batch)))), 0.0
    batch_rule = {
        "of": batch_of,
        "k": k,
        "p": p,
        "min": int(min(o["batch_min"] for o in optima)),
        "max": 1024,  # extrapolation upwards is allowed: larger budgets want larger batches
        "k_interval": f_b["coef_interval"],
        "p_interval": f_b["exponent_interval"],
        "log_k_se": f_b["log_coef_se"],
        "p_se": f_b["exponent_se"],
    }
    warnings = [f"N={o['n_params']:,}: {e}" for o in optima for e in o["edges"]]
    if len(optima) < 3:
        warnings.append(f"only {len(optima)} studies: no intervals; add sizes")
    return {
        "lr": lr_rule,
        "batch_size": batch_rule,
        "optima": optima,
        "warnings": warnings,
        "interval_method": "95% percentile bootstrap over studies (2000 resamples); *_se: OLS "
        "standard errors of the log-log regression",
        "conventions": "N = matmul parameters (record n_params); C = 6 N D and D of the best "
        "run; batch in sequences per step",
        "source": source,
    }


def format_rules(rules: dict[str, Any]) -> str:
    """A short human-readable table of the optima, the rules and the warnings."""

    def iv(v: Any) -> str:
        return "n/a" if v is None else f"[{v[0]:.3g}, {v[1]:.3g}]"

    lines = [
        f"{'N':>10} {'D':>9} {'lr*':>9} {'batch*':>6} {'loss':>8} {'trials':>6}  "
        f"{'best trial (lr, batch, loss)':>29}  edge"
    ]
    for o in rules.get("optima", []):
        best = (
            f"{o.get('best_lr', o['lr']):.3g}, {o.get('best_batch_size', o['batch_size']):g}, "
            f"{o.get('best_loss', o['loss']):.4f}"
        )
        d = o.get("n_tokens") or o["flops"] / (6 * o["n_params"])
        lines.append(
            f"{o['n_params']:>10,} {d:>9.3g} {o['lr']:>9.3g} {o['batch_size']:>6.3g} "
            f"{o['loss']:>8.4f} {o['n_trials']:>6}  {best:>29}  "
            f"{'yes: see warning' if o['edges'] else '-'}"
        )
    lr, b = rules["lr"], rules["batch_size"]
    delta = float(lr.get("delta", 0.0))
    batch_term = f" * B^{delta:.3f}" if lr.get("delta_fitted") else ""
    lines.append(
        f"lr*(N{', B' if batch_term else ''}) = {lr['c']:.4g} * N^-{lr['gamma']:.3f}{batch_term}"
        f"   gamma 95% {iv(lr.get('gamma_interval'))}"
        + (f", delta 95% {iv(lr.get('delta_interval'))}" if batch_term else "")
        + f", c 95% {iv(lr.get('c_interval'))}"
    )
    if not lr.get("delta_fitted", True):
        lines.append("  (no batch term: the optima do not differ enough in batch to fit one)")
    x = "D" if b.get("of") == "tokens" else "C"
    lines.append(
        f"batch*({x}) = {b['k']:.4g} * {x}^{b['p']:.3f}   p 95% {iv(b.get('p_interval'))}"
        f", clamped to [{b['min']}, {b['max']}]"
    )
    lines += [f"warning: {w}" for w in rules.get("warnings", [])]
    return "\n".join(lines)
