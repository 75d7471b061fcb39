"""Several sweeps (or architectures) side by side: one loss-vs-compute and one loss-vs-N figure
(Kaplan et al. 2020, Fig. 7 style) and a table of each one's laws.

A series is one (sweep folder, arch) pair: a folder holding runs of two architectures gives two
series. Each series gets approach 3 (with a light bootstrap for the prediction's interval) and,
when it has curves, the approach-1 envelope; a series the data cannot fit is listed with its reason.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AnalysisError

__all__ = ["build_comparison"]


def _series(path) -> list[dict]:
    """The series of one source: a results folder, or a table (a DataFrame from `load_table`)."""
    from ..inputs.run_records import fit_runs
    from ..inputs.sources import load_source
    from ..laws.chinchilla import fit_chinchilla
    from ..laws.envelope import fit_envelope

    runs, curves = load_source(path)
    table = runs.attrs.get("table")
    name = str(table["name"]) if table else Path(path).resolve().name
    archs = sorted(runs["arch"].dropna().astype(str).unique()) or [""]
    out = []
    for arch in archs:
        sub = runs[runs["arch"] == arch] if arch else runs
        sub = sub.reset_index(drop=True)
        sub.attrs = dict(runs.attrs)
        label = name + (f" ({arch})" if len(archs) > 1 or arch else "")
        where = runs.attrs.get("path", "")
        s: dict[str, Any] = {"label": label, "path": where, "arch": arch, "n_runs": len(sub)}
        try:
            data = fit_runs(sub)
        except AnalysisError as e:
            s["skipped"] = str(e)
            out.append(s)
            continue
        s["data"] = data
        n, d, loss = (data[k].to_numpy() for k in ("N", "D", "L"))
        try:
            s["fit"] = fit_chinchilla(n, d, loss)
        except AnalysisError as e:
            s["skipped"] = f"approach 3: {e}"
        used = curves[curves["run_id"].isin(data["run_id"])]
        try:
            s["envelope"] = fit_envelope(used).details["envelope"] if len(used) else None
        except AnalysisError:
            s["envelope"] = None
        out.append(s)
    return out


def build_comparison(
    paths: list,
    *,
    out: str | os.PathLike[str],
    target_flops: float | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> tuple[Path, list[dict]]:
    """Fit each sweep (per arch) and write `<out>/report.md`, `compare.json` and the figures
    `compare_compute` and `compare_size` (PNG and SVG). Returns (out folder, series).
    `paths`: results folders, or tables (DataFrames from `load_table`: one series per group)."""
    import matplotlib

    matplotlib.use("Agg")
    from ..laws.bootstrap import bootstrap_chinchilla
    from ..laws.chinchilla import compute_optimal
    from . import plots

    rng = np.random.default_rng(seed)
    series = [s for p in paths for s in _series(p)]
    fitted = [s for s in series if "data" in s]
    if not fitted:
        raise AnalysisError(
            "compare: no sweep has usable runs: "
            + "; ".join(f"{s['label']}: {s.get('skipped')}" for s in series)
        )
    if target_flops is None:
        target_flops = 10 * max(float(s["data"]["C"].max()) for s in fitted)
    for s in fitted:
        if s.get("fit") is not None:
            n, d, loss = (s["data"][k].to_numpy() for k in ("N", "D", "L"))
            s["fit"], _ = bootstrap_chinchilla(
                s["fit"], n, d, loss, target_flops=target_flops, n_resamples=n_bootstrap, rng=rng
            )
            s["allocation"] = compute_optimal(s["fit"].params, target_flops)
    out_dir = Path(out)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    plots.save_figure(
        plots.plot_compare_compute(fitted, target=target_flops), out_dir / "figures/compare_compute"
    )
    plots.save_figure(plots.plot_compare_size(fitted), out_dir / "figures/compare_size")
    rows, table = [], []
    for s in series:
        f = s.get("fit")
        row: dict[str, Any] = {"label": s["label"], "path": s["path"], "arch": s["arch"],
                               "n_runs": s["n_runs"], "skipped": s.get("skipped")}  # fmt: skip
        if f is not None:
            row["params"] = {k: f.params[k] for k in ("E", "A", "B", "alpha", "beta", "a", "b")}
            row["intervals"] = {k: list(v) for k, v in f.intervals.items()}
            a = s.get("allocation")
            if a is not None:
                row["prediction"] = {"flops": target_flops, "n_params": a.n_params,
                                     "n_tokens": a.n_tokens, "loss": a.loss}  # fmt: skip
        rows.append(row)
        if f is None:
            table.append(f"| {s['label']} | {s['n_runs']} | skipped: {s.get('skipped')} |||||||")
            continue
        p, a = f.params, s.get("allocation")
        assert a is not None  # set with every fit
        lo, hi = f.intervals.get("loss_at_target", (math.nan, math.nan))
        table.append(
            f"| {s['label']} | {len(s['data'])} | {p['alpha']:.3f} | {p['beta']:.3f} | "
            f"{p['E']:.3f} | {p['a']:.3f} | {a.n_params:.3g} | {a.n_tokens:.3g} | "
            f"{a.loss:.4f} [{lo:.4f}, {hi:.4f}] |"
        )
    lines = [
        "# Scaling laws compared",
        "",
        "Approach 3, L(N, D) = E + A/N^alpha + B/D^beta, fitted to each sweep (and each "
        f"architecture) separately; prediction at C = {target_flops:.3g} FLOPs "
        f"(C = 6 N D, N = matmul parameters incl. head) with a 95% bootstrap interval "
        f"({n_bootstrap} resamples).",
        "",
        "| series | runs fitted | alpha | beta | E | a (N* ~ C^a) | N* | D* | loss at target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *table,
        "",
        "![loss vs compute](figures/compare_compute.png)",
        "",
        "![loss vs N](figures/compare_size.png)",
        "",
    ]
    for s in series:  # a section per series, linking its own report where the CLI wrote one
        f, own = s.get("fit"), out_dir / str(s["arch"]) / "report.md"
        lines += [f"## {s['label']}", ""]
        if f is None:
            lines += [f"Skipped: {s.get('skipped')}", ""]
            continue
        p = f.params
        lines.append(f"{len(s['data'])} runs; L = {p['E']:.4g} + {p['A']:.4g}/N^{p['alpha']:.3f} "
                     f"+ {p['B']:.4g}/D^{p['beta']:.3f}.")  # fmt: skip
        lines += [f"Full report: [{s['arch']}/report.md]({s['arch']}/report.md)", ""] if s[
            "arch"] and own.exists() else [""]  # fmt: skip
    (out_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")
    from .build import jsonable

    (out_dir / "compare.json").write_text(
        json.dumps(jsonable({"target_flops": target_flops, "series": rows}), indent=2) + "\n"
    )
    return out_dir, series
