"""Figures of the fits. Compute first, draw second: each `plot_*` takes data and fit results,
draws on `ax` (a new figure if None) and returns the Axes. No global style, no plt.show()."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..laws.chinchilla import chinchilla_loss, compute_optimal
from ..prediction.forms import law_optimal
from ..result_types import FitResult

if TYPE_CHECKING:
    from ..prediction.recommend import Prediction, Recommendation

__all__ = [
    "plot_loss_vs_size",
    "plot_curves_envelope",
    "add_loss_frontier",
    "plot_compare_compute",
    "plot_compare_size",
    "plot_isoflop",
    "plot_optimal_allocation",
    "plot_isoloss",
    "plot_residuals",
    "plot_recommendation",
    "save_figure",
]


LAW_LABELS = {
    "chinchilla": "approach 3 (parametric fit)",
    "isoflop": "approach 2 (IsoFLOP)",
    "envelope": "approach 1 (envelope)",
}


def _ax(ax: Axes | None) -> Axes:
    return plt.subplots(figsize=(6, 4.5))[1] if ax is None else ax


def _legend(ax: Axes, **kw) -> None:
    """A legend where something is labelled (matplotlib warns on every empty one otherwise: an
    axes whose laws could not be fitted)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _plain_log_y(ax: Axes) -> None:
    """Losses span well under a decade: label the log axis 2.1, 2.2 ... instead of 2.1 x 10^0."""
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _interval_bar(ax: Axes, x: float, mid: float, lo: float, hi: float, *, color: str) -> None:
    """A bootstrap interval [lo, hi] at x with the point estimate. Unlike `errorbar`, it does not
    assume the estimate lies inside the percentile interval (a skewed bootstrap can put it out)."""
    ax.vlines(x, lo, hi, color=color, lw=1.2)
    ax.plot([x, x], [lo, hi], ls="none", marker="_", ms=8, color=color)
    ax.plot([x], [mid], ls="none", marker="o", ms=3, color=color)


MAX_GROUPS = 12  # curves on one loss-vs-size figure: more distinct N or D are binned


def plot_loss_vs_size(
    data: pd.DataFrame,
    fit: FitResult | None = None,
    *,
    by: str = "N",
    budget=None,
    ax: Axes | None = None,
) -> Axes:
    """Loss against N for each D (by="N"), or against D for each N (by="D"), with the approach-3
    curves. When those groups are mostly single runs (an IsoFLOP design) and `budget` (the compute
    budget of each row) is given, the groups are the budgets and the curves follow D = C / 6N."""
    ax = _ax(ax)
    other = "D" if by == "N" else "N"
    key = data[other].to_numpy()
    iso = budget is not None and len(np.unique(key)) > len(key) / 2
    if iso:
        key = np.asarray(budget, float)
    elif np.unique(key).size > MAX_GROUPS:
        # thousands of distinct D (a curve table, runs of any length) drew one curve each: minutes
        # of drawing, and an unreadable figure; MAX_GROUPS log-spaced bins, each at its geometric
        # mean, say the same
        edges = np.geomspace(key.min(), key.max(), MAX_GROUPS + 1)
        label_of = np.clip(np.searchsorted(edges, key, side="right") - 1, 0, MAX_GROUPS - 1)
        means = {b: float(np.exp(np.mean(np.log(key[label_of == b])))) for b in set(label_of)}
        key = np.array([means[b] for b in label_of])
    groups = sorted(np.unique(key))
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(groups), 2)))
    for color, g in zip(colors, groups, strict=False):
        sub = data[key == g].sort_values(by)
        label = f"C={g:.2g}" if iso else f"{other}={g:.2g}"
        ax.scatter(sub[by], sub["L"], color=color, s=14, label=label if fit is None else None)
        if fit is not None and len(sub) > 1:
            x = np.geomspace(sub[by].min(), sub[by].max(), 50)
            if iso:
                n, d = (x, g / (6 * x)) if by == "N" else (g / (6 * x), x)
            else:
                n, d = (x, np.full_like(x, g)) if by == "N" else (np.full_like(x, g), x)
            ax.plot(x, chinchilla_loss(fit.params, n, d), color=color, lw=1, label=label)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=f"{by} ({'parameters' if by == 'N' else 'tokens'})",
        ylabel="loss (nats/token)",
    )
    _plain_log_y(ax)
    if len(groups) <= 12:
        title = "approach-3 fit along each IsoFLOP budget" if iso else "approach-3 fit"
        _legend(ax, fontsize=6, title=title if fit is not None else None, title_fontsize=7)
    return ax


