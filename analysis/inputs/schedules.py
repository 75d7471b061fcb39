"""The learning-rate schedules behind the fitted runs, and a warning when one fit mixes several.

At the same (N, D) the schedule moves the final loss: on this project's benchmark WSD cooldown
branches and from-scratch cosine runs, each at its best lr, differed by up to 2.7% either way
(README, `benchmarks/wsd_branches.py`), and a cosine run's floor (`schedule.min_lr_frac`) or a run
that never cools down (`constant`) moves it too. A law fitted over runs of several schedules
fits that offset along whatever N or D the schedules split on, so the report says which schedules
it mixed and how many runs each. Runs whose record has no schedule in its config (hand-made or
foreign records) are not counted.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["schedule_label", "schedule_mix"]


def schedule_label(row: pd.Series) -> str | None:
    """What decides a run's schedule shape, in words (warmup aside); None when not recorded."""
    name = row.get("config.schedule.name")
    if not isinstance(name, str):
        return None
    if name == "cosine":
        floor = row.get("config.schedule.min_lr_frac")
        return "cosine" if floor is None or pd.isna(floor) else f"cosine to {floor:g} x lr"
    if name == "wsd":
        frac, shape = row.get("config.schedule.decay_frac"), row.get("config.schedule.decay_shape")
        if frac is None or pd.isna(frac):
            return "WSD"
        return f"WSD with a {float(frac):.0%} {shape or ''} cooldown".replace("  ", " ")
    return name


def schedule_mix(data: pd.DataFrame) -> str | None:
    """A warning naming the schedules (and their run counts) when the fitted runs used more than
    one; None when they share one or record none."""
    if data.empty:
        return None
    labels = data.apply(schedule_label, axis=1).dropna()
    counts = labels.value_counts()
    if len(counts) < 2:
        return None
    each = "; ".join(f"{label}: {n} run(s)" for label, n in sorted(counts.items()))
    return (
        f"{len(counts)} learning-rate schedules mixed in one fit ({each}); at the same (N, D) "
        "the schedule moves the loss (WSD branches and cosine runs differed by up to 2.7% "
        "either way in benchmarks/wsd_branches.py), so the laws fit that offset too: analyse "
        "each schedule's runs in their own sweep folder"
    )
