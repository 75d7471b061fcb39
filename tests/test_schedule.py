"""Learning-rate schedules, table-driven: warmup, cosine floor, WSD phases, monotone decay."""

from __future__ import annotations

import math

import pytest

from sweeps.config import ScheduleConfig
from sweeps.run.lr_schedule import decay_start, lr_at, warmup_steps

LR = 3e-3


def lrs(cfg: ScheduleConfig, n_steps: int) -> list[float]:
    return [lr_at(s, n_steps=n_steps, lr=LR, cfg=cfg) for s in range(n_steps)]


@pytest.mark.parametrize(
    ("cfg", "n_steps", "step", "expected"),
    [
        # warmup: linear from lr/n_warm at step 0 to lr at its last step, for every schedule
        (ScheduleConfig("cosine", warmup_frac=0.1), 100, 0, LR / 10),
        (ScheduleConfig("cosine", warmup_frac=0.1), 100, 4, LR * 5 / 10),
        (ScheduleConfig("cosine", warmup_frac=0.1), 100, 9, LR),
        (ScheduleConfig("wsd", warmup_frac=0.1), 100, 0, LR / 10),
        (ScheduleConfig("wsd", warmup_frac=0.1), 100, 9, LR),
        (ScheduleConfig("constant", warmup_frac=0.1), 100, 0, LR / 10),
        (ScheduleConfig("constant", warmup_frac=0.1), 100, 9, LR),
        # no warmup: the peak from step 0
        (ScheduleConfig("cosine", warmup_frac=0.0), 100, 0, LR),
        (ScheduleConfig("constant", warmup_frac=0.0), 100, 0, LR),
        # cosine: peak right after warmup, half way down at the middle, floor at the last step
        (ScheduleConfig("cosine", warmup_frac=0.1, min_lr_frac=0.1), 100, 10, LR),
        (ScheduleConfig("cosine", warmup_frac=0.0, min_lr_frac=0.0), 101, 50, LR / 2),
        (ScheduleConfig("cosine", warmup_frac=0.1, min_lr_frac=0.1), 100, 99, 0.1 * LR),
        (ScheduleConfig("cosine", warmup_frac=0.0, min_lr_frac=0.0), 100, 99, 0.0),
        (ScheduleConfig("cosine", warmup_frac=0.05, min_lr_frac=0.2), 7, 6, 0.2 * LR),
        (ScheduleConfig("cosine", warmup_frac=0.05, min_lr_frac=0.1), 2, 1, 0.1 * LR),
        # wsd: constant up to (1 - decay_frac) * n_steps, then the cooldown to 0 at the last step
        (ScheduleConfig("wsd", warmup_frac=0.1, decay_frac=0.2), 100, 79, LR),
        (
            ScheduleConfig("wsd", warmup_frac=0.1, decay_frac=0.2, decay_shape="linear"),
            100,
            80,
            LR * (1 - 1 / 20),
        ),
        (
            ScheduleConfig("wsd", warmup_frac=0.1, decay_frac=0.2, decay_shape="linear"),
            100,
            89,
            LR * 0.5,
        ),
        (
            ScheduleConfig("wsd", warmup_frac=0.1, decay_frac=0.2, decay_shape="1-sqrt"),
            100,
            80,
            LR * (1 - math.sqrt(1 / 20)),
        ),
        (
            ScheduleConfig("wsd", warmup_frac=0.1, decay_frac=0.2, decay_shape="1-sqrt"),
            100,
            94,
            LR * (1 - math.sqrt(0.75)),
        ),
        (ScheduleConfig("wsd", decay_frac=0.2, decay_shape="linear"), 100, 99, 0.0),
        (ScheduleConfig("wsd", decay_frac=0.2, decay_shape="1-sqrt"), 100, 99, 0.0),
        # constant: the peak to the end
        (ScheduleConfig("constant", warmup_frac=0.1), 100, 50, LR),
        (ScheduleConfig("constant", warmup_frac=0.1), 100, 99, LR),
    ],
)
def test_lr_at_table(cfg: ScheduleConfig, n_steps: int, step: int, expected: float) -> None:
    assert lr_at(step, n_steps=n_steps, lr=LR, cfg=cfg) == pytest.approx(
        expected, rel=1e-12, abs=1e-15
    )


@pytest.mark.parametrize(
    ("n_steps", "decay_frac", "start"),
    [(100, 0.2, 80), (1000, 0.1, 900), (50, 0.5, 25), (10, 1.0, 1)],
)
def test_wsd_cooldown_starts_at_one_minus_decay_frac(n_steps: int, decay_frac: float, start: int):
    cfg = ScheduleConfig("wsd", warmup_frac=0.01, decay_frac=decay_frac, decay_shape="linear")
    assert decay_start(cfg, n_steps) == start
    assert lr_at(start - 1, n_steps=n_steps, lr=LR, cfg=cfg) == LR
    assert lr_at(start, n_steps=n_steps, lr=LR, cfg=cfg) < LR


def test_warmup_never_zero_and_at_least_one_step() -> None:
    cfg = ScheduleConfig("cosine", warmup_frac=0.001)
    assert warmup_steps(cfg, 10) == 1
    assert warmup_steps(ScheduleConfig("cosine", warmup_frac=0.0), 10) == 0
    assert all(v > 0 for v in lrs(ScheduleConfig("cosine", warmup_frac=0.5), 10)[:5])


@pytest.mark.parametrize("n_steps", [1, 2, 3, 7, 20, 100, 1001])
@pytest.mark.parametrize(
    "cfg",
    [
        ScheduleConfig("cosine", warmup_frac=0.05, min_lr_frac=0.1),
        ScheduleConfig("cosine", warmup_frac=0.0, min_lr_frac=0.0),
        ScheduleConfig("wsd", warmup_frac=0.05, decay_frac=0.2, decay_shape="linear"),
        ScheduleConfig("wsd", warmup_frac=0.05, decay_frac=0.2, decay_shape="1-sqrt"),
        ScheduleConfig("constant", warmup_frac=0.05),
    ],
    ids=["cosine", "cosine-to-0", "wsd-linear", "wsd-1-sqrt", "constant"],
)
def test_shape_over_a_whole_run(cfg: ScheduleConfig, n_steps: int) -> None:
    """Rising through warmup, never above the peak, non-increasing after it, ending where each
    schedule says it ends (even when the run is only a few steps long)."""
    values = lrs(cfg, n_steps)
    n_warm = warmup_steps(cfg, n_steps)
    assert all(0 <= v <= LR * (1 + 1e-12) for v in values)
    assert all(a < b for a, b in zip(values[:n_warm], values[1:n_warm], strict=False))
    after = values[n_warm - 1 if n_warm else 0 :]
    assert all(b <= a for a, b in zip(after, after[1:], strict=False))
    if n_steps > max(n_warm, 1):  # a last step after warmup ends the schedule exactly
        end = {"cosine": cfg.min_lr_frac * LR, "wsd": 0.0, "constant": LR}[cfg.name]
        assert values[-1] == pytest.approx(end, abs=1e-15)