def plot_curves_envelope(
    curves: pd.DataFrame, envelope: pd.DataFrame | None = None, *, ax: Axes | None = None
) -> Axes:
    """Every training curve as loss against C = 6 N t, and the lower envelope (approach 1)."""
    ax = _ax(ax)
    df = curves.dropna(subset=["loss", "n_tokens", "n_params"])
    for _, g in df.groupby("run_id"):
        ax.plot(6 * g["n_params"] * g["n_tokens"], g["loss"], color="0.7", lw=0.6)
    if envelope is not None:
        ax.plot(envelope["C"], envelope["L"], "o-", color="C3", ms=3, label="lower envelope")
        _legend(ax)
    ax.set(xscale="log", yscale="log", xlabel="compute C = 6ND (FLOPs)", ylabel="loss (nats/token)")
    _plain_log_y(ax)
    return ax


def _frontier_loss(name: str, fit: FitResult, c: np.ndarray) -> np.ndarray:
    """Predicted compute-optimal loss L(C) of an approach-3 or approach-2 fit."""
    if name == "chinchilla":
        return np.asarray(compute_optimal(fit.params, c).loss)
    p = fit.params
    return p.get("E", 0.0) + p["k_L"] * c ** -p["gamma"]


def add_loss_frontier(
    ax: Axes,
    fits: Mapping[str, FitResult],
    *,
    target: float,
    verify: dict | None = None,
) -> Axes:
    """On a loss-vs-compute Axes: each law's compute-optimal loss L(C) out to `target`, its
    bootstrap interval at the target, and the verify run (achieved loss) if given."""
    lo_c = ax.get_xlim()[0]
    c = np.geomspace(lo_c, target, 80)
    labels = {"chinchilla": "approach 3 frontier L(C)", "isoflop": "approach 2 L*(C)"}
    for i, (name, fit) in enumerate(fits.items()):
        y = _frontier_loss(name, fit, c)
        ax.plot(c, y, color=f"C{i}", lw=1.3, ls="--", label=labels.get(name, name))
        if "loss_at_target" in fit.intervals:
            lo, hi = fit.intervals["loss_at_target"]
            _interval_bar(ax, target, y[-1], lo, hi, color=f"C{i}")
    if verify is not None:
        ax.plot([verify.get("flops", verify["target_flops"])], [verify["achieved"]], "D",
                color="k", mfc="none", ms=7, label="verify run (achieved)")  # fmt: skip
    ax.axvline(target, color="0.5", ls=":", lw=1)
    _legend(ax, fontsize=7)
    return ax


def plot_compare_compute(series: list[dict], *, target: float, ax: Axes | None = None) -> Axes:
    """Several sweeps on one loss-vs-compute figure: each one's final losses (points), approach-1
    envelope (thin line) and approach-3 compute-optimal frontier L(C) out to `target` (dashed).
    series: dicts with label, data (N, D, C, L columns), fit (approach 3 or None), envelope."""
    ax = _ax(ax)
    for i, s in enumerate(series):
        color = f"C{i}"
        data = s["data"]
        ax.scatter(data["C"], data["L"], s=10, color=color, alpha=0.6)
        env = s.get("envelope")
        if env is not None:
            ax.plot(env["C"], env["L"], "-", color=color, lw=0.8, alpha=0.8)
        if s.get("fit") is not None:
            c = np.geomspace(float(data["C"].min()), target, 80)
            ax.plot(c, compute_optimal(s["fit"].params, c).loss, "--", color=color, lw=1.5,
                    label=f"{s['label']}: approach-3 frontier")  # fmt: skip
        else:
            ax.plot([], [], color=color, label=s["label"])
    ax.axvline(target, color="0.5", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="compute C = 6ND (FLOPs)",
           ylabel="loss (nats/token)", title="points: runs; thin: envelope")  # fmt: skip
    _plain_log_y(ax)
    _legend(ax, fontsize=7)
    return ax


