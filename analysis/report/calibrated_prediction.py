"""The report's calibrated prediction: the law this sweep's own back-test recommends
(analysis/prediction/recommend.py), evaluated at the report's predicted optimum, with its
calibrated interval
and its warnings. Kept apart from analysis/report/build.py so the report only wires it in."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..prediction.calibration import interval_problem, interval_score
from ..prediction.groups import recommend_groups
from ..prediction.recommend import Recommendation, planned_flops, recommend
from ..result_types import Backtest

__all__ = [
    "calibrated_prediction",
    "calibrated_lines",
    "calibrated_summary",
    "recommended_backtest",
]


def _table(data: pd.DataFrame, budgets) -> pd.DataFrame:
    """`recommend`'s input from `run_records.fit_runs` output (columns N, D, L, C) and each run's
    IsoFLOP budget (NaN where none), which makes the budgets the back-test's ladder
    (`planned_flops`, as the planner fits them)."""
    return planned_flops(pd.DataFrame({
        "n_params": data["N"].to_numpy(float),
        "n_tokens": data["D"].to_numpy(float),
        "loss": data["L"].to_numpy(float),
        "flops": data["C"].to_numpy(float),
        "flops_budget": np.asarray(budgets, float),
    })).drop(columns="flops_budget")  # fmt: skip


def _recommendation(
    table: pd.DataFrame, *, seed: int, noise: float | None, peers, test=None
) -> Recommendation:
    """`recommend` on this group's table alone, or, with the other groups of the same source
    (`peers`: (this group's name, {name: (fit points, held-out split or None, seed noise)})),
    its part of `recommend_groups` on all of them (each restricted to its training runs when
    `test` is given). Where another group has too few runs for a law, this one is recommended
    alone, as it would be without groups (that group's own report says what is wrong)."""
    if not peers:
        return recommend(table, seed=seed, noise=noise)
    name, others = peers
    tables, noises = {name: table}, {name: noise}
    for other, (data, split, peer_noise) in others.items():
        t = _table(data, data["flops_budget"])
        if test is not None and split is not None:
            t = t[~np.asarray(split, bool)].reset_index(drop=True)
        tables[other] = t
        noises[other] = peer_noise
    try:
        return recommend_groups(tables, seed=seed, noise=noises)[name]
    except AnalysisError:  # another group too small for a law: this one is recommended alone
        return recommend(table, seed=seed, noise=noise)


def calibrated_prediction(
    data: pd.DataFrame,
    budgets,
    prediction: dict[str, Any],
    *,
    seed: int = 0,
    noise: float | None = None,
    peers: tuple[str, dict] | None = None,
) -> dict[str, Any]:
    """The recommended law's loss and 95% / 80% calibrated intervals at the prediction's N*, D*.

    data: `run_records.fit_runs` output (columns N, D, L, C); budgets: each run's IsoFLOP budget
    (NaN
    where none), which makes the budgets the back-test's ladder; noise: the measured seed noise
    (`recommend`'s); peers: the other groups of the same source (`_recommendation`)."""
    n, d = float(prediction["n_params"]), float(prediction["n_tokens"])
    if not (math.isfinite(n) and math.isfinite(d)):
        raise AnalysisError(
            f"recommend: the prediction ({prediction.get('source', 'approach 3')}) has no "
            "compute-optimal N*, D* at the target (a fitted exponent <= 0: the loss does not "
            "fall with N or D there); add runs at more sizes and token counts"
        )
    rec = _recommendation(_table(data, budgets), seed=seed, noise=noise, peers=peers)
    p95, p80 = rec.predict(n, d, level=0.95), rec.predict(n, d, level=0.8)
    return {
        "law": rec.law,
        "why": rec.why,
        "warnings": list(rec.warnings),
        "n_params": n,
        "n_tokens": d,
        "loss": p95.loss,
        "interval": list(p95.interval),
        "interval_80": list(p80.interval),
        "width": p95.width,
        "width_80": p80.width,
        "interval_warning": p95.problem,
        "level": 0.95,
    }


def _interval_text(c: dict[str, Any]) -> str:
    """The 95% interval as digits with its width, or why it has none worth printing."""
    problem = c.get("interval_warning") or interval_problem(c["loss"], tuple(c["interval"]))
    lo, hi = c["interval"]
    if problem and "wider than" not in problem:
        return f"no calibrated 95% interval: {problem}"
    text = f"calibrated 95% interval [{lo:.4f}, {hi:.4f}] (width {(hi - lo) / c['loss']:.1%})"
    return f"{text}, with a warning: {problem}" if problem else text


def calibrated_lines(c: dict[str, Any]) -> list[str]:
    """The report.md section for a `calibrated_prediction`."""
    lo8, hi8 = c["interval_80"]
    lines = [
        "## Recommended law and its calibrated interval",
        "",
        f"Law: {c['law']}: {c['why']}.",
        "",
        f"At the predicted optimum (N = {c['n_params']:.4g}, D = {c['n_tokens']:.4g}) it predicts "
        f"loss {c['loss']:.4f}, {_interval_text(c)}"
        + ("" if c.get("interval_warning") and "wider" not in c["interval_warning"] else
           f", 80% [{lo8:.4f}, {hi8:.4f}]")
        + ": calibrated from this table's own leave-largest-rung-out errors and the bootstrap "
        "(docs/fidelity.md).",
        "",
    ]
    lines += [f"- warning: {w}" for w in c["warnings"]]
    return lines + ([""] if c["warnings"] else [])


def calibrated_summary(c: dict[str, Any]) -> str:
    """One line for the CLI's summary."""
    return (
        f"  recommended law {c['law']}: loss {c['loss']:.4f}, {_interval_text(c)} "
        f"({len(c['warnings'])} warning(s): report.md)"
    )


def recommended_backtest(
    data: pd.DataFrame,
    budgets,
    test,
    *,
    seed: int = 0,
    noise: float | None = None,
    peers: tuple[str, dict] | None = None,
) -> Backtest:
    """The user's split (`--holdout`) applied to the recommended law itself: `recommend` sees the
    training runs only (it chooses its law, fits and calibrates on them), then predicts each
    held-out run; the errors and how many runs its 80% and 95% intervals hold.

    test: a boolean Series over `data`'s rows (True = held out), named by the split's text."""
    mask = np.asarray(test, bool)
    table = _table(data, budgets)
    rec = _recommendation(table[~mask].reset_index(drop=True), seed=seed, noise=noise,
                          peers=peers, test=test)  # fmt: skip
    held = table[mask]
    obs = held["loss"].to_numpy(float)
    points = list(zip(held["n_params"], held["n_tokens"], strict=True))
    p95 = [rec.predict(n, d, level=0.95) for n, d in points]
    p80 = [rec.predict(n, d, level=0.8) for n, d in points]
    pred = np.array([p.loss for p in p95])
    rel = (pred - obs) / obs

    def share(ps: list) -> float:
        inside = [p.interval[0] <= y <= p.interval[1] for p, y in zip(ps, obs, strict=True)]
        return float(np.mean(inside))

    def width(ps: list) -> float:
        return float(np.median([p.width for p in ps]))

    def score(ps: list, level: float) -> float:
        lo, hi = np.array([p.interval for p in ps]).T
        return float(np.mean(interval_score(lo, hi, obs, level, scale=[p.loss for p in ps])))

    return Backtest(
        law=f"recommended ({rec.law})",
        held_out=str(getattr(test, "name", None) or "user split"),
        n_train=int((~mask).sum()),
        n_test=int(mask.sum()),
        rel_errors=tuple(float(v) for v in rel),
        mean_abs_rel_error=float(np.mean(np.abs(rel))),
        max_abs_rel_error=float(np.max(np.abs(rel))),
        coverage_80=share(p80),
        coverage_95=share(p95),
        width_80=width(p80),
        width_95=width(p95),
        score_80=score(p80, 0.8),
        score_95=score(p95, 0.95),
        message=rec.why,
    )
