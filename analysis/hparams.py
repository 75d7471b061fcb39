"""Learning rate and batch size by scale: the trials of `sweep=lr_tune`, their optima and the rules.

Compute first (`tune_points`, `tune_optima`, `rule_lr`, `rule_batch`), draw second (`plot_*`, each
`ax=None` -> a new Axes, returns the Axes). Reads run records (sweeps.records) and the
`hparam_rules.json` that `python -m sweeps.tune fit` wrote; no torch, no Hydra.

    python -m analysis.hparams results/lr_tune   # -> results/lr_tune/hparams.png
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from sweeps.config import HORIZONS
from sweeps.records import RECORD_FILE, iter_run_dirs
from sweeps.run.hparam_rules import batch_rule, lr_rule
from sweeps.run_record import RUN_ID_VERSION, id_version_of

from .errors import AnalysisWarning

__all__ = [
    "tune_points",
    "tune_optima",
    "read_rules",
    "rule_lr",
    "rule_batch",
    "plot_loss_vs_lr",
    "plot_loss_vs_batch",
    "plot_lr_rule",
    "plot_hparams",
]

COLUMNS = [
    "run_id",
    "study",
    "size",
    "horizon",
    "n_params",
    "lr",
    "batch_size",
    "flops",
    "n_tokens",
    "loss",
    "status",
]


def tune_points(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per trial run: size (the model.n_params target), horizon (its budget, e.g.
    "tokens=4e+06"), study (a label for the pair), N (matmul), lr, batch, C, D, loss.

    A diverged or failed trial keeps its row with loss NaN (plotted as a cross on the axis floor).
    The studies are told apart by size and horizon, as sweeps.tune names them.
    """
    rows, older = [], 0
    for run_dir in iter_run_dirs(sweep_dir):
        path = Path(run_dir) / RECORD_FILE
        if not path.exists():
            continue
        rec = json.loads(path.read_text(encoding="utf-8"))
        if id_version_of(rec) < RUN_ID_VERSION:  # not a trial of this code's studies
            older += 1
            continue
        cfg = rec.get("config", {})
        resolved = cfg.get("resolved", {})
        loss = rec.get("loss")
        budget = cfg.get("budget", {})
        horizon = next(
            (f"{k}={float(budget[k]):g}" for k in HORIZONS if budget.get(k) is not None), ""
        )
        rows.append(
            {
                "run_id": rec.get("run_id"),
                "size": cfg.get("model", {}).get("n_params"),
                "horizon": horizon,
                "n_params": rec.get("n_params"),
                "lr": rec.get("lr", resolved.get("lr", cfg.get("optim", {}).get("lr"))),
                "batch_size": rec.get("batch_size", cfg.get("optim", {}).get("batch_size")),
                "flops": rec.get("flops"),
                "n_tokens": rec.get("n_tokens"),
                "loss": float(loss) if loss is not None else np.nan,
                "status": rec.get("status"),
            }
        )
    if older:
        warnings.warn(
            f"{older} trial record(s) in {sweep_dir} from an older run-id version (this code's "
            f"is {RUN_ID_VERSION}): left out of the trials and their optima; re-run the study "
            "with this code",
            AnalysisWarning,
            stacklevel=2,
        )
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "study"])
    one_horizon = df["horizon"].nunique() <= 1
    df.insert(
        1,
        "study",
        [
            f"N={s:g}" if one_horizon else f"N={s:g}, {h}"
            for s, h in zip(df["size"], df["horizon"], strict=True)
        ],
    )
    return df.sort_values(["size", "n_tokens", "lr"]).reset_index(drop=True)


def tune_optima(points: pd.DataFrame) -> pd.DataFrame:
    """Each study's best ok trial (lowest validation loss), in size then horizon order."""
    ok = points[(points["status"] == "ok") & np.isfinite(points["loss"])]
    best = ok.loc[ok.groupby("study")["loss"].idxmin()]
    return best.sort_values(["size", "n_tokens"]).reset_index(drop=True)


