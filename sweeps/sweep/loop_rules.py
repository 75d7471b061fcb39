"""The closed loop's rules, apart from its running (sweeps/adaptive.py): how much a wave may
spend, how much time the planner may fill, when the loop stops and why, and where it measures the
target's interval. Pure functions of numbers and the planner's answers: no training, no files."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_WAVES", "MIN_FOLDS", "TIME_RETRIES", "WAVE_FRACTION", "at_optimum", "stop_reason",
           "time_for_wave", "wave_allowance", "wave_within_time"]

WAVE_FRACTION = 0.5  # a wave spends this share of what is left (so later waves can adapt), all of
# it where this share buys nothing
# 3 (was 8): of 3, 4 and 8 waves each spending half of what is left, 3 had the smallest error on
# the planner's 24 tuning worlds with coverage of at least 90%; with the last wave spending all
# that is left (`wave_allowance`) the loop is the replay's 3-wave design, better still there
# (benchmarks/wave_count.py, docs/planning.md)
MAX_WAVES = 3
# back-test folds an interval needs before the loop trusts it enough to stop: with one, k rests on
# one held-out rung near the runs and the rule that turns it into an interval cannot be checked
# on the table's own folds (analysis/prediction/calibration.py's nested check needs two)
MIN_FOLDS = 2
# where nothing proposed fits the time left, the planner is asked again this many times, each
# with a third of the FLOPs (a cheaper item may fit where a slice of long runs does not)
TIME_RETRIES = 2


def at_optimum(point: dict[str, Any]) -> str:
    """Where the loop measures the target's interval: the recommended law's own compute-optimal
    N*, D* (the report's headline may use approach 2's or 3's allocation, so say which)."""
    n, d = point.get("n_params"), point.get("n_tokens")
    known = all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in (n, d))
    return f"the law's own optimum, N*={n:.4g}, D*={d:.4g}" if known else ""


def time_for_wave(timed: float, elapsed: float, last_step: float, *, on_clock: bool) -> float:
    """Seconds the planner may fill with a wave, `timed` left at this step's start, `elapsed`
    since. On the clock (--max-wall-seconds): less what this step has taken, the planning call
    itself and the refit after the wave, each of those taken to last as long as the last step
    did (the wave is then trimmed to what is left less this step's own, `make` in run_loop). In
    run-seconds (--max-seconds): all of it, since planning trains nothing."""
    return max(timed - (elapsed + 2 * last_step if on_clock else 0.0), 1.0)


def wave_allowance(left: float, n_waves: int, max_waves: int) -> float:
    """FLOPs the next wave may spend, `n_waves` launched so far: WAVE_FRACTION of what is left,
    so that later waves adapt to what this one shows; all of it where this is the last wave
    `max_waves` allows (no wave comes after it to keep any back for)."""
    return max(left if n_waves + 1 >= max_waves else left * WAVE_FRACTION, 0.0)


def wave_within_time(
    make: Callable[[dict[str, Any]], Any],
    ask: Callable[[float], dict[str, Any]],
    prop: dict[str, Any],
    retries: int = TIME_RETRIES,
) -> tuple[Any, dict[str, Any]]:
    """(the wave `make` builds from a proposal, the proposal): where nothing proposed fits the
    time left (`make` answers why, naming --max-seconds or --max-wall-seconds), the planner is
    asked (`ask`) for what a third of the FLOPs buys, `retries` times at most, while it proposes
    anything."""
    for retry in range(retries + 1):
        wave = make(prop)
        if not (isinstance(wave, str) and "-seconds" in wave) or retry == retries:
            break
        smaller = ask(float(prop["allowance"]) / 3)
        if not smaller["runs"]:
            break
        prop = smaller
    return wave, prop


def stop_reason(
    t: dict[str, Any],
    prop: dict[str, Any] | None,
    *,
    spent: float,
    allowance: float,
    tolerance: float,
    n_waves: int,
    max_waves: int,
) -> str | None:
    """Why the loop stops now (module docstring), or None: `t` is the planner's target (its
    calibrated interval's half-width, whether and on how many folds it was back-tested), `prop`
    its proposal for the next wave (None where none was asked for)."""
    trusted = t["backtested"] and t.get("n_folds", 0) >= MIN_FOLDS
    if trusted and t["half_width"] <= tolerance:
        return (f"tolerance: the calibrated 95% interval at the target is within "
                f"+-{t['half_width']:.1%} (asked: +-{tolerance:.1%}), calibrated on "
                f"{t['n_folds']} back-test folds")  # fmt: skip
    if spent >= allowance:
        return f"allowance: {spent:.3g} of {allowance:.3g} FLOPs spent"
    if n_waves >= max_waves:
        return f"max waves: {n_waves} wave(s) run (--max-waves {max_waves})"
    if prop is not None and not prop["runs"]:
        reason = str(prop.get("stop") or "")
        kind = ("wall-time allowance" if "wall-time" in reason else
                "time allowance" if "run-seconds" in reason else
                "allowance" if "allowance" in reason else "no proposal helps")  # fmt: skip
        return f"{kind}: {reason}"
    return None
