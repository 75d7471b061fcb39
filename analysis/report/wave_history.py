"""The figure of a sweep that plans itself: the target's calibrated interval against the compute
spent, wave by wave (`python -m sweeps.adaptive` writes the history to
`results/<sweep>/waves/loop.json`; the report of that folder draws it)."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes

__all__ = ["LOOP_FILE", "read_history", "plot_wave_history"]

LOOP_FILE = Path("waves") / "loop.json"


def read_history(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The loop's state of a results folder, or None (no loop ran there, or its file is not
    readable JSON with a history)."""
    try:
        state = json.loads((Path(sweep_dir) / LOOP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(state, dict) and isinstance(state.get("history"), list) and state["history"]
    return state if ok else None


def plot_wave_history(
    state: dict[str, Any], *, verify: dict[str, Any] | None = None, ax: Axes | None = None
) -> Axes:
    """The predicted loss at the target and its calibrated 95% interval (bars) against the
    cumulative compute of the sweep, one point per wave (0: the seed grid); `verify` (the
    report's verify.json: a run trained at the target) as a line at its achieved loss."""
    import matplotlib.pyplot as plt

    ax = plt.subplots(figsize=(6, 4.5))[1] if ax is None else ax
    hist = [h for h in state["history"] if h.get("interval")]
    for h in hist:
        lo, hi = h["interval"]
        hi = hi if math.isfinite(hi) else h["loss"] * 10
        ax.errorbar([h["spent"]], [h["loss"]], yerr=[[h["loss"] - lo], [hi - h["loss"]]],
                    fmt="o", color="C3", capsize=4)  # fmt: skip
        ax.annotate(f"wave {h['wave']}\n+-{h['half_width']:.1%}", (h["spent"], hi),
                    textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)  # fmt: skip
    if verify and isinstance(verify.get("achieved"), int | float):
        ax.axhline(verify["achieved"], color="k", ls="--", lw=1,
                   label=f"verify run at the target: {verify['achieved']:.4f}")  # fmt: skip
        ax.legend(fontsize=7)
    tol = state.get("tolerance")
    if hist and tol:
        last = hist[-1]["loss"]
        ax.axhspan(last * (1 - tol), last * (1 + tol), color="0.9", zorder=0,
                   label=f"+-{tol:.0%} of the last prediction (the loop's tolerance)")  # fmt: skip
        ax.legend(fontsize=7)
    target = state.get("target_flops", math.nan)
    ax.set(xscale="log", xlabel="compute spent by the sweep, cumulative (FLOPs, C = 6ND)",
           ylabel="loss at the target (nats/token)",
           title=f"target C = {target:.3g}: calibrated 95% interval by wave")  # fmt: skip
    # room below the bars for the stop reason, and beside the first and last for their labels
    # (at the default 5% the last wave's bar sat on the frame)
    ax.margins(x=0.12, y=0.18)
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top + 0.22 * (top - bottom))  # and above them for labels and the legend
    if ax.get_legend() is not None:
        ax.legend(fontsize=7, loc="upper right")
    if state.get("stop"):  # whole, wrapped (cut at 110 characters it lost its last words)
        ax.text(0.01, 0.01, textwrap.fill(f"stopped: {state['stop']}", 105), fontsize=6,
                transform=ax.transAxes, va="bottom",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})  # fmt: skip
    return ax
