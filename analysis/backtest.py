"""Back-tests (refit without the largest scale, predict it) and FLOP/N convention sensitivity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .chinchilla import chinchilla_loss, compute_optimal, fit_chinchilla
from .errors import AnalysisError
from .isoflop import fit_isoflop, fit_parabolas, isoflop_optimum
from .kaplan import fit_power_law, power_law_loss
from .results import Backtest
from .runs import N_CONVENTIONS, fit_runs

__all__ = [
    "backtest_chinchilla",
    "backtest_power_law",
    "backtest_isoflop",
    "convention_sensitivity",
]


def _summary(law, held_out, n_train, pred, obs, **kw) -> Backtest:
    rel = (np.asarray(pred) - np.asarray(obs)) / np.asarray(obs)
    return Backtest(
        law=law,
        held_out=held_out,
        n_train=int(n_train),
        n_test=int(rel.size),
        rel_errors=tuple(float(v) for v in rel),
        mean_abs_rel_error=float(np.mean(np.abs(rel))),
        max_abs_rel_error=float(np.max(np.abs(rel))),
        **kw,
    )


def backtest_chinchilla(n_params, n_tokens, loss, budget=None) -> Backtest:
    """Refit approach 3 without the runs at the largest N (or, given each run's compute `budget`,
    without the largest budget); relative error of the held-out runs' loss. With budgets, also the
    error of the predicted optimum (N*, L*) against the held-out budget's own parabola."""
    n, d, loss = (np.asarray(x, float) for x in (n_params, n_tokens, loss))
    if budget is None:
        test = n == n.max()
        held_out = f"N = {n.max():.3g}"
    else:
        budget = np.asarray(budget, float)
        test = budget == budget.max()
        held_out = f"C = {budget.max():.3g}"
    fit = fit_chinchilla(n[~test], d[~test], loss[~test])
    pred = chinchilla_loss(fit.params, n[test], d[test])
    extra: dict = {}
    if budget is not None:
        held = fit_parabolas(n[test], loss[test], budget[test])[0]
        if held.accepted:
            alloc = compute_optimal(fit.params, budget.max())
            extra = {
                "n_star_rel_error": float((alloc.n_params - held.n_star) / held.n_star),
                "loss_star_rel_error": float((alloc.loss - held.loss_star) / held.loss_star),
            }
    return _summary("chinchilla", held_out, (~test).sum(), pred, loss[test], **extra)


def backtest_power_law(x, loss, *, variable: str = "N") -> Backtest:
    """Refit L = E + A x^-alpha without the largest x; relative error of the held-out losses."""
    x, loss = np.asarray(x, float), np.asarray(loss, float)
    test = x == x.max()
    fit = fit_power_law(x[~test], loss[~test], variable=variable)
    pred = power_law_loss(fit.params, x[test])
    return _summary(
        f"kaplan_{variable}", f"{variable} = {x.max():.3g}", (~test).sum(), pred, loss[test]
    )


def backtest_isoflop(n_params, n_tokens, loss, budget) -> Backtest:
    """Refit approach 2 without the largest budget; compare its predicted optimum there with the
    held-out budget's own parabola: relative error of the optimal loss L* and of N*.

    With too few training budgets to fit L*(C)'s irreducible term, E comes from approach 3 fitted
    on the training runs only (never on the held-out budget)."""
    n, d, loss, budget = (np.asarray(x, float) for x in (n_params, n_tokens, loss, budget))
    c_max = budget.max()
    test = budget == c_max
    fit = fit_isoflop(n[~test], d[~test], loss[~test], budget[~test])
    if not fit.details["loss_law"].startswith("E fitted"):
        try:
            e = fit_chinchilla(n[~test], d[~test], loss[~test]).params["E"]
            fit = fit_isoflop(n[~test], d[~test], loss[~test], budget[~test], irreducible=e)
        except AnalysisError:
            pass  # keep the plain power law; its warning says so
    held = fit_parabolas(n[test], loss[test], budget[test])[0]
    if not held.accepted:
        raise AnalysisError(
            f"isoflop back-test: held-out budget has no usable optimum ({held.reason})"
        )
    n_pred, _, l_pred = isoflop_optimum(fit, c_max)
    return _summary(
        "isoflop",
        f"C = {c_max:.3g}",
        (~test).sum(),
        [l_pred],
        [held.loss_star],
        n_star_rel_error=float((n_pred - held.n_star) / held.n_star),
        loss_star_rel_error=float((l_pred - held.loss_star) / held.loss_star),
        message="loss error is of the optimal loss L* of the held-out budget; "
        + fit.details["loss_law"],
    )


def convention_sensitivity(runs: pd.DataFrame, *, target_flops: float) -> pd.DataFrame:
    """Refit approach 3 with N = matmul, total and non-embedding parameters (C = 6 N D each time).

    One row per convention: alpha, beta, a, b, E, N*, D*, tokens_per_param and loss at the target
    compute. A convention whose column is missing gets a row of NaN with the reason.
    """
    rows: list[dict[str, Any]] = []
    for name in N_CONVENTIONS:
        try:
            data = fit_runs(runs, n_convention=name)
            fit = fit_chinchilla(data["N"], data["D"], data["L"])
        except AnalysisError as e:
            rows.append({"convention": name, "note": str(e)})
            continue
        alloc = compute_optimal(fit.params, target_flops)
        rows.append(
            {
                "convention": name,
                "alpha": fit.params["alpha"],
                "beta": fit.params["beta"],
                "a": fit.params["a"],
                "b": fit.params["b"],
                "E": fit.params["E"],
                "n_star": alloc.n_params,
                "d_star": alloc.n_tokens,
                "tokens_per_param": alloc.tokens_per_param,
                "loss_at_target": alloc.loss,
                "note": "" if fit.converged else fit.message,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["target_flops"] = target_flops
    return out


_ = math
