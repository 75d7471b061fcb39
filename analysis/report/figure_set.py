"""The report's figures: which plots a sweep's fits allow, drawn and saved as PNG and SVG.

`start_report_figures` draws them in a forked process while the report goes on fitting (Kaplan's
L(N, D) and the recommended law's back-test need nothing the figures show): on two cores the
figures, a third of a 250-run report's time, then cost almost nothing (docs/fidelity.md).
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..result_types import FitResult, Report

__all__ = ["draw_report_figures", "start_report_figures"]


class _Drawn:
    """Figures drawn already (in this process): `result()` gives their names."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def result(self) -> list[str]:
        return self.names


class _DrawingApart:
    """Figures being drawn by a forked child; `result()` waits for it and adds the diagnostics of
    figures it could not draw to the report, as `draw_report_figures` does in this process."""

    def __init__(self, rep: Report, args: tuple, draw) -> None:
        ctx = multiprocessing.get_context("fork")
        self.rep, self.args, self.draw = rep, args, draw
        self.recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_draw_child, args=(send, rep, args, draw), daemon=True)
        self.proc.start()
        send.close()

    def result(self) -> list[str]:
        try:
            names, diagnostics = self.recv.recv()
        except (EOFError, OSError):  # the child died (killed, out of memory): draw them here
            names = None
        self.proc.join()
        self.recv.close()
        if names is None:
            return self.draw(self.rep, *self.args)
        self.rep.diagnostics += diagnostics
        return names


def _draw_child(send: Any, rep: Report, args: tuple, draw) -> None:
    n0 = len(rep.diagnostics)
    try:
        names = draw(rep, *args)
        send.send((names, rep.diagnostics[n0:]))
    finally:
        send.close()


def start_report_figures(rep: Report, data, curves, budgets, *, draw=None, apart: bool = True):
    """Begin drawing `draw(rep, data, curves, budgets)` (default `draw_report_figures`): in a
    forked process on Linux when `apart` (the caller goes on with its fits; `rep.fits`' approach
    1-3 fits and `rep.verify` must be final), else here and now. Returns an object whose
    `result()` gives the figures' names."""
    draw = draw_report_figures if draw is None else draw
    if apart and sys.platform.startswith("linux"):
        return _DrawingApart(rep, (data, curves, budgets), draw)
    return _Drawn(draw(rep, data, curves, budgets))


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
        draw("interval_by_wave", lambda: plot_wave_history(loop, verify=rep.verify))
    return names
