"""Learning rate and batch size: the configured numbers, or "auto" from fitted rules by scale.

A rule is lr*(N) = c * N^-gamma (N: matmul convention) and batch*(C) = k * C^p (C = 6 N D, in
sequences per step), as DeepSeek LLM fitted them. `python -m sweeps.tune -m sweep=lr_tune` searches
each size and `python -m sweeps.tune fit` fits the rules (`fit_rules`, numpy only) into
`hparam_rules.json`; `optim.rules=<that file>` uses them; otherwise the built-in defaults below.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.config import BudgetConfig, OptimConfig
from sweeps.errors import UserError

__all__ = [
    "DEFAULT_RULES",
    "load_rules",
    "resolve_hparams",
    "optimum_of",
    "fit_power_law",
    "fit_rules",
    "format_rules",
]

EDGE_FRAC = 0.1  # an lr optimum within this share of the log range from an end is "at the edge"

# Built-in defaults, calibrated on the default corpus (pystdlib bytes, GPT, context 256, cosine,
# 5e5 tokens per run, 16 TPE trials per size over lr 1e-3..1e-1 and batch 1..32, 2 x 1 thread,
# 80 runs in 10 min; the conf/sweep/lr_tune.yaml defaults):
#   python -m sweeps.tune -m sweep=lr_tune
#   python -m sweeps.tune fit results/lr_tune
# Optima (N matmul: lr*, batch*, loss): 3,584: 0.00896, 1, 2.487; 10,240: 0.0110, 1.5, 2.412;
# 19,968: 0.00721, 1, 2.413; 32,768: 0.00287, 1, 2.398; 114,688: 0.00251, 1.0, 2.356 (lr* is a
# quadratic fit to the near-best trials where it is a bowl, else the best trial). gamma's 95%
# bootstrap interval over the 5 sizes is 0.075..1.20. Every size's best batch was 1 sequence,
# the smallest possible: at 5e5 tokens more optimizer steps beat larger batches, so the batch
# rule is the bound "1", not a trend in C (the fitted 2.13 C^-0.027, p in -0.37..0.06, is 1 over
# 1e10..3e11 FLOPs). Held-out N=19,968 (fit without it): auto lr 0.00508 / batch 1 reached
# 2.4081 vs its tuned best 2.4126 (-0.19%; benchmarks/lr_rules.py ... --held-out 2e4).
# They do not transfer to much longer horizons: on the demo grid (benchmarks/rules_isoflop.py)
# they lower the step-starved points' loss by 7.3% but make N=10,240 at 1.6e7 tokens 6.4% worse
# than batch 16 at lr 3e-3. Tune at the horizon you train at.
DEFAULT_RULES: dict[str, Any] = {
    "lr": {"c": 0.4571, "gamma": 0.4473, "n_ref": 19409, "gamma_interval": [0.0754, 1.2028]},
    "batch_size": {"k": 1.0, "p": 0.0, "min": 1, "max": 1024},
    "source": "lr_tune calibration on pystdlib, 5e5 tokens, N 3.6e3..1.1e5 (see comment above)",
}


def load_rules(path: str) -> dict[str, Any]:
    """Read a hparam_rules.json; UserError naming optim.rules and the fix when unusable."""
    p = Path(path).expanduser()
    try:
        rules = json.loads(p.read_text(encoding="utf-8"))
        values = [
            float(rules["lr"]["c"]),
            float(rules["lr"]["gamma"]),
            float(rules["batch_size"]["k"]),
            float(rules["batch_size"]["p"]),
        ]
        if not all(math.isfinite(v) for v in values) or values[0] <= 0 or values[2] <= 0:
            raise ValueError("c and k must be positive and every constant finite")
    except FileNotFoundError as e:
        raise UserError(
            "optim.rules", f"no file {p}", "run sweep=lr_tune first or fix the path"
        ) from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(
            "optim.rules", f"{p} is not a hparam_rules.json ({e})", "point to a file lr_tune wrote"
        ) from e
    return rules


def resolve_hparams(
    optim: OptimConfig, *, n_params: int, budget: BudgetConfig
) -> tuple[float, int]:
    """(lr, batch_size) for a model of N = n_params, resolving "auto" from the rules."""
    rules = load_rules(optim.rules) if optim.rules else DEFAULT_RULES
    if optim.lr == "auto":
        lr = float(rules["lr"]["c"]) * n_params ** -float(rules["lr"]["gamma"])
    else:
        lr = float(optim.lr)
    if optim.batch_size == "auto":
        br = rules["batch_size"]
        flops = _budget_flops(budget, n_params)
        raw = float(br["k"]) * (flops ** float(br["p"]) if flops else 1.0)
        batch_size = int(min(br.get("max", 1024), max(br.get("min", 1), round(raw))))
    else:
        batch_size = int(optim.batch_size)
    return lr, batch_size


def _budget_flops(budget: BudgetConfig, n_params: int) -> float | None:
    """The run's compute C = 6 N D where the horizon fixes it without knowing the batch size."""
    if budget.flops is not None:
        return float(budget.flops)
    if budget.tokens is not None:
        return 6.0 * n_params * float(budget.tokens)
    if budget.tokens_per_param is not None:
        return 6.0 * n_params * float(budget.tokens_per_param) * n_params
    return None  # budget.steps: C depends on the batch itself; use the rule's k alone