def read_rules(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def rule_lr(rules: dict[str, Any], n_params: Any, batch_size: Any = 1) -> np.ndarray:
    """lr*(N, B) = c N^-gamma B^delta, as the runs apply it (sweeps.run.hparam_rules.lr_rule)."""
    return lr_rule(rules, np.asarray(n_params, float), np.asarray(batch_size, float))


def rule_batch(rules: dict[str, Any], flops: Any, n_tokens: Any = None) -> np.ndarray:
    """batch*(C) = k C^p, or batch*(D) = k D^p (rules with "of": "tokens"), clamped and rounded
    as the runs would use it."""
    b = rules["batch_size"]
    x = n_tokens if b.get("of") == "tokens" else flops
    raw = batch_rule(rules, np.asarray(x, float))
    return np.clip(np.round(raw), b.get("min", 1), b.get("max", 1024))


def _ax(ax: Axes | None) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=(5.5, 4))[1]


def _plot_vs(
    points: pd.DataFrame, x: str, ax: Axes | None, marks: dict[Any, float], xlabel: str, title: str
) -> Axes:
    """Loss against column `x` per study (stars: optima, crosses: diverged, dashed: `marks`)."""
    ax = _ax(ax)
    order = list(dict.fromkeys(points["study"]))  # size, then horizon (tune_points' order)
    cmap = plt.get_cmap("viridis")
    colors = {s: cmap(i / max(1, len(order) - 1)) for i, s in enumerate(order)}
    best = tune_optima(points)
    floor = np.nanmax(points["loss"]) if np.isfinite(points["loss"]).any() else 1.0
    for study in order:
        g = points[points["study"] == study]
        ok = g[np.isfinite(g["loss"])].sort_values(x)
        label = study
        if g["n_params"].notna().any():
            label = study.replace(f"N={g['size'].iloc[0]:g}", f"N={int(g['n_params'].iloc[0]):,}")
        ax.plot(ok[x], ok["loss"], "o", color=colors[study], alpha=0.6, label=label)
        bad = g[~np.isfinite(g["loss"])]
        ax.plot(bad[x], np.full(len(bad), floor), "x", color=colors[study])
        b = best[best["study"] == study]
        ax.plot(b[x], b["loss"], "*", ms=14, color=colors[study], mec="k")
        if study in marks:
            ax.axvline(marks[study], color=colors[study], ls="--", lw=1)
    ax.set_xscale("log", base=2 if x == "batch_size" else 10)
    finite = points["loss"][np.isfinite(points["loss"])]
    if len(finite):  # zoom on the optima: bad trials would squash them into one line
        lo = float(finite.min())
        ax.set_ylim(lo - 0.02 * lo, min(float(finite.max()), 1.25 * lo) + 0.02 * lo)
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_loss_vs_lr(
    points: pd.DataFrame, *, rules: dict[str, Any] | None = None, ax: Axes | None = None
) -> Axes:
    """Loss against peak lr per study; stars: optima; dashed: the rules' lr (if rules), at the
    batch the batch rule gives there (what optim.lr=auto optim.batch_size=auto would run)."""
    marks = {}
    if rules is not None:
        for _, r in tune_optima(points).iterrows():
            batch = rule_batch(rules, r["flops"], r["n_tokens"])
            marks[r["study"]] = float(rule_lr(rules, r["n_params"], batch))
    title = "loss vs lr (x: diverged/failed; dashed: rule)"
    return _plot_vs(points, "lr", ax, marks, "peak learning rate", title)


