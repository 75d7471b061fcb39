"""The report: every fit that the data allow, with intervals and back-tests, as Markdown + JSON.

`build_report(path)` loads a sweep, fits approach 3 (with bootstrap), approach 2 (if the runs have
budgets), approach 1 (if they have curves), Kaplan's L(N), L(D), L(C) and L(N, D), back-tests them
and the N-convention sensitivity, draws the figures and writes `<out>/report.md`, `fits.json`,
`runs.csv` (out defaults to `<sweep>/report`). A fit the data cannot support is skipped with its
reason, not a crash. `summarize(report)` gives the short text the CLI prints.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AnalysisError
from .results import FitResult

__all__ = ["Report", "build_report", "summarize"]


@dataclass
class Report:
    """What `build_report` computed and wrote."""

    out_dir: Path
    target_flops: float
    fits: dict[str, FitResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    backtests: dict[str, Any] = field(default_factory=dict)
    allocation: dict[str, dict[str, float]] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    n_runs: int = 0
    convention: str = ""
    sensitivity: Any = None
    figures: list[str] = field(default_factory=list)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
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


def build_report(
    path: str | os.PathLike[str],
    *,
    target_flops: float | None = None,
    n_bootstrap: int = 1000,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    figures: bool = True,
) -> Report:
    """Fit, back-test, draw and write the report of the sweep at `path` (see module docstring).

    target_flops: compute (FLOPs, C = 6ND) for N*, D* and the predicted loss; default 10x the
    largest budget (or largest run compute) in the data. Raises AnalysisError if no run is usable.
    """
    from . import backtest as bt
    from .bootstrap import bootstrap_chinchilla
    from .chinchilla import compute_optimal, fit_chinchilla
    from .envelope import fit_envelope
    from .isoflop import bootstrap_isoflop, budget_groups, fit_isoflop
    from .kaplan import fit_kaplan_joint, fit_power_law
    from .runs import excluded_counts, fit_runs, load_runs

    runs, curves = load_runs(path)
    data = fit_runs(runs)
    budgets = budget_groups(data["flops_budget"], data["C"])
    has_budgets = bool(np.isfinite(data["flops_budget"].to_numpy(float)).any())
    if target_flops is None:
        target_flops = 10 * float(np.nanmax(budgets if has_budgets else data["C"]))
    out_dir = Path(out) if out is not None else Path(path) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    rep = Report(
        out_dir=out_dir, target_flops=target_flops, excluded=excluded_counts(runs), n_runs=len(runs)
    )
    rng = np.random.default_rng(seed)
    n, d, loss = data["N"].to_numpy(), data["D"].to_numpy(), data["L"].to_numpy()

    fit = _try(rep, "chinchilla", fit_chinchilla, n, d, loss)
    if fit is not None:
        fit, _ = bootstrap_chinchilla(
            fit, n, d, loss, target_flops=target_flops, n_resamples=n_bootstrap, rng=rng
        )
        rep.fits["chinchilla"] = fit
        rep.convention = fit.convention
        rep.allocation["chinchilla"] = asdict(compute_optimal(fit.params, target_flops))
        rep.backtests["chinchilla"] = _try(
            rep, "chinchilla back-test", bt.backtest_chinchilla, n, d, loss
        )
        rep.sensitivity = bt.convention_sensitivity(runs, target_flops=target_flops)
    if has_budgets:
        iso = _try(rep, "isoflop", fit_isoflop, n, d, loss, budgets)
        if iso is not None:
            iso = bootstrap_isoflop(
                iso, n, loss, budgets, target_flops=target_flops, n_resamples=n_bootstrap, rng=rng
            )
            rep.fits["isoflop"] = iso
            p = iso.params
            n_s = p["k_N"] * target_flops ** p["a"]
            rep.allocation["isoflop"] = {
                "flops": target_flops,
                "n_params": n_s,
                "n_tokens": target_flops / (6 * n_s),
                "tokens_per_param": target_flops / (6 * n_s * n_s),
                "loss": p["k_L"] * target_flops ** -p["gamma"],
            }
            rep.backtests["isoflop"] = _try(
                rep, "isoflop back-test", bt.backtest_isoflop, n, d, loss, budgets
            )
    else:
        rep.skipped["isoflop"] = "no run has a flops_budget (not an IsoFLOP sweep)"
    used = curves[curves["included"].fillna(False).astype(bool)]
    env = _try(rep, "envelope", fit_envelope, used) if len(used) else None
    if env is not None:
        rep.fits["envelope"] = env
    elif "envelope" not in rep.skipped:
        rep.skipped["envelope"] = "no curve.jsonl evaluations in the included runs"
    for var, x in (("N", n), ("D", d), ("C", data["C"].to_numpy())):
        f = _try(rep, f"kaplan_{var}", fit_power_law, x, loss, variable=var)
        if f is not None:
            rep.fits[f"kaplan_{var}"] = f
    rep.backtests["kaplan_N"] = _try(rep, "kaplan_N back-test", bt.backtest_power_law, n, loss)
    joint = _try(rep, "kaplan_joint", fit_kaplan_joint, n, d, loss)
    if joint is not None:
        rep.fits["kaplan_joint"] = joint
    if figures:
        rep.figures = _draw(rep, data, used, budgets)
    _write(rep, runs)
    return rep


def _draw(rep: Report, data, curves, budgets) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window; set before pyplot is imported
    from . import plots

    names: list[str] = []
    fig_dir = rep.out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)

    def save(ax, name):
        plots.save_figure(ax, fig_dir / name)
        names.append(name)

    ch = rep.fits.get("chinchilla")
    save(plots.plot_loss_vs_size(data, ch, by="N"), "loss_vs_n")
    save(plots.plot_loss_vs_size(data, ch, by="D"), "loss_vs_d")
    if len(curves):
        env = rep.fits.get("envelope")
        save(
            plots.plot_curves_envelope(curves, env.details["envelope"] if env else None),
            "curves_envelope",
        )
    import pandas as pd

    points = pd.DataFrame(columns=["C", "n_star", "d_star"])
    if "isoflop" in rep.fits:
        save(plots.plot_isoflop(rep.fits["isoflop"]), "isoflop")
        good = [p for p in rep.fits["isoflop"].details["parabolas"] if p.accepted]
        points = pd.DataFrame(
            {
                "C": [p.budget for p in good],
                "n_star": [p.n_star for p in good],
                "d_star": [p.budget / (6 * p.n_star) for p in good],
            }
        )
    laws = {k: rep.fits[k] for k in ("chinchilla", "isoflop", "envelope") if k in rep.fits}
    if laws:
        for which in ("N", "D"):
            save(
                plots.plot_optimal_allocation(points, laws, target=rep.target_flops, which=which),
                f"optimal_{which.lower()}",
            )
    if ch is not None:
        c_range = (float(data["C"].min()), rep.target_flops)
        n_range = (float(data["N"].min()) / 3, float(data["N"].max()) * 30)
        save(plots.plot_isoloss(ch, c_range=c_range, n_range=n_range), "isoloss")
        save(plots.plot_residuals(data, ch), "residuals")
    return names


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.4g}"


def _write(rep: Report, runs) -> None:
    runs.drop(columns=["config_key"], errors="ignore").to_csv(rep.out_dir / "runs.csv", index=False)
    fits_json = {
        "target_flops": rep.target_flops,
        "convention": rep.convention,
        "fits": {
            k: {kk: vv for kk, vv in f.to_dict().items() if kk != "details"}
            for k, f in rep.fits.items()
        },
        "allocation": rep.allocation,
        "backtests": {k: asdict(v) for k, v in rep.backtests.items() if v is not None},
        "skipped": rep.skipped,
        "excluded_runs": rep.excluded,
        "n_runs": rep.n_runs,
    }
    if rep.sensitivity is not None:
        fits_json["convention_sensitivity"] = rep.sensitivity.to_dict(orient="records")
    (rep.out_dir / "fits.json").write_text(json.dumps(_jsonable(fits_json), indent=2) + "\n")
    lines = [
        f"# Scaling-law report: {rep.out_dir.parent.name}",
        "",
        f"{rep.n_runs} runs read; excluded from fits: {rep.excluded or 'none'}.",
        "",
        f"Convention: {rep.convention}.",
        "",
        f"Target compute: {rep.target_flops:.3g} FLOPs.",
        "",
        "## Fits",
        "",
        "| law | parameter | value | 95% interval |",
        "| --- | --- | --- | --- |",
    ]
    for name, f in rep.fits.items():
        for k, v in f.params.items():
            if k.startswith("log_"):
                continue
            lo, hi = f.intervals.get(k, (math.nan, math.nan))
            iv = f"[{_fmt(lo)}, {_fmt(hi)}]" if math.isfinite(lo) else ""
            lines.append(f"| {name} | {k} | {_fmt(v)} | {iv} |")
    lines += [
        "",
        "## Compute-optimal allocation at the target",
        "",
        "| law | N* | D* | tokens/param | loss |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, a in rep.allocation.items():
        lines.append(
            f"| {name} | {_fmt(a['n_params'])} | {_fmt(a['n_tokens'])} | "
            f"{_fmt(a['tokens_per_param'])} | {_fmt(a['loss'])} |"
        )
    lines += [
        "",
        "## Back-tests (refit without the largest scale)",
        "",
        "| law | held out | n test | mean abs rel err | max abs rel err | N* rel err |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, b in rep.backtests.items():
        if b is not None:
            lines.append(
                f"| {name} | {b.held_out} | {b.n_test} | {b.mean_abs_rel_error:.2%} | "
                f"{b.max_abs_rel_error:.2%} | {_fmt(b.n_star_rel_error)} |"
            )
    if rep.sensitivity is not None:
        lines += [
            "",
            "## Convention sensitivity (approach 3, C = 6ND with each N)",
            "",
            rep.sensitivity.to_markdown(index=False)
            if _has_tabulate()
            else "```\n" + rep.sensitivity.to_string(index=False) + "\n```",
        ]
    warns = [w for f in rep.fits.values() for w in f.warnings]
    if rep.skipped or warns:
        lines += ["", "## Skipped fits and warnings", ""]
        lines += [f"- {k}: skipped: {v}" for k, v in rep.skipped.items()]
        lines += [f"- {w}" for w in warns]
    if rep.figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{f}](figures/{f}.png)" for f in rep.figures]
    (rep.out_dir / "report.md").write_text("\n".join(lines) + "\n")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def summarize(rep: Report) -> str:
    """A few lines: the laws with intervals, N*, D*, loss at the target, back-test errors."""
    out = [
        f"{rep.n_runs} runs, excluded {rep.excluded or 'none'}; target C = {rep.target_flops:.3g}"
    ]

    def iv(f, k):
        lo, hi = f.intervals.get(k, (math.nan, math.nan))
        return f"{_fmt(f.params[k])} [{_fmt(lo)}, {_fmt(hi)}]"

    if "chinchilla" in rep.fits:
        f = rep.fits["chinchilla"]
        out.append(
            "approach 3: " + ", ".join(f"{k} {iv(f, k)}" for k in ("a", "b", "alpha", "beta", "E"))
        )
        if "n_star" in f.intervals:
            out.append(
                f"  at target: N* {iv_named(f, 'n_star', rep, 'n_params')}, "
                f"D* {iv_named(f, 'd_star', rep, 'n_tokens')}, "
                f"loss {iv_named(f, 'loss_at_target', rep, 'loss')}"
            )
    if "isoflop" in rep.fits:
        f = rep.fits["isoflop"]
        a = rep.allocation["isoflop"]
        out.append(
            f"approach 2: a {iv(f, 'a')}, b {iv(f, 'b')}; at target N* "
            f"{_fmt(a['n_params'])}, D* {_fmt(a['n_tokens'])}"
        )
    for name, b in rep.backtests.items():
        if b is not None:
            out.append(
                f"back-test {name} ({b.held_out}): mean |rel err| "
                f"{b.mean_abs_rel_error:.2%}, max {b.max_abs_rel_error:.2%}"
            )
    out += [f"skipped {k}: {v}" for k, v in rep.skipped.items()]
    out.append(f"report: {rep.out_dir / 'report.md'}")
    return "\n".join(out)


def iv_named(f: FitResult, key: str, rep: Report, alloc_key: str) -> str:
    lo, hi = f.intervals[key]
    return f"{_fmt(rep.allocation['chinchilla'][alloc_key])} [{_fmt(lo)}, {_fmt(hi)}]"
