"""Which runs each of Kaplan's single-variable laws is fitted to, following Kaplan et al. (2020).

Their L(N) is the loss of models trained to convergence, L(D) that of large models stopped early
at each dataset size, and L(C) the compute-efficient frontier L(C_min). From a sweep's finished
runs (seed repeats of one (N, D) averaged first):

- L(N): each size's lowest loss (its longest training);
- L(D): each token count's lowest loss (its largest model);
- L(C): the frontier: each IsoFLOP budget's best run, or, without budgets, every run that no run
  of less or equal compute beats.

Fitting every run instead mixes horizons at each N (sizes at each D), and on the demo's IsoFLOP
grid gave L(N) with alpha = 29 and A = 6e102: a step at the smallest size, not a power law.
An IsoFLOP grid has no run limited by N or D alone (each size's best run still stops at a
budget's tokens), so there L(N) and L(D) are refused with the reason; the joint L(N, D) and
approaches 2 and 3 use every run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import AnalysisError

__all__ = ["kaplan_points", "not_falling"]


def _mean_over_seeds(n, d, c, loss) -> pd.DataFrame:
    df = pd.DataFrame({"N": n, "D": d, "C": c, "L": loss})
    return df.groupby(["N", "D"], as_index=False).agg(C=("C", "mean"), L=("L", "mean"))


def kaplan_points(var: str, n, d, c, loss, budgets=None) -> tuple[np.ndarray, np.ndarray]:
    """(x, loss) of the runs Kaplan's L(var) is fitted to, var in N, D, C (see the module
    docstring). budgets: each run's IsoFLOP budget, or None for a grid without budgets.
    Raises AnalysisError for L(N) or L(D) of an IsoFLOP grid."""
    df = _mean_over_seeds(n, d, c, loss)
    if var in ("N", "D"):
        if budgets is not None:
            need = {
                "N": "each size trained near convergence (sweep=grid with a long token count)",
                "D": "a model large enough at each D not to limit it (sweep=grid)",
            }[var]
            raise AnalysisError(
                f"kaplan_{var}: an IsoFLOP grid has no run limited by {var} alone (each {var}'s "
                f"best run still stops at its budget); Kaplan's L({var}) needs {need}; the joint "
                "L(N, D) and approaches 2 and 3 use every run"
            )
        best = df.loc[df.groupby(var)["L"].idxmin()].sort_values(var)
        return best[var].to_numpy(float), best["L"].to_numpy(float)
    if var != "C":
        raise ValueError(f"var must be N, D or C, not {var!r}")
    if budgets is not None:
        if np.unique(budgets).size < 4:
            raise AnalysisError(
                f"kaplan_C: an IsoFLOP grid's frontier is its budgets' best runs, "
                f"{np.unique(budgets).size} here for 3 parameters; approach 2's L*(C) fits the "
                "same frontier through the parabolas' minima; add budgets for a separate L(C)"
            )
        per_run = pd.DataFrame({"N": n, "D": d, "B": np.asarray(budgets, float)})
        df = df.merge(per_run.drop_duplicates(["N", "D"]), on=["N", "D"])
        best = df.loc[df.groupby("B")["L"].idxmin()].sort_values("C")
        return best["C"].to_numpy(float), best["L"].to_numpy(float)
    df = df.sort_values(["C", "L"])
    front = df["L"].to_numpy() < np.minimum.accumulate(np.r_[np.inf, df["L"].to_numpy()[:-1]])
    best = df[front]
    return best["C"].to_numpy(float), best["L"].to_numpy(float)


def not_falling(var: str, x, loss) -> str | None:
    """A warning when the selected best loss rises with x somewhere (those runs are limited by
    the other variable, so L(var) of them is not Kaplan's), else None."""
    x, loss = np.asarray(x, float), np.asarray(loss, float)
    up = np.flatnonzero(np.diff(loss) > 0)
    rises = [f"{x[i]:.3g} -> {x[i + 1]:.3g}" for i in up]
    if not rises:
        return None
    limited = {"N": "data", "D": "model size"}.get(var, "another variable")
    return (
        f"kaplan_{var}: the best loss rises with {var} at {', '.join(rises[:3])}: those runs are "
        f"limited by {limited}, not by {var}; read L({var}) with care"
    )