def plot_loss_vs_batch(
    points: pd.DataFrame, *, rules: dict[str, Any] | None = None, ax: Axes | None = None
) -> Axes:
    """Loss against batch size (sequences) per study; dashed: the batch rule at the best C (D)."""
    marks = {}
    if rules is not None:
        best = tune_optima(points)
        marks = {
            r["study"]: float(rule_batch(rules, r["flops"], r["n_tokens"]))
            for _, r in best.iterrows()
        }
    xlabel = "batch size (sequences per step)"
    return _plot_vs(points, "batch_size", ax, marks, xlabel, "loss vs batch size")


def plot_lr_rule(
    points: pd.DataFrame, *, rules: dict[str, Any] | None = None, ax: Axes | None = None
) -> Axes:
    """Each study's optimum lr against N (log-log) and the fitted lr*(N) = c N^-gamma.

    With rules: the optima the rule was fitted to (quadratic vertex or best trial, per
    `method`) as dots, each study's single best trial as a grey cross; without: the best trials.
    Rules with a batch term (lr ~ B^delta) are drawn at their reference batch, and every lr is
    moved to that batch by the fitted delta, so optima at different batches compare.
    """
    ax = _ax(ax)
    best = tune_optima(points)
    fitted = (rules or {}).get("optima") or []
    lr_rule = (rules or {}).get("lr", {})
    delta = float(lr_rule.get("delta", 0.0))
    b_ref = float(lr_rule.get("batch_ref", 1.0)) if delta else 1.0

    def at_ref(lr: Any, batch: Any) -> np.ndarray:
        return np.asarray(lr, float) * (b_ref / np.asarray(batch, float)) ** delta

    if fitted:
        ax.loglog(
            best["n_params"],
            at_ref(best["lr"], best["batch_size"]),
            "x",
            color="0.5",
            label="best trial",
        )
        ax.loglog(
            [o["n_params"] for o in fitted],
            at_ref([o["lr"] for o in fitted], [o["batch_size"] for o in fitted]),
            "o",
            color="k",
            label="optimum (quadratic fit to near-best trials)",
        )
    else:
        ax.loglog(best["n_params"], best["lr"], "o", color="k", label="best trial")
    if rules is not None and len(best):
        n = np.geomspace(best["n_params"].min() / 2, best["n_params"].max() * 2, 50)
        gi = lr_rule.get("gamma_interval")
        label = f"{lr_rule['c']:.3g} N^-{lr_rule['gamma']:.2f}" + (
            f" (gamma 95% {gi[0]:.2f}..{gi[1]:.2f})" if gi else ""
        )
        if delta:
            label += f" B^{delta:.2f}, at B={b_ref:.2g}"
        ax.loglog(n, rule_lr(rules, n, b_ref), "-", color="C3", label=label)
        edge = [o for o in fitted if o.get("edges")]
        if edge:
            ax.loglog(
                [o["n_params"] for o in edge],
                at_ref([o["lr"] for o in edge], [o["batch_size"] for o in edge]),
                "o",
                ms=12,
                mfc="none",
                mec="C1",
                label="optimum at a range edge",
            )
    ax.set_xlabel("N (matmul parameters)")
    ax.set_ylabel("best peak learning rate" + (f" (moved to batch {b_ref:.2g})" if delta else ""))
    ax.legend(fontsize=7)
    return ax


def plot_hparams(sweep_dir: str | Path, *, rules_path: str | Path | None = None) -> Any:
    """The three panels for a lr_tune results folder; returns the Figure."""
    points = tune_points(sweep_dir)
    path = Path(rules_path) if rules_path else Path(sweep_dir) / "hparam_rules.json"
    rules = read_rules(path) if path.exists() else None
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    plot_loss_vs_lr(points, rules=rules, ax=axes[0])
    plot_loss_vs_batch(points, rules=rules, ax=axes[1])
    plot_lr_rule(points, rules=rules, ax=axes[2])
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m analysis.hparams results/lr_tune [out.png]", file=sys.stderr)
        return 2
    fig = plot_hparams(args[0])
    out = Path(args[1]) if len(args) > 1 else Path(args[0]) / "hparams.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