def plot_compare_size(series: list[dict], *, ax: Axes | None = None) -> Axes:
    """Loss against N for several sweeps (Kaplan et al. 2020, Fig. 7): every run (points) and
    each approach-3 law's infinite-data limit E + A/N^alpha (line)."""
    ax = _ax(ax)
    for i, s in enumerate(series):
        color = f"C{i}"
        data = s["data"]
        ax.scatter(data["N"], data["L"], s=10, color=color, alpha=0.6)
        if s.get("fit") is not None:
            p = s["fit"].params
            n = np.geomspace(float(data["N"].min()) / 2, float(data["N"].max()) * 4, 60)
            ax.plot(n, p["E"] + p["A"] * n ** -p["alpha"], color=color, lw=1.5,
                    label=f"{s['label']}: E + A/N^alpha (D -> inf)")  # fmt: skip
        else:
            ax.plot([], [], color=color, label=s["label"])
    ax.set(xscale="log", yscale="log", xlabel="N (matmul parameters incl. head)",
           ylabel="loss (nats/token)", title="loss vs model size")  # fmt: skip
    _plain_log_y(ax)
    _legend(ax, fontsize=7)
    return ax


def plot_isoflop(fit: FitResult, *, ax: Axes | None = None) -> Axes:
    """IsoFLOP profiles: points and parabola per budget, minima marked (x: rejected budget)."""
    ax = _ax(ax)
    parabolas = fit.details["parabolas"]
    colors = plt.cm.plasma(np.linspace(0, 0.85, max(len(parabolas), 2)))
    for color, p in zip(colors, parabolas, strict=False):
        ax.scatter(p.n_params, p.loss, color=color, s=12)
        if np.isfinite(p.coef[0]):
            x = np.linspace(np.log(min(p.n_params)), np.log(max(p.n_params)), 60)
            ax.plot(np.exp(x), np.polyval(p.coef, x), color=color, lw=1, label=f"C={p.budget:.2g}")
        if p.accepted:
            ax.plot(p.n_star, p.loss_star, "*", color=color, ms=10, mec="k")
        else:
            ax.plot(p.n_params[int(np.argmin(p.loss))], min(p.loss), "x", color="k", ms=8)
    ax.set(xscale="log", xlabel="N (parameters)", ylabel="loss (nats/token)")
    _legend(ax, fontsize=6)
    return ax


def plot_optimal_allocation(
    points: pd.DataFrame,
    fits: Mapping[str, FitResult],
    *,
    target: float,
    which: str = "N",
    ax: Axes | None = None,
) -> Axes:
    """N*(C) (which="N") or D*(C) (which="D"): per-budget optima, each law's line extrapolated to
    `target`, and the approach-3 bootstrap interval at the target as an error bar."""
    ax = _ax(ax)
    col = "n_star" if which == "N" else "d_star"
    if len(points):
        ax.scatter(points["C"], points[col], color="k", s=15, zorder=3, label="IsoFLOP optima")
    c_lo = points["C"].min() if len(points) else target / 1e3
    c = np.geomspace(min(c_lo, target), target, 60)
    for i, (name, fit) in enumerate(fits.items()):
        if name == "chinchilla":
            alloc = compute_optimal(fit.params, c)
            y = alloc.n_params if which == "N" else alloc.n_tokens
        else:
            p = fit.params
            y = p["k_N"] * c ** p["a"] if which == "N" else p["k_D"] * c ** p["b"]
        ax.plot(c, y, color=f"C{i}", label=LAW_LABELS.get(name, name))
        if col in fit.intervals:
            lo, hi = fit.intervals[col]
            _interval_bar(ax, target, y[-1], lo, hi, color=f"C{i}")
    ax.axvline(target, color="0.5", ls=":", lw=1)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="compute C (FLOPs)",
        ylabel="N* (parameters)" if which == "N" else "D* (tokens)",
    )
    _legend(ax, fontsize=7)
    return ax


