"""analysis.hparams: trial points from records, optima, and the three panels."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from analysis.hparams import (  # noqa: E402
    plot_hparams,
    plot_loss_vs_lr,
    rule_lr,
    tune_optima,
    tune_points,
)


def _write(
    hand_record,
    sweep: Path,
    i: int,
    size: float,
    lr: float,
    batch: int,
    loss: float | None,
    tokens: float = 1e6,
) -> None:
    hand_record(
        sweep / f"run{i:03d}",
        status="ok" if loss is not None else "diverged",
        config={
            "model": {"n_params": size},
            "optim": {"lr": lr, "batch_size": batch},
            "budget": {"tokens": tokens},
        },
        n_params=int(size * 1.2),
        lr=lr,
        batch_size=batch,
        flops=6 * tokens * size,
        n_tokens=int(tokens),
        loss=loss if loss is not None else float("nan"),
    )


def test_points_optima_and_plots(tmp_path: Path, hand_record) -> None:
    sweep = tmp_path / "lr_tune"
    i = 0
    for size, best in ((3e3, 1e-2), (3e4, 4e-3)):
        for lr in (1e-3, 3e-3, 1e-2, 3e-2):
            loss = 2.0 + (np.log(lr / best)) ** 2 / 10 - np.log10(size) / 10
            _write(hand_record, sweep, i, size, lr, 16, float(loss))
            i += 1
    _write(hand_record, sweep, i, 3e3, 1.0, 16, None)
    points = tune_points(sweep)
    assert len(points) == 9 and points["loss"].isna().sum() == 1
    best = tune_optima(points)
    assert list(best["lr"]) == [1e-2, 3e-3]
    rules = {
        "lr": {
            "c": 0.5,
            "gamma": 0.4,
            "n_ref": 1e4,
            "lr_at_n_ref": 0.01,
            "gamma_interval": [0.3, 0.5],
        },
        "batch_size": {"k": 16, "p": 0.0, "min": 4, "max": 1024},
    }
    (sweep / "hparam_rules.json").write_text(json.dumps(rules))
    ax = plot_loss_vs_lr(points, rules=rules)
    assert ax.get_xscale() == "log" and len(ax.lines) > 4
    assert rule_lr(rules, 1e4) == 0.5 * 1e4**-0.4
    fig = plot_hparams(sweep)
    assert len(fig.axes) == 3


def test_one_size_at_two_horizons_is_two_studies(tmp_path: Path, hand_record) -> None:
    sweep = tmp_path / "lr_tune"
    i = 0
    for tokens, best, batch in ((5e5, 1e-2, 1), (8e6, 3e-2, 16)):
        for lr in (3e-3, 1e-2, 3e-2):
            _write(hand_record, sweep, i, 3e3, lr, batch, 2.0 + abs(np.log(lr / best)) / 10, tokens)
            i += 1
    points = tune_points(sweep)
    assert sorted(points["study"].unique()) == ["N=3000, tokens=500000", "N=3000, tokens=8e+06"]
    best = tune_optima(points)
    assert list(best["lr"]) == [1e-2, 3e-2] and list(best["batch_size"]) == [1, 16]
    rules = {
        "lr": {"c": 0.5, "gamma": 0.4, "delta": 0.4, "batch_ref": 4.0, "gamma_interval": None},
        "batch_size": {"of": "tokens", "k": 0.001, "p": 0.6, "min": 1, "max": 1024},
    }
    (sweep / "hparam_rules.json").write_text(json.dumps(rules))
    fig = plot_hparams(sweep)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["N=3,600, tokens=500000", "N=3,600, tokens=8e+06"]
