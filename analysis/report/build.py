"""The report: every fit that the data allow, with intervals and back-tests, as Markdown + JSON.

`build_report(path)` loads a sweep, fits approach 3 (with bootstrap), approach 2 (if the runs have
budgets), approach 1 (if they have curves), Kaplan's L(N), L(D), L(C) (each on the runs Kaplan's
protocol uses: analysis/laws/limiting_runs.py) and L(N, D), back-tests them
and the N-convention sensitivity, draws the figures and writes `<out>/report.md`, `fits.json`,
`runs.csv` (out defaults to `<sweep>/report`). A fit the data cannot support is skipped with its
reason, not a crash. `analysis/report/printed_summary.py` gives the short text the CLI prints.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AnalysisError
from ..progress import Steps
from ..result_types import MATMUL_CONVENTION, Report
from .figure_set import draw_report_figures, start_report_figures
from .files import noise_floor, write_report_files
from .headline_checks import headline_warnings

__all__ = ["Report", "build_report"]


JOINT_BOOTSTRAP = 200  # refits behind Kaplan's joint L(N, D) intervals in a report
# what a report does, in order: the steps its progress names (analysis/progress.py)
STEPS = ("approach 3: fit and bootstrap", "approach 2 (IsoFLOP): fit and bootstrap",
         "approach 1 (envelope)", "Kaplan's L(N), L(D), L(C)", "Kaplan's L(N, D): bootstrap",
         "recommended law: back-test, bootstrap, calibration", "figures")  # fmt: skip


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    return str(obj)


def _try(report: Report, name: str, fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except AnalysisError as e:
        report.skipped[name] = str(e)
        return None


PREDICTION_CONVENTION = "C = 6 N D, N = matmul parameters incl. head"
PREDICTION_SOURCES = {"chinchilla": "approach3", "isoflop": "approach2"}


def _prediction(rep: Report, law: str) -> dict[str, Any] | None:
    """N*, D*, tokens/param and loss at the target compute from one law, with its intervals."""
    if law not in rep.allocation:
        return None
    a, iv = rep.allocation[law], rep.fits[law].intervals
    keys = {"n_params": "n_star", "n_tokens": "d_star", "tokens_per_param": "tokens_per_param",
            "loss": "loss_at_target"}  # fmt: skip
    return {
        "source": PREDICTION_SOURCES[law],
        "flops": rep.target_flops,
        **{k: a[k] for k in keys},
        "intervals": {k: list(iv[v]) for k, v in keys.items() if v in iv},
        "confidence": 0.95,
        "convention": {MATMUL_CONVENTION: PREDICTION_CONVENTION}.get(
            rep.convention, rep.convention
        ),
    }


def _choose_prediction(rep: Report) -> dict[str, Any] | None:
    """The better-supported of approaches 3 and 2: the one whose back-test predicted the held-out
    budget's optimal loss better (both refitted without the largest budget); approach 3 when only
    it exists or there is no budget back-test to compare."""
    p3, p2 = rep.predictions.get("approach3"), rep.predictions.get("approach2")
    if p3 is None and p2 is None:
        return None
    if p3 is None or p2 is None:
        only = p3 or p2
        assert only is not None
        return only | {"reason": f"{only['source']} is the only approach the data support"}
    b3, b2 = rep.backtests.get("chinchilla"), rep.backtests.get("isoflop")
    e3 = abs(b3.loss_star_rel_error) if b3 is not None else math.nan
    e2 = abs(b2.loss_star_rel_error) if b2 is not None else math.nan
    if not (math.isfinite(e3) and math.isfinite(e2)):
        return p3 | {"reason": "approach 3 uses every run; no budget back-test to compare"}
    assert b3 is not None  # e3 is finite
    best, why = (p2, "smaller") if e2 < e3 else (p3, "smaller or equal")
    return best | {
        "reason": f"{why} back-test error of the optimal loss at the held-out budget "
        f"({b3.held_out}): approach 3 {e3:.2%}, approach 2 {e2:.2%}"
    }


def _read_verify(rep: Report, path: Path) -> dict[str, Any] | None:
    for where in (rep.out_dir / "verify.json", path / "report" / "verify.json"):
        if where.is_file():
            try:
                v = json.loads(where.read_text(encoding="utf-8"))
            except ValueError as e:
                rep.skipped["verify"] = f"{where}: not valid JSON ({e}); rerun the verify step"
                return None
            need = ("target_flops", "predicted", "achieved", "rel_error")
            if isinstance(v, dict) and all(isinstance(v.get(k), int | float) for k in need):
                return v | {"path": str(where)}
            rep.skipped["verify"] = f"{where}: lacks {', '.join(need)}; rerun the verify step"
    return None


def build_report(
    path: str | os.PathLike[str],
    *,
    target_flops: float | None = None,
    n_bootstrap: int = 1000,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    figures: bool = True,
    arch: str | None = None,
    n_convention: str | None = None,
    holdout: str | None = None,
    isoflop_from_curves: bool = False,
) -> Report:
    """Fit, back-test, draw and write the report of the sweep at `path` (see module docstring).

    target_flops: compute (FLOPs, C = 6ND) for N*, D* and the predicted loss; default 10x the
    largest budget (or largest run compute) in the data. arch: keep only runs of this `arch`
    (a folder mixing architectures must name one; `python -m analysis` does it per arch).
    `path` may be a table (file, or DataFrame from `load_table`: groups act as archs). n_convention:
    a folder's N (matmul, total, non_embedding). holdout: the back-tests' split, "C>1e21".
    isoflop_from_curves: a curve table's runs had a constant lr (approach 2 from its curves;
    analysis/laws/curve_slices.py). Raises AnalysisError if no run is usable.
    """
    from ..inputs.run_records import excluded_counts, excluded_reasons
    from ..inputs.schedules import schedule_mix
    from ..inputs.sources import mark_table_out, report_inputs
    from ..laws.bootstrap import bootstrap_chinchilla, bootstrap_kaplan_joint, bootstrap_power_law
    from ..laws.chinchilla import compute_optimal, fit_chinchilla
    from ..laws.curve_slices import constant_lr_curves, isoflop_points_from_curves
    from ..laws.envelope import bootstrap_envelope, fit_envelope
    from ..laws.isoflop import (
        accelerating_frontier,
        bootstrap_isoflop,
        budget_groups,
        fit_isoflop,
        isoflop_optimum,
    )
    from ..laws.kaplan import fit_kaplan_joint, fit_power_law
    from ..laws.limiting_runs import kaplan_points, not_falling
    from ..prediction import backtest as bt
    from ..prediction.seed_noise import seed_groups

    inp = report_inputs(path, arch=arch, n_convention=n_convention, out=out, holdout=holdout)
    runs, curves, data, out_dir = inp.runs, inp.curves, inp.data, inp.out_dir
    mix = schedule_mix(data)
    budgets = budget_groups(data["flops_budget"], data["C"])
    has_budgets = bool(np.isfinite(data["flops_budget"].to_numpy(float)).any())
    if target_flops is None:
        target_flops = 10 * float(np.nanmax(budgets if has_budgets else data["C"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    if out is None and isinstance(path, str | os.PathLike) and Path(path).is_file():
        mark_table_out(out_dir, path)  # a table's default folder: which table it reports
    rep = Report(
        out_dir=out_dir,
        target_flops=target_flops,
        excluded=excluded_counts(runs),
        excluded_reasons=excluded_reasons(runs),
        n_runs=len(runs),
        n_fitted=len(data),
        name=inp.name,
        arch=arch or (inp.archs[0] if inp.archs else ""),
        n_convention=inp.n_convention,
        seed_noise=seed_groups(runs),
        diagnostics=[*inp.warnings, *([mix] if mix else [])],
        subsample=inp.subsample,
    )
    rng = np.random.default_rng(seed)
    n, d, loss = data["N"].to_numpy(), data["D"].to_numpy(), data["L"].to_numpy()
    steps = Steps(f"report {arch}" if arch else "report", len(STEPS))  # closed before the files

    steps.step(STEPS[0])
    fit = _try(rep, "chinchilla", fit_chinchilla, n, d, loss)
    if fit is not None:
        fit, _ = bootstrap_chinchilla(
            fit, n, d, loss, target_flops=target_flops, n_resamples=n_bootstrap, rng=rng
        )
        rep.fits["chinchilla"] = fit
        rep.convention = inp.convention
        rep.allocation["chinchilla"] = asdict(compute_optimal(fit.params, target_flops))
        rep.backtests["chinchilla"] = _try(
            rep,
            "chinchilla back-test",
            bt.backtest_chinchilla,
            n,
            d,
            loss,
            budgets if has_budgets else None,
            holdout=inp.test,
        )
        if "table" not in runs.attrs:  # a table has one N convention only
            rep.sensitivity = bt.convention_sensitivity(runs, target_flops=target_flops)
    steps.step(STEPS[1])
    iso_in = (n, d, loss, budgets) if has_budgets else None
    if not has_budgets:  # approach 2 from constant-lr loss curves, where there are some
        qualified, why = constant_lr_curves(runs, curves, from_table=isoflop_from_curves)
        pts = (
            None
            if qualified is None
            else _try(rep, "isoflop", isoflop_points_from_curves, qualified)
        )
        if qualified is None:
            rep.skipped["isoflop"] = why
        elif pts is not None:
            iso_in = tuple(pts[c].to_numpy(float) for c in ("N", "D", "L", "budget"))
            rep.diagnostics.append(
                f"approach 2 reads its IsoFLOP slices ({pts['budget'].nunique()} budgets) off "
                f"{why}: analysis/laws/curve_slices.py"
            )
    if iso_in is not None:
        ni, di, li, bi = iso_in
        e3 = fit.params["E"] if fit is not None else None
        iso = _try(rep, "isoflop", fit_isoflop, ni, di, li, bi, irreducible=e3)
        if iso is not None:
            iso = bootstrap_isoflop(
                iso, ni, li, bi, target_flops=target_flops, n_resamples=n_bootstrap, rng=rng
            )
            rep.fits["isoflop"] = iso
            n_s, d_s, l_s = (float(v) for v in isoflop_optimum(iso, target_flops))
            rep.allocation["isoflop"] = {
                "flops": target_flops,
                "n_params": n_s,
                "n_tokens": d_s,
                "tokens_per_param": d_s / n_s,
                "loss": l_s,
            }
            rep.backtests["isoflop"] = _try(
                rep, "isoflop back-test", bt.backtest_isoflop, ni, di, li, bi
            )
    noise = noise_floor(rep)  # NaN where no seed was repeated: 1% is assumed (as recommend does)
    if has_budgets:
        note = accelerating_frontier(loss, budgets, rel_noise=noise if noise > 0 else 0.01,
                                     n_params=n)  # fmt: skip
        tail = "" if noise > 0 else " (seed noise not measured: 1% assumed)"
        rep.diagnostics += [note + tail] if note is not None else []
    steps.step(STEPS[2])
    used = curves[curves["included"].fillna(False).astype(bool)]
    env = _try(rep, "envelope", fit_envelope, used) if len(used) else None
    if env is not None:
        rep.fits["envelope"] = bootstrap_envelope(env, used, n_resamples=n_bootstrap, rng=rng)
    elif "envelope" not in rep.skipped:
        rep.skipped["envelope"] = "no loss curves (curve.jsonl, or a table's step column)"
    rep.verify = None if "table" in runs.attrs else _read_verify(rep, Path(path))
    # the figures need only approaches 1-3: drawn apart while Kaplan's laws, the recommendation fit
    drawing = (start_report_figures(rep, data, used, budgets, draw=draw_report_figures)
               if figures else None)  # fmt: skip
    steps.step(STEPS[3])
    groups = budgets if has_budgets else None
    for var in ("N", "D", "C"):  # each on Kaplan's own points: analysis/laws/limiting_runs.py
        pts = _try(rep, f"kaplan_{var}", kaplan_points, var, n, d, data["C"], loss, groups)
        f = _try(rep, f"kaplan_{var}", fit_power_law, *pts, variable=var) if pts else None
        if f is not None:
            note = not_falling(var, *pts)
            f = f.replace(warnings=(*f.warnings, note)) if note else f
            rep.fits[f"kaplan_{var}"] = bootstrap_power_law(
                f, *pts, n_resamples=n_bootstrap, rng=rng
            )
            if var == "N":
                split, not_split = _kaplan_split(inp.test)
                if not_split:
                    rep.skipped["kaplan_N back-test"] = not_split
                else:
                    rep.backtests["kaplan_N"] = _try(
                        rep, "kaplan_N back-test", bt.backtest_power_law, *pts, holdout=split
                    )
    steps.step(STEPS[4])
    joint = _try(rep, "kaplan_joint", fit_kaplan_joint, n, d, loss)
    if joint is not None:
        # a secondary law with a costly refit (4 grid starts, Levenberg-Marquardt): its 95%
        # percentiles from at most 200 refits (on a 250-run table 1,000 took 47 of the report's
        # 70 s); the headline laws keep n_bootstrap
        rep.fits["kaplan_joint"] = bootstrap_kaplan_joint(
            joint, n, d, loss, n_resamples=min(n_bootstrap, JOINT_BOOTSTRAP), rng=rng
        )
    for law, src in PREDICTION_SOURCES.items():
        pred = _prediction(rep, law)
        if pred is not None:
            rep.predictions[src] = pred
    rep.prediction = _choose_prediction(rep)
    if rep.prediction is not None:
        rep.prediction["warnings"] = headline_warnings(rep)
    from .calibrated_prediction import calibrated_prediction, recommended_backtest

    steps.step(STEPS[5])
    planned = data["flops_budget"]  # NaN where none: recommend reads C there, as --predict does
    # the other groups (archs) of the same source: one E shared by all is a candidate
    peers = _peers(path, arch, inp.archs, n_convention=n_convention, out=out, holdout=holdout)
    kw = {"seed": seed, "noise": noise, "peers": peers}
    if rep.prediction is not None:
        cal = _try(rep, "recommended law", calibrated_prediction, data, planned, rep.prediction,
                   **kw)  # fmt: skip
        rep.prediction = rep.prediction | ({"calibrated": cal} if cal else {})
    if inp.test is not None:  # the user's split, applied to the recommended law too
        rep.backtests["recommended"] = _try(
            rep, "recommended back-test", recommended_backtest, data, planned, inp.test, **kw
        )
    if drawing is not None:
        steps.step(STEPS[6])
        rep.figures = drawing.result()
    steps.close()
    write_report_files(rep, runs, fits_json(rep))
    return rep


def _kaplan_split(test) -> tuple[str | None, str | None]:
    """The user's --holdout for the L(N) back-test (its own points are Kaplan's, a subset of the
    runs, so the split is applied by its text): (split or None for the default, why skipped)."""
    if test is None:
        return None, None
    from ..inputs.holdout import parse_holdout

    text = str(getattr(test, "name", "") or "")
    try:
        column = parse_holdout(text).column
    except AnalysisError:
        column = None
    if column in ("n_params", "loss"):
        return text, None
    return None, (f"the split {text or '(a mask)'} is not on N or L, and L(N) is back-tested on "
                  "its own points (Kaplan's best run per size): no split of them matches yours")


def _peers(path, arch: str | None, archs: list[str], **kw) -> tuple[str, dict] | None:
    """The other archs' (groups') fit points, budgets, held-out split and seed noise, for the
    recommendation pooled over them (analysis/prediction/groups.py); None for a single-arch source.
    An
    arch with nothing to fit is left out: its own report says what is wrong with it."""
    from ..inputs.sources import report_inputs
    from ..prediction.seed_noise import pooled_rel_sd, seed_groups

    if arch is None or len(archs) < 2:
        return None
    out = {}
    for other in archs:
        if other != arch:
            try:
                inp = report_inputs(path, arch=other, **kw)
            except AnalysisError:
                continue
            out[other] = (inp.data, inp.test, pooled_rel_sd(seed_groups(inp.runs)))
    return (arch, out) if out else None


def fits_json(rep: Report) -> dict[str, Any]:
    """What `fits.json` holds (see the README of analysis in the module docstring)."""
    out = {
        "name": rep.name,
        "arch": rep.arch,
        "target_flops": rep.target_flops,
        "convention": rep.convention,
        "n_convention": rep.n_convention,
        "prediction": rep.prediction,
        # each fit in the report's convention: the fits themselves default to the records'
        # (matmul N, C = 6ND), which a table's --n-convention or flops column replaces
        "fits": {
            k: {kk: vv for kk, vv in f.to_dict().items() if kk != "details"}
            | ({"convention": rep.convention} if rep.convention else {})
            for k, f in rep.fits.items()
        },
        "allocation": rep.allocation,
        "backtests": {k: asdict(v) for k, v in rep.backtests.items() if v is not None},
        "seed_noise": {"rel_sd": noise_floor(rep), "groups": rep.seed_noise},
        "skipped": rep.skipped,
        "diagnostics": rep.diagnostics,
        "excluded_runs": rep.excluded,
        "excluded_reasons": rep.excluded_reasons,
        "n_runs": rep.n_runs,
        "n_fitted": rep.n_fitted,
        "subsample": rep.subsample,
    }
    for src, pred in rep.predictions.items():
        out[f"prediction_{src}"] = pred
    if rep.verify is not None:
        out["verify"] = rep.verify
    if rep.sensitivity is not None:
        out["convention_sensitivity"] = rep.sensitivity.to_dict(orient="records")
    return jsonable(out)
