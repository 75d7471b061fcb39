"""The scale ladder of a results table, and the candidate laws a back-test on it chooses between.

A table's ladder is the scale axis its grid was designed on: the column of N (model sizes) or of C
(compute budgets, for IsoFLOP grids) with fewer rungs. A rung is a set of values within
`RUNG_TOLERANCE` (1%) of their neighbours: sizes read off a plot, or counted by another convention
and rounded, differ by 1e-7 and are one size, not two (as distinct values they made folds that
held out a size 1e-6 in log N beyond the training runs, and intervals of [0, inf]). A fold holds
out the largest rung
and trains on every smaller one; the next fold repeats that one rung lower, as long as enough
remains to train on (`MIN_TRAIN_RUNGS`: three model sizes on an N ladder; two budgets on a C
ladder, whose slices still hold three or more model sizes), up to `MAX_FOLDS` folds. The
back-test never sees anything above the table: a fold's training runs are all below its held-out
rung, and the table itself is all the recommendation looks at.

Candidates (`CANDIDATES`): two forms times two run-selection rules from the literature.
- forms: "chinchilla" (L = E + A/N^alpha + B/D^beta, approach 3's objective, found by variable
  projection: analysis/laws/varpro.py) and "overtrain" (the same with alpha = beta: the form Gadre
  et al.
  2024 fit to over-trained runs, L(C, M) = E + (a M^eta + b M^-eta) C^-eta);
- rules: "all" runs; "drop-smallest": without the smallest model size (small models bend away
  from the law; Hoffmann et al. 2022 and Besiroglu et al. 2024 fit above a size floor).
  A third rule, "drop-overtrained" (without the runs above the 75th percentile of tokens per
  parameter; Gadre et al. fit near-compute-optimal runs), is implemented but not a candidate: on
  the shipped suites' held-out points it raised the error of the form it was applied to on
  Gadre C4 and RefinedWeb and on Porian cosine (docs/fidelity.md), and a rule that helps one
  suite must not hurt another. A fourth, "drop-unwarmed" (without the runs that ended before
  their learning-rate warmup did, for tables with a `warmup_tokens` column; Porian et al. 2024
  trace part of the Kaplan-Chinchilla discrepancy to warmups too long for small models), is not
  a candidate either: it lowers the worst Gadre C4 error but raises RedPajama's and
  RefinedWeb's. `python benchmarks/replicate.py --rules` prints every rule's numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..laws.joint_isoflop import fit_joint_isoflop, n_budgets
from ..laws.varpro import fit_varpro
from ..result_types import FitResult
from .forms import JOINT, law_loss

__all__ = [
    "CANDIDATES",
    "POWER_FORMS",
    "RUNG_TOLERANCE",
    "n_rungs",
    "rungs",
    "RULES",
    "MAX_FOLDS",
    "MIN_TRAIN_RUNGS",
    "Candidate",
    "Fold",
    "distance",
    "ladder_axis",
    "ladder_folds",
    "log_errors",
    "reach",
]

MIN_TRAIN_RUNGS = {"n_params": 3, "flops": 2}
RULES = ("all", "drop-smallest", "drop-overtrained", "drop-unwarmed")
MAX_FOLDS = 3
RUNG_TOLERANCE = 0.01  # relative: values closer than 1% to a neighbour share its rung


def rungs(values) -> np.ndarray:
    """Each value's rung, named by the largest value in it: sorted values whose ratio to the
    previous one is below 1 + `RUNG_TOLERANCE` join its rung (single linkage)."""
    v = np.asarray(values, float)
    u = np.unique(v)
    if u.size == 0:
        return v.copy()
    starts = np.concatenate([[True], u[1:] > u[:-1] * (1 + RUNG_TOLERANCE)])
    label = np.cumsum(starts) - 1
    top = np.maximum.reduceat(u, np.flatnonzero(starts))
    return top[label[np.searchsorted(u, v)]]


def n_rungs(values) -> int:
    """How many rungs `values` fall into (`rungs`)."""
    return int(np.unique(rungs(values)).size)


@dataclass(frozen=True)
class Candidate:
    """A law's form and the rule choosing which runs it is fitted on."""

    form: str  # "chinchilla" | "overtrain" | "isoflop-joint"
    rule: str  # one of RULES

    @property
    def name(self) -> str:
        law = JOINT if self.form == JOINT else f"{self.form}-vp"
        return law if self.rule == "all" else f"{law}[{self.rule}]"

    def select(self, table: pd.DataFrame) -> pd.DataFrame | None:
        """The runs this rule keeps, or None when too few remain to fit the law."""
        if self.rule == "drop-smallest":
            r = rungs(table["n_params"])
            table = table[r > r.min()]
        elif self.rule == "drop-overtrained":
            m = table["n_tokens"] / table["n_params"]
            table = table[m <= np.quantile(m, 0.75)]
        elif self.rule == "drop-unwarmed":
            if "warmup_tokens" not in table:
                return None
            table = table[~(table["warmup_tokens"] >= table["n_tokens"])]  # unknown: kept
        if self.form == JOINT:  # approach 2 made joint: IsoFLOP grids of 3 or more budgets only
            if ladder_axis(table) != "flops" or n_budgets(6 * table["n_params"]
                                                          * table["n_tokens"]) < 3:  # fmt: skip
                return None
            n_free = 6
        else:
            n_free = 4 if self.form == "overtrain" else 5
        if n_rungs(table["n_params"]) < 3 or n_rungs(table["n_tokens"]) < 2:
            return None
        return table if len(table) > n_free + 1 else None

    def fit(self, table: pd.DataFrame) -> FitResult | None:
        """Fit the law to the runs the rule keeps (None when the rule leaves too few).

        The same candidate on the same runs is fitted once: the back-test's folds, their fold
        spreads (`recommend.folds_sd`), the groups' comparison and the final fit ask again for
        fits already made (a FitResult is immutable, so the second answer is the first)."""
        sub = self.select(table)
        if sub is None:
            return None
        n, d, loss = (sub[c].to_numpy(float) for c in ("n_params", "n_tokens", "loss"))
        key = (self.form, np.ascontiguousarray(np.stack([n, d, loss])).tobytes())
        if key not in _FITS:
            if len(_FITS) >= 64:
                _FITS.pop(next(iter(_FITS)))
            if self.form == JOINT:
                _FITS[key] = fit_joint_isoflop(n, d, loss)
            else:
                _FITS[key] = fit_varpro(n, d, loss, equal_exponents=self.form == "overtrain")
        return _FITS[key]


