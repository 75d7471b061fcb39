"""Back-tests (refit without the largest scale or a split the user names, predict the held-out
runs) and the FLOP/N convention sensitivity. Each takes arrays or one canonical table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..inputs.holdout import HOLDOUT_ALIASES, Holdout, as_points, parse_holdout
from ..inputs.run_records import N_CONVENTIONS, fit_runs
from ..laws.chinchilla import chinchilla_loss, compute_optimal, fit_chinchilla
from ..laws.isoflop import fit_isoflop, fit_parabolas, isoflop_optimum
from ..laws.kaplan import fit_power_law, power_law_loss
from ..result_types import Backtest

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


def _split(n, d, loss, budget, holdout, *, min_train: int = 1):
    """(test mask, label): the user's `holdout` (a split like "C>1e21", a Holdout or a boolean
    mask), else the largest budget, else the largest N."""
    if holdout is not None:
        if isinstance(holdout, str | Holdout):
            h = parse_holdout(holdout)
            test = h.mask(None, n_params=n, n_tokens=d, loss=loss)
            h.check(test, min_train=min_train)
            return test, h.text
        test = np.asarray(holdout, bool).ravel()
        if test.size != n.size:
            raise AnalysisError(
                f"holdout mask has {test.size} values for {n.size} runs; pass one per run"
            )
        Holdout("mask", ">", 0.0, "mask").check(test, min_train=min_train)
        name = getattr(holdout, "name", None)  # a pandas Series named by its split's text
        return test, name if isinstance(name, str) else f"{int(test.sum())} run(s) chosen by mask"
    if budget is not None:
        return budget == budget.max(), f"C = {budget.max():.3g}"
    return n == n.max(), f"N = {n.max():.3g}"


def backtest_chinchilla(
    n_params, n_tokens=None, loss=None, budget=None, *, holdout=None
) -> Backtest:
    """Refit approach 3 without the held-out runs and predict them: relative error of their loss.

    Takes three arrays or one table (`n_params=table`, its `flops_budget` column, if any, as the
    budgets). Held out: `holdout` (a split such as "C>1e21" or "M>=100" on N, D, C, L, M = D/N,
    or a boolean mask, one per run: a Series' name labels the split), else the largest budget
    given `budget` (each run's compute budget), else the largest N. With budgets and no holdout,
    also the error of the predicted optimum (N*, L*) against the held-out budget's own parabola."""
    if isinstance(n_params, pd.DataFrame) and budget is None and "flops_budget" in n_params:
        budget = n_params["flops_budget"]
    n, d, loss = as_points(n_params, n_tokens, loss, what="backtest_chinchilla")
    if budget is not None:
        budget = np.asarray(budget, float).ravel()
        if budget.size != n.size:
            raise AnalysisError(
                f"backtest_chinchilla: budget has {budget.size} values for {n.size} runs; "
                "pass one compute budget per run"
            )
    test, held_out = _split(n, d, loss, budget, holdout, min_train=6)
    fit = fit_chinchilla(n[~test], d[~test], loss[~test])
    pred = chinchilla_loss(fit.params, n[test], d[test])
    extra: dict = {}
    if budget is not None and holdout is None:
        held = fit_parabolas(n[test], loss[test], budget[test])[0]
        if held.accepted:
            alloc = compute_optimal(fit.params, budget.max())
            extra = {
                "n_star_rel_error": float((alloc.n_params - held.n_star) / held.n_star),
                "loss_star_rel_error": float((alloc.loss - held.loss_star) / held.loss_star),
            }
    return _summary("chinchilla", held_out, (~test).sum(), pred, loss[test], **extra)


def backtest_power_law(x, loss=None, *, variable: str = "N", holdout=None) -> Backtest:
    """Refit L = E + A x^-alpha without the held-out points (the largest x, or `holdout`: a
    boolean mask or a split on `variable` such as "N>1e8"); relative error of their losses.
    `x` may be a table: its column for `variable` (N n_params, D n_tokens, C flops) and loss."""
    if isinstance(x, pd.DataFrame):
        col = HOLDOUT_ALIASES.get(variable, variable)
        if col not in x or "loss" not in x or loss is not None:
            raise AnalysisError(
                f"backtest_power_law: pass a table with columns {col} and loss, or two arrays"
            )
        x, loss = x[col], x["loss"]
    if loss is None:
        raise AnalysisError("backtest_power_law: pass x and loss (or one table)")
    x, loss = np.asarray(x, float).ravel(), np.asarray(loss, float).ravel()
    if x.size != loss.size:
        raise AnalysisError(
            f"backtest_power_law: x has {x.size} values and loss {loss.size}; one per point each"
        )
    if holdout is None:
        test, held_out = x == x.max(), f"{variable} = {x.max():.3g}"
    elif isinstance(holdout, str | Holdout):
        h = parse_holdout(holdout)
        col = HOLDOUT_ALIASES.get(variable, variable)
        if h.column not in (col, "loss"):
            raise AnalysisError(
                f"--holdout {h.text!r}: this back-test of L({variable}) can only split on "
                f"{variable} or L"
            )
        test = h.mask(None, **{col: x, "loss": loss})
        h.check(test, min_train=4)
        held_out = h.text
    else:
        test, held_out = _split(x, x, loss, None, holdout, min_train=4)
    fit = fit_power_law(x[~test], loss[~test], variable=variable)
    pred = power_law_loss(fit.params, x[test])
    return _summary(f"kaplan_{variable}", held_out, (~test).sum(), pred, loss[test])


def backtest_isoflop(n_params, n_tokens=None, loss=None, budget=None) -> Backtest:
    """Refit approach 2 without the largest budget; compare its predicted optimum there with the
    held-out budget's own parabola: relative error of the optimal loss L* and of N*.

    Takes arrays or one table (budgets: its flops_budget column, else flops).
    With too few training budgets to fit L*(C)'s irreducible term, E comes from approach 3 fitted
    on the training runs only (never on the held-out budget)."""
    if isinstance(n_params, pd.DataFrame) and budget is None:
        budget = n_params["flops_budget" if "flops_budget" in n_params else "flops"]
    n, d, loss = as_points(n_params, n_tokens, loss, what="backtest_isoflop")
    if budget is None or np.asarray(budget).size != n.size:
        raise AnalysisError(
            f"backtest_isoflop: budget needs one compute budget per run ({n.size}); pass budget="
        )
    budget = np.asarray(budget, float).ravel()
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
