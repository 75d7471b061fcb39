"""IsoFLOP slices read off loss curves: Chinchilla approach 2 from one long run per model size.

An IsoFLOP grid trains every size once per budget. When a run's learning rate does not decay (a
constant schedule, or a WSD trunk before its cooldown), its loss at an evaluation is close to what
a run stopped there would reach, so one curve per size crosses many budgets. Porian et al. 2024
("Resolving discrepancies in compute-optimal scaling of language models") find that careful
learning-rate decay is not essential for the Chinchilla law, which is what makes such slices
usable. A cosine curve does not qualify: mid-run its loss is far above a cooled-down run's.

`isoflop_points_from_curves` takes budgets log-spaced (`per_decade` per decade) over the compute
that at least `min_sizes` model sizes' curves cover, and gives each run whose curve brackets a
budget its loss there, interpolated linearly in (log C, log L) between the two evaluations around
it (never extrapolated; C = 6 N t, t the tokens seen). Where several runs of one size cross a
budget (seeds, learning rates) the lowest loss stands for the size, as a tuned run would. The rows
feed `isoflop.fit_isoflop` like the end points of a real IsoFLOP grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..inputs.run_records import TRUNK_REASON

__all__ = ["CONSTANT_SCHEDULES", "isoflop_points_from_curves"]

CONSTANT_SCHEDULES = ("constant",)  # sweeps' schedule names whose curves qualify (and WSD trunks)


def isoflop_points_from_curves(
    curves: pd.DataFrame, *, per_decade: int = 4, min_sizes: int = 3
) -> pd.DataFrame:
    """IsoFLOP points (columns N, D, L, budget) read off `curves` (columns run_id, n_params,
    n_tokens: tokens seen at the evaluation, loss), one per model size and budget.

    Raises AnalysisError naming what to add when fewer than `min_sizes` sizes share a budget."""
    need = {"run_id", "n_params", "n_tokens", "loss"}
    if not need <= set(curves.columns):
        raise AnalysisError(
            f"isoflop from curves: the curves lack column(s) {sorted(need - set(curves.columns))}"
        )
    df = curves[list(need)].dropna()
    df = df[(df["loss"] > 0) & (df["n_tokens"] > 0) & (df["n_params"] > 0)]
    df = df.assign(logc=np.log(6.0 * df["n_params"] * df["n_tokens"]), logl=np.log(df["loss"]))
    spans = df.groupby("run_id").agg(n=("n_params", "first"), lo=("logc", "min"),
                                     hi=("logc", "max"), k=("logc", "size"))  # fmt: skip
    spans = spans[spans["k"] >= 2]
    if spans["n"].nunique() < min_sizes:
        raise AnalysisError(
            f"isoflop from curves: {spans['n'].nunique()} model size(s) with two or more "
            f"evaluations; need {min_sizes}: log more evaluations (n_evals) or add sizes"
        )
    # the compute range that at least `min_sizes` sizes cover (a size covers the union of its runs)
    by_size = spans.groupby("n").agg(lo=("lo", "min"), hi=("hi", "max"))
    lo = np.sort(by_size["lo"].to_numpy())[min_sizes - 1]
    hi = np.sort(by_size["hi"].to_numpy())[::-1][min_sizes - 1]
    if not hi > lo:
        raise AnalysisError(
            f"isoflop from curves: no compute is reached by {min_sizes} model sizes' curves at "
            "once; train the small sizes longer or the large ones on more tokens"
        )
    n_budgets = max(2, int(np.floor((hi - lo) / np.log(10) * per_decade)) + 1)
    budgets = np.linspace(lo, hi, n_budgets)
    rows = []
    for run_id, g in df.groupby("run_id", sort=True):
        if run_id not in spans.index:
            continue
        g = g.sort_values("logc")
        x, y = g["logc"].to_numpy(), g["logl"].to_numpy()
        inside = budgets[(budgets >= x[0]) & (budgets <= x[-1])]
        for b, logl in zip(inside, np.interp(inside, x, y), strict=True):
            n = float(g["n_params"].iloc[0])
            rows.append({"N": n, "D": float(np.exp(b)) / (6 * n), "L": float(np.exp(logl)),
                         "budget": float(np.exp(b))})  # fmt: skip
    pts = pd.DataFrame(rows, columns=["N", "D", "L", "budget"])
    pts = pts.loc[pts.groupby(["budget", "N"])["L"].idxmin()]  # best run per size and budget
    sizes = pts.groupby("budget")["N"].transform("nunique")
    pts = pts[sizes >= min_sizes].sort_values(["budget", "N"]).reset_index(drop=True)
    if pts["budget"].nunique() < 2:
        raise AnalysisError(
            f"isoflop from curves: fewer than two budgets are crossed by {min_sizes} sizes' "
            "curves; train the sizes over overlapping compute ranges"
        )
    return pts


def constant_lr_curves(
    runs: pd.DataFrame, curves: pd.DataFrame, *, from_table: bool = False
) -> tuple[pd.DataFrame | None, str]:
    """The curves whose evaluations may stand for stopped runs, and a note of which they are.

    A results folder: the runs whose recorded schedule is constant (`config.schedule.name`) and
    WSD trunks (constant until their branches fork). A table records no schedule: its curves
    qualify only when the user says so (`from_table=True`, the CLI's --isoflop-from-curves).
    Returns (None, why not) when none qualify."""
    if "table" in runs.attrs:
        if not from_table:
            return None, (
                "no run has a flops_budget (constant-lr curves give IsoFLOP slices: "
                "--isoflop-from-curves)"
            )
        if curves.empty:
            return None, "--isoflop-from-curves: the table has no step column (no loss curves)"
        return curves, "every curve of the table (--isoflop-from-curves: constant lr, as stated)"
    sched = runs.get("config.schedule.name", pd.Series(None, index=runs.index))
    # the runs a fit may use, and trunks (left out of end-point fits only for never cooling down);
    # not an older run-id version's, a duplicate's, a non-finite loss's
    usable = runs["included"] | (runs["excluded_reason"] == TRUNK_REASON)
    ok = usable & (sched.isin(CONSTANT_SCHEDULES) | (runs["role"] == "trunk"))
    ids = set(runs.loc[ok, "run_id"])
    if not ids:
        return None, (
            "no run has a flops_budget (nor a constant learning rate: schedule=constant or a "
            "WSD trunk, whose curves would give IsoFLOP slices)"
        )
    return curves[curves["run_id"].isin(ids)], (
        f"the curves of {len(ids)} constant-learning-rate run(s) (schedule=constant, WSD trunks)"
    )