def plot_isoloss(
    fit: FitResult,
    *,
    c_range: tuple[float, float],
    n_range: tuple[float, float],
    ax: Axes | None = None,
) -> Axes:
    """Approach-3 iso-loss contours in (C, N) (D = C / 6N) and the efficient frontier N*(C)."""
    ax = _ax(ax)
    c = np.geomspace(*c_range, 120)
    n = np.geomspace(*n_range, 120)
    cc, nn = np.meshgrid(c, n)
    loss = chinchilla_loss(fit.params, nn, cc / (6 * nn))
    cs = ax.contour(
        cc,
        nn,
        loss,
        levels=np.quantile(loss, np.linspace(0.02, 0.9, 12)),
        cmap="viridis",
        linewidths=0.8,
    )
    ax.clabel(cs, fontsize=6, fmt="%.2f")
    ax.plot(
        c,
        compute_optimal(fit.params, c).n_params,
        color="C3",
        lw=1.5,
        label="efficient frontier N*(C)",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="compute C (FLOPs)",
        ylabel="N (parameters)",
        ylim=n_range,
    )
    _legend(ax, fontsize=7)
    return ax


def plot_residuals(data: pd.DataFrame, fit: FitResult, *, ax: Axes | None = None) -> Axes:
    """Relative residual (observed / predicted - 1) of approach 3 against compute."""
    ax = _ax(ax)
    pred = chinchilla_loss(fit.params, data["N"], data["D"])
    ax.scatter(data["C"], data["L"] / pred - 1, s=10, c=np.log10(data["N"]), cmap="viridis")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="loss / predicted - 1")
    return ax


def plot_recommendation(
    rec: Recommendation,
    table: pd.DataFrame,
    predictions: Sequence[Prediction] = (),
    *,
    ax: Axes | None = None,
) -> Axes:
    """A table's runs (loss against C = 6ND), the recommended law's compute-optimal loss out to
    the farthest prediction, and each prediction with its calibrated interval."""
    assert rec.fit is not None
    ax = _ax(ax)
    c_runs = 6 * table["n_params"].to_numpy(float) * table["n_tokens"].to_numpy(float)
    sc = ax.scatter(c_runs, table["loss"], c=np.log10(table["n_params"].to_numpy(float)), s=12,
                    cmap="viridis", label="runs")  # fmt: skip
    ax.figure.colorbar(sc, ax=ax, label="log10 N")
    c_end = max([c_runs.max()] + [p.flops for p in predictions])
    c = np.geomspace(c_runs.min(), c_end, 80)
    ax.plot(c, law_optimal(rec.fit, c).loss, "k--", lw=1.2,
            label=f"{rec.law}: compute-optimal L(C)")  # fmt: skip
    for p in predictions:
        _interval_bar(ax, p.flops, p.loss, *p.interval, color="C3")
    if predictions:
        ax.plot([], [], color="C3", label=f"prediction, {predictions[0].level:.0%} interval")
    ax.set(xscale="log", yscale="log", xlabel="compute C = 6ND (FLOPs)", ylabel="loss (nats/token)")
    _plain_log_y(ax)
    _legend(ax, fontsize=7)
    return ax


def save_figure(ax: Axes, path_stem: str | Path) -> list[Path]:
    """Save the Axes' figure as PNG and SVG (path_stem without suffix), close it, return paths."""
    fig = ax.figure
    assert isinstance(fig, Figure)
    fig.tight_layout()
    out = []
    for suffix in (".png", ".svg"):
        p = Path(path_stem).with_suffix(suffix)
        fig.savefig(p, dpi=130)
        out.append(p)
    plt.close(fig)
    return out