_FITS: dict[tuple[str, bytes], FitResult] = {}


POWER_FORMS = ("chinchilla", "overtrain")  # the forms a shared E applies to (groups.py)
CANDIDATES = tuple(
    Candidate(form, rule)
    for form in POWER_FORMS
    for rule in ("all", "drop-smallest")
) + (Candidate(JOINT, "all"),)


@dataclass(frozen=True)
class Fold:
    """One back-test split: train on every rung below `held_out`, predict that rung."""

    axis: str
    held_out: float
    train: pd.DataFrame
    test: pd.DataFrame


def ladder_axis(table: pd.DataFrame) -> str:
    """ "n_params", or "flops" when the table has fewer budgets than model sizes (as rungs)."""
    if "flops" in table and n_rungs(table["flops"]) < n_rungs(table["n_params"]):
        return "flops"
    return "n_params"


def ladder_folds(table: pd.DataFrame) -> list[Fold]:
    """Leave-largest-rung-out folds down the ladder (see the module docstring)."""
    axis = ladder_axis(table)
    r = rungs(table[axis])
    folds = []
    for rung in np.unique(r)[::-1][:MAX_FOLDS]:
        train = table[r < rung]
        if n_rungs(train[axis]) < MIN_TRAIN_RUNGS[axis] or n_rungs(train["n_params"]) < 3:
            break
        folds.append(Fold(axis, float(rung), train, table[r == rung]))
    return folds


def reach(train: pd.DataFrame) -> tuple[float, float, float]:
    """The training runs' largest N, D and N x D (C / 6)."""
    nd = train["n_params"] * train["n_tokens"]
    return float(train["n_params"].max()), float(train["n_tokens"].max()), float(nd.max())


def distance(reach_: tuple[float, float, float], n_params, n_tokens) -> np.ndarray:
    """How far beyond the training runs (their `reach`) a point lies: the largest of
    log(N / N_max), log(D / D_max) and log(C / C_max), or 0 inside."""
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    n_max, d_max, nd_max = reach_
    ln, ld = np.log(n), np.log(d)  # in logs: N x D far out (1e160 each) overflows
    x = np.maximum.reduce([ln - math.log(n_max), ld - math.log(d_max), ln + ld - math.log(nd_max)])
    return np.maximum(x, 0.0)


def log_errors(fit: FitResult, test: pd.DataFrame) -> np.ndarray:
    """log(predicted / observed loss) of each test run."""
    pred = law_loss(fit, test["n_params"].to_numpy(float), test["n_tokens"].to_numpy(float))
    return np.log(np.asarray(pred, float) / test["loss"].to_numpy(float))