NEAR_FRAC = 0.05  # the quadratic is fitted to the trials within this share of the best loss
MIN_NEAR = 6  # ... or to the MIN_NEAR best trials when fewer lie that close


def quadratic_optimum(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The vertex of a least-squares quadratic through the trials nearest the best one.

    loss ~ a + b x + c x^2 (+ d z (+ e z^2 + f x z)) with x = ln lr and z = log2 batch: the z terms
    enter only when the near trials span 2 (3) batch sizes. Averaging over several trials makes
    the optimum far less noisy than the single best trial (seed noise is ~0.6% of the loss, as
    large as the loss differences near the optimum). None when the fit is not a bowl, has fewer
    than 2 residual degrees of freedom, or its vertex lies outside the fitted trials' range
    (no extrapolation): the caller then keeps the best trial.
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
            "larger batches; batch*(C) is then 1 here, a bound, not a trend (tune at larger "
            "budget.tokens to see the batch grow)"
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


def fit_power_law(
    x: np.ndarray, y: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """y = coef * x^exponent by least squares on (log x, log y); both intervals two ways.

    `*_se`: the regression's standard errors (from the residual variance; None with 2 points).
    `*_interval`: percentile bootstrap over the points (here: over model sizes), `level` coverage;
    None with fewer than 3 points. With 3-5 sizes both are rough: few sizes, few resamples.
    """
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if lx.size < 2 or np.ptp(lx) == 0:
        raise UserError(
            "tune sizes",
            f"a power law needs at least 2 distinct sizes with a complete trial, got {lx.size}",
            "add sizes to hydra.sweeper.params model.n_params or more trials per size",
        )
    design = np.stack([np.ones_like(lx), lx], axis=1)
    beta, *_ = np.linalg.lstsq(design, ly, rcond=None)
    out: dict[str, Any] = {"coef": float(np.exp(beta[0])), "exponent": float(beta[1]), "n": lx.size}
    out["log_coef_se"] = out["exponent_se"] = None
    if lx.size > 2:
        resid = ly - design @ beta
        sigma2 = float(resid @ resid) / (lx.size - 2)
        cov = sigma2 * np.linalg.inv(design.T @ design)
        out["log_coef_se"], out["exponent_se"] = (
            float(np.sqrt(cov[0, 0])),
            float(np.sqrt(cov[1, 1])),
        )
    out["coef_interval"] = out["exponent_interval"] = None
    if lx.size > 2:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(n_boot):
            idx = rng.integers(0, lx.size, lx.size)
            if np.ptp(lx[idx]) == 0:
                continue  # one distinct size cannot fix a slope
            b, *_ = np.linalg.lstsq(design[idx], ly[idx], rcond=None)
            draws.append(b)
        d = np.asarray(draws)
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        out["coef_interval"] = [float(v) for v in np.exp(np.percentile(d[:, 0], q))]
        out["exponent_interval"] = [float(v) for v in np.percentile(d[:, 1], q)]
    return out


def fit_rules(optima: list[dict[str, Any]], *, source: str, seed: int = 0) -> dict[str, Any]:
    """The rules file from each size's optimum: lr*(N) = c N^-gamma and batch*(C) = k C^p.

    Intervals are percentile bootstraps over sizes (95%), with the regression's standard errors
    beside them. Edge optima are fitted as found but listed in `warnings` with the fix.
    """
    if not optima:
        raise UserError(
            "tune", "no size has a complete trial", "check the runs' records (all failed?)"
        )
    optima = sorted(optima, key=lambda o: o["n_params"])
    n = np.array([o["n_params"] for o in optima], float)
    lr = np.array([o["lr"] for o in optima], float)
    flops = np.array([o["flops"] for o in optima], float)
    batch = np.array([o["batch_size"] for o in optima], float)
    f_lr = fit_power_law(n, lr, seed=seed)
    n_ref = float(np.exp(np.mean(np.log(n))))
    lr_rule = {
        "c": f_lr["coef"],
        "gamma": -f_lr["exponent"],
        "n_ref": n_ref,
        "lr_at_n_ref": f_lr["coef"] * n_ref ** f_lr["exponent"],
        "c_interval": f_lr["coef_interval"],
        "gamma_interval": None
        if f_lr["exponent_interval"] is None
        else sorted(-v for v in f_lr["exponent_interval"]),
        "log_c_se": f_lr["log_coef_se"],
        "gamma_se": f_lr["exponent_se"],
    }
    if np.ptp(np.log(flops)) > 0:
        f_b = fit_power_law(flops, batch, seed=seed)
        k, p = f_b["coef"], f_b["exponent"]
    else:
        f_b = {"coef_interval": None, "exponent_interval": None, "log_coef_se": None}
        f_b["exponent_se"] = None
        k, p = float(np.exp(np.mean(np.log(batch)))), 0.0
    batch_rule = {
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
        warnings.append(f"only {len(optima)} sizes: no intervals; add sizes")
    return {
        "lr": lr_rule,
        "batch_size": batch_rule,
        "optima": optima,
        "warnings": warnings,
        "interval_method": "95% percentile bootstrap over sizes (2000 resamples); *_se: OLS "
        "standard errors of the log-log regression",
        "conventions": "N = matmul parameters (record n_params); C = 6 N D of the best run; "
        "batch in sequences per step",
        "source": source,
    }


def format_rules(rules: dict[str, Any]) -> str:
    """A short human-readable table of the optima, the rules and the warnings."""

    def iv(v: Any) -> str:
        return "n/a" if v is None else f"[{v[0]:.3g}, {v[1]:.3g}]"

    lines = [
        f"{'N':>10} {'lr*':>9} {'batch*':>6} {'loss':>8} {'trials':>6}  "
        f"{'best trial (lr, batch, loss)':>29}  edge"
    ]
    for o in rules.get("optima", []):
        best = (
            f"{o.get('best_lr', o['lr']):.3g}, {o.get('best_batch_size', o['batch_size']):g}, "
            f"{o.get('best_loss', o['loss']):.4f}"
        )
        lines.append(
            f"{o['n_params']:>10,} {o['lr']:>9.3g} {o['batch_size']:>6.3g} {o['loss']:>8.4f} "
            f"{o['n_trials']:>6}  {best:>29}  {'yes: see warning' if o['edges'] else '-'}"
        )
    lr, b = rules["lr"], rules["batch_size"]
    lines.append(
        f"lr*(N) = {lr['c']:.4g} * N^-{lr['gamma']:.3f}   gamma 95% {iv(lr.get('gamma_interval'))}"
        f", c 95% {iv(lr.get('c_interval'))}; lr at N={lr['n_ref']:.3g}: {lr['lr_at_n_ref']:.3g}"
    )
    lines.append(
        f"batch*(C) = {b['k']:.4g} * C^{b['p']:.3f}   p 95% {iv(b.get('p_interval'))}"
        f", clamped to [{b['min']}, {b['max']}]"
    )
    lines += [f"warning: {w}" for w in rules.get("warnings", [])]
    return "\n".join(lines)
