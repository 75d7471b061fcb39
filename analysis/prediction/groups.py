"""Recommendations for a table of several groups: each group's own law, or one irreducible loss
shared by every group (analysis/laws/shared_floor.py), whichever the pooled back-test prefers.

`recommend_groups(tables)` first recommends each group's own law as `recommend.recommend` does.
Then it back-tests the candidates with E shared (`ladder.CANDIDATES`' forms and rules, one E for
all groups) on the same leave-largest-rung-out folds of every group's ladder, and scores both
ways on the pooled held-out runs: for each fold, the mean |log error| over every group's held-out
runs, then the mean over folds (the folds every group has). The shared law is used only when its
best candidate scores strictly lower than the groups' own laws do together; the choice is then the
same for every group, since they share E. Nothing outside the table is looked at. Each group's
interval is calibrated from its own held-out errors under the chosen law, and the bootstrap
reweights every group's runs at once (a shared E is estimated from all of them).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..laws.chinchilla import chinchilla_loss
from ..laws.identifiability import fit_warnings
from ..laws.shared_floor import bootstrap_shared, fit_shared_floor
from .calibration import calibrate, robust_scale
from .ladder import CANDIDATES, POWER_FORMS, Candidate, distance, ladder_folds, log_errors, reach
from .recommend import (
    N_BOOTSTRAP,
    Recommendation,
    accelerates,
    canonical,
    folds_sd,
    recommend,
)

__all__ = ["recommend_groups"]

_MEMO: dict[tuple, dict[str, Recommendation]] = {}


def recommend_groups(
    tables: dict[Any, pd.DataFrame], *, seed: int = 0, noise: dict | None = None
) -> dict[Any, Recommendation]:
    """Each group's recommendation (module docstring). tables: group name -> its runs (columns
    n_params, n_tokens, loss, optional flops); noise: group name -> its measured seed noise."""
    tables = dict(sorted(tables.items(), key=lambda kv: str(kv[0])))  # one order, one bootstrap
    # a noise of 0 (seeds repeated to the digit) is not a noise floor: 1% assumed, as `recommend`
    noise = {k: v for k, v in (noise or {}).items() if v is not None and math.isfinite(v) and v > 0}
    key = (tuple((k, _named(k, canonical, t).to_numpy(float).tobytes()) for k, t in tables.items()),
           seed, tuple(sorted((str(k), v) for k, v in noise.items())))  # fmt: skip
    if key not in _MEMO:
        if len(_MEMO) >= 4:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = _recommend_groups(tables, seed, noise)
    return _MEMO[key]


def _recommend_groups(tables: dict, seed: int, noise: dict) -> dict[str, Recommendation]:
    own = {k: _named(k, recommend, t, seed=seed, noise=noise.get(k)) for k, t in tables.items()}
    if len(tables) < 2:
        return own
    data = {k: canonical(t) for k, t in tables.items()}
    folds = {k: ladder_folds(d) for k, d in data.items()}
    n_folds = min(len(f) for f in folds.values())
    by_name = {c.name: c for c in CANDIDATES}
    if n_folds == 0 or any(r.law not in by_name for r in own.values()):
        return own  # no back-test for some group: nothing to compare the shared law on
    own_score = _score({k: by_name[own[k].law] for k in data}, folds, n_folds, shared=False)[0]
    if not math.isfinite(own_score):  # a group's own law was its default (no back-test)
        return own
    results = {c: _score({k: c for k in data}, folds, n_folds, shared=True) for c in CANDIDATES
               if c.form in POWER_FORMS}  # fmt: skip
    tried = {c: r for c, r in results.items() if math.isfinite(r[0])}
    # each group's own scores, its score under each shared candidate, and the pooled comparison
    scores = {
        k: {**r.scores, **{_shared_name(c): _group_score(e[k]) for c, (_, e) in tried.items()},
            "pooled: each group's own law": own_score,
            **{f"pooled: {_shared_name(c)}": s for c, (s, _) in tried.items()}}
        for k, r in own.items()
    }  # fmt: skip
    if not tried or min(s for s, _ in tried.values()) >= own_score:
        best_s = min((s for s, _ in tried.values()), default=math.nan)
        note = (f"; one E shared by the {len(tables)} groups did no better in the back-test pooled "
                f"over them: {best_s:.3%} against {own_score:.3%}" if tried else "")  # fmt: skip
        return {k: dataclasses.replace(r, why=r.why + note, scores=scores[k])
                for k, r in own.items()}  # fmt: skip
    best = min(tried, key=lambda c: tried[c][0])
    why = (
        f"one irreducible loss E for the {len(data)} groups (each with its own A, B and "
        f"exponents) had the lowest back-test error pooled over the groups: mean |log error| "
        f"{tried[best][0]:.3%} over {n_folds} fold(s) that hold out each group's largest "
        f"rung(s), against {own_score:.3%} for each group's own law "
        f"({', '.join(sorted({r.law for r in own.values()}))})"
    )
    return _shared_recommendations(data, best, tried[best][1], n_folds, why, scores, seed,
                                   noise)  # fmt: skip


def _group_score(errs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """One group's back-test score from its (log errors, distances) per fold: as `recommend`'s."""
    return float(np.mean([np.mean(np.abs(e)) for e, _ in errs]))


def _named(group, fn, *args, **kw):
    """fn(*args, **kw), its AnalysisError naming the group at fault (when the table has groups)."""
    try:
        return fn(*args, **kw)
    except AnalysisError as e:
        if group is None:
            raise
        raise AnalysisError(f"group {group!r}: {e}; add runs to it or drop it") from None


def _shared_name(cand: Candidate) -> str:
    return f"{cand.form}-vp[shared-E]" if cand.rule == "all" else (
        f"{cand.form}-vp[{cand.rule},shared-E]")  # fmt: skip


Errors = dict[object, list[tuple[np.ndarray, np.ndarray]]]


def _score(cands: dict, folds: dict, n_folds: int, *, shared: bool) -> tuple[float, Errors]:
    """Pooled back-test of one candidate per group (the same one, with E shared, if `shared`):
    the mean over folds of every group's held-out mean |log error| (NaN where a rule leaves a
    fold too few runs), and per group its held-out (log errors, distances) fold by fold."""
    errs: Errors = {k: [] for k in folds}
    per_fold = []
    for i in range(n_folds):
        subs = {k: cands[k].select(f[i].train) for k, f in folds.items()}
        if any(s is None for s in subs.values()):
            return math.nan, errs
        if shared:
            fits = fit_shared_floor(subs, equal_exponents=cands[next(iter(cands))].form
                                    == "overtrain").fits  # fmt: skip
        else:
            fits = {k: cands[k].fit(f[i].train) for k, f in folds.items()}
        fold = []
        for k, f in folds.items():
            fit = fits[k]
            assert fit is not None  # its rule kept enough runs (checked above)
            e = log_errors(fit, f[i].test)
            errs[k].append((e, distance(reach(f[i].train), f[i].test["n_params"],
                                        f[i].test["n_tokens"])))  # fmt: skip
            fold.append(e)
        per_fold.append(float(np.mean(np.abs(np.concatenate(fold)))))
    return float(np.mean(per_fold)), errs


def _shared_recommendations(
    data: dict, cand: Candidate, errs: Errors, n_folds: int, why: str, scores: dict, seed: int,
    noise: dict,
) -> dict[str, Recommendation]:  # fmt: skip
    """Each group's Recommendation under `cand` with E shared: one joint fit on every group's
    runs, one joint bootstrap, each group's interval calibrated from its own held-out errors."""
    subs = {k: cand.select(d) for k, d in data.items()}
    sf = fit_shared_floor(subs, equal_exponents=cand.form == "overtrain")
    thetas = bootstrap_shared(sf, n_resamples=N_BOOTSTRAP, rng=np.random.default_rng(seed))
    law = _shared_name(cand)
    e_shared = next(iter(sf.fits.values())).params["E"]
    out = {}
    for k, d in data.items():
        fit = sf.fits[k].replace(law=law)
        sub = subs[k]
        assert sub is not None  # the back-test fitted this rule on fewer runs
        n, dd, loss = (sub[c].to_numpy(float) for c in ("n_params", "n_tokens", "loss"))
        resid = np.log(chinchilla_loss(fit.params, n, dd) / loss)  # a power law (POWER_FORMS)
        e = np.concatenate([a for a, _ in errs[k]])
        x = np.concatenate([b for _, b in errs[k]])
        bends = accelerates(d, noise.get(k))
        # the fold fits' spread: each group's own law on the fold (the joint fit's is not kept)
        sd_f = folds_sd(cand, ladder_folds(d)[:n_folds], seed)
        fold_of = np.concatenate([np.full(len(a), i) for i, (a, _) in enumerate(errs[k])])
        calib = calibrate(robust_scale(resid), e, x, n_folds, growth=2.0 if bends else 1.0,
                          fold_sd=sd_f, fold=fold_of)  # fmt: skip
        warns = [f"{bends}; so the calibrated interval's extrapolation error grows with the "
                 "square of the distance beyond the runs"] if bends else []  # fmt: skip
        if not fit.converged:
            warns.append(f"{law}: the joint fit stopped before its gradient vanished; its digits "
                         "are approximate")  # fmt: skip
        warns += fit_warnings(fit, thetas[k], n, dd)  # (its condition number: this group's
        # own Jacobian, with E as if its own: pessimistic where the other groups pin E)
        out[k] = Recommendation(f"{law}", f"{law}, E = {e_shared:.4g}: {why}", tuple(warns), fit,
                                thetas[k], calib, reach(d), scores[k])  # fmt: skip
    return out
