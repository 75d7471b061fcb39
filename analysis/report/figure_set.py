"""The report's figures: which plots a sweep's fits allow, drawn and saved as PNG and SVG."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..result_types import FitResult, Report

__all__ = ["draw_report_figures"]


def draw_report_figures(rep: Report, data, curves, budgets) -> list[str]:
    """Draw every figure the fits in `rep` support into `<out>/figures/`; return their names."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window; set before pyplot is imported
    import pandas as pd

    from . import plots

    names: list[str] = []
    fig_dir = rep.out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)

    def save(ax, name):
        plots.save_figure(ax, fig_dir / name)
        names.append(name)

    def draw(name, make) -> None:
        """One figure; one the fits cannot draw (every value NaN on a log axis, a flat
        surface's contours) is named in the report's warnings, and the others are drawn."""
        import matplotlib.pyplot as plt

        try:  # numpy's overflow notes from matplotlib's log axes at extreme values: not news
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                save(make(), name)
        except (ValueError, OverflowError, ZeroDivisionError, FloatingPointError) as e:
            plt.close("all")
            rep.diagnostics.append(f"figure {name} not drawn: {type(e).__name__}: {e}")

    ch = rep.fits.get("chinchilla")
    has_budgets = bool(np.isfinite(data["flops_budget"].to_numpy(float)).any())
    bud = budgets if has_budgets else None
    draw("loss_vs_n", lambda: plots.plot_loss_vs_size(data, ch, by="N", budget=bud))
    draw("loss_vs_d", lambda: plots.plot_loss_vs_size(data, ch, by="D", budget=bud))
    if len(curves):

        def envelope():
            env = rep.fits.get("envelope")
            ax = plots.plot_curves_envelope(curves, env.details["envelope"] if env else None)
            frontiers: dict[str, FitResult] = {
                k: rep.fits[k] for k in ("chinchilla", "isoflop") if k in rep.fits
            }
            plots.add_loss_frontier(ax, frontiers, target=rep.target_flops, verify=rep.verify)
            return ax

        draw("curves_envelope", envelope)
    points = pd.DataFrame(columns=["C", "n_star", "d_star"])
    if "isoflop" in rep.fits:
        draw("isoflop", lambda: plots.plot_isoflop(rep.fits["isoflop"]))
        good = [p for p in rep.fits["isoflop"].details["parabolas"] if p.accepted]
        points = pd.DataFrame(
            {
                "C": [p.budget for p in good],
                "n_star": [p.n_star for p in good],
                "d_star": [p.budget / (6 * p.n_star) for p in good],
            }
        )
    laws: dict[str, FitResult] = {
        k: rep.fits[k] for k in ("chinchilla", "isoflop", "envelope") if k in rep.fits
    }
    if laws:
        for which in ("N", "D"):

            def allocation(which=which):
                ax = plots.plot_optimal_allocation(
                    points, laws, target=rep.target_flops, which=which
                )
                v = rep.verify
                y = v.get("n_params" if which == "N" else "n_tokens") if v else None
                if v is not None and isinstance(y, int | float):
                    ax.plot([v.get("flops", v["target_flops"])], [y], "D", color="k", ms=6,
                            mfc="none", label="verify run")  # fmt: skip
                    ax.legend(fontsize=7)
                return ax

            draw(f"optimal_{which.lower()}", allocation)
    if ch is not None:
        c_range = (float(data["C"].min()), rep.target_flops)
        n_range = (float(data["N"].min()) / 3, float(data["N"].max()) * 30)
        draw("isoloss", lambda: plots.plot_isoloss(ch, c_range=c_range, n_range=n_range))
        draw("residuals", lambda: plots.plot_residuals(data, ch))
    from .wave_history import plot_wave_history, read_history

    loop = read_history(rep.out_dir.parent)  # a results folder's report sits in <sweep>/report
    if loop is not None:
        draw("interval_by_wave", lambda: plot_wave_history(loop))
    return names
