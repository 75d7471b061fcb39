"""Learning-rate schedules as a function of the step, sized to the run's actual number of steps."""

from __future__ import annotations

import math

from sweeps.config import ScheduleConfig

__all__ = ["lr_at", "warmup_steps", "decay_start"]


def warmup_steps(cfg: ScheduleConfig, n_steps: int) -> int:
    """Linear warmup length: warmup_steps when set (a length shared by runs of different
    lengths, as WSD branches need), else warmup_frac of the run, at least one step when on."""
    if cfg.warmup_steps is not None:
        return min(cfg.warmup_steps, n_steps)
    if cfg.warmup_frac <= 0:
        return 0
    return max(1, round(cfg.warmup_frac * n_steps))


def decay_start(cfg: ScheduleConfig, n_steps: int) -> int:
    """WSD: the step at which the cooldown starts, (1 - decay_frac) of the way through."""
    return max(warmup_steps(cfg, n_steps), n_steps - max(1, round(cfg.decay_frac * n_steps)))


def lr_at(step: int, *, n_steps: int, lr: float, cfg: ScheduleConfig) -> float:
    """Learning rate used for optimizer step `step` (0-based) of a run of `n_steps` steps.

    - warmup: linear from lr/warmup to lr over the first warmup steps (never zero at step 0);
    - cosine: from lr down to min_lr_frac * lr, reached exactly at the last step;
    - wsd: constant lr, then a cooldown to 0 over the last decay_frac of the steps, shaped
      linear or 1-sqrt (Hagele et al. 2024), the last step at (almost) 0;
    - constant: lr after warmup.
    """
    n_warm = warmup_steps(cfg, n_steps)
    if step < n_warm:
        return lr * (step + 1) / n_warm
    if cfg.name == "constant":
        return lr
    if cfg.name == "cosine":
        span = n_steps - 1 - n_warm
        # A run whose only step after warmup is its last still ends at the floor (unless that
        # step is the whole run: a one-step run trains at the peak rather than not at all).
        progress = min(1.0, (step - n_warm) / span) if span > 0 else float(step > 0)
        floor = cfg.min_lr_frac * lr
        return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * progress))
    if cfg.name == "wsd":
        start = decay_start(cfg, n_steps)
        if step < start:
            return lr
        # progress reaches 1 at the last step, so the final update uses a (near) zero rate.
        progress = (step - start + 1) / max(1, n_steps - start)
        if cfg.decay_shape == "linear":
            return lr * (1.0 - progress)
        return lr * (1.0 - math.sqrt(progress))
    raise ValueError(f"unknown schedule {cfg.name!r}")
