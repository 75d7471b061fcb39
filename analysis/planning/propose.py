"""The next wave of a sweep: which runs to add within a compute allowance, and what they should do
to the calibrated interval at the target (the planning room's entry point).

`propose(data, target_flops, allowance)` recommends the law (analysis/prediction/recommend.py),
predicts the loss at the target's compute-optimal (N*, D*) with its calibrated 95% interval,
lists candidate runs (analysis/planning/candidates.py), and chooses those that narrow that
interval most per FLOP (select.py, value.py). It trains nothing and writes nothing: sweeps.next
turns the answer into a sweep config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..prediction.forms import law_optimal
from ..prediction.recommend import Prediction, canonical, planned_flops, recommend
from . import candidates
from .candidates import candidate_items
from .seconds import RunSeconds
from .select import MIN_GAIN, Choice, Item, choose, gains
from .value import sigma2, target_state

__all__ = ["LEVEL", "Proposal", "half_width", "propose"]

LEVEL = 0.95


def half_width(pred: Prediction) -> float:
    """(hi - lo) / 2 / loss: the interval's relative half-width (inf where unbounded)."""
    lo, hi = pred.interval
    return (hi - lo) / 2 / pred.loss if math.isfinite(hi) else math.inf


@dataclass(frozen=True)
class Proposal:
    """What to train next and what it should buy (see the module docstring)."""

    target: Prediction
    backtested: bool  # the interval's extrapolation term was calibrated on the table's own folds
    law: str
    allowance: float
    choice: Choice
    expected: tuple[float, float]  # the 95% interval the chosen runs should leave at the target
    stop: str | None = None  # why nothing (more) is proposed
    warnings: tuple[str, ...] = field(default_factory=tuple)
    n_folds: int = 0  # back-test folds behind the interval's extrapolation term
    max_wall_s: float | None = None  # the wall time the wave had to fit (seconds.py), if any
    wall_s: float | None = None  # what the chosen runs take on the workers, as estimated
    max_run_s: float | None = None  # the run-seconds (summed) the wave had to fit, if any
    run_s: float | None = None  # the chosen runs' seconds summed, as estimated

    @property
    def items(self) -> tuple[Item, ...]:
        return self.choice.items

    @property
    def spent(self) -> float:
        return self.choice.spent

    def rows(self) -> list[dict[str, Any]]:
        """One row per proposed run, in the order chosen (required first, then by gain/FLOP)."""
        out = []
        for k, (item, g) in enumerate(zip(self.items, gains(self.choice), strict=True)):
            share = g / self.choice.sigma2_before if self.choice.sigma2_before > 0 else 0.0
            for j, (n, d) in enumerate(zip(item.n_params, item.n_tokens, strict=True)):
                out.append({
                    "n_params": n, "n_tokens": d, "flops": 6 * n * d, "kind": item.kind,
                    "item": k, "seed": item.seeds[j] if item.seeds else None,
                    "variance_share": share, "why": item.why,
                })  # fmt: skip
        return out

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "law": self.law,
            "target": t.to_dict() | {"half_width": half_width(t), "backtested": self.backtested,
                                     "n_folds": self.n_folds},
            "allowance": self.allowance,
            "spent": self.spent,
            "expected": {"interval": list(self.expected),
                         "half_width": (self.expected[1] - self.expected[0]) / 2 / t.loss},
            "runs": self.rows(),
            "stop": self.stop,
            "warnings": list(self.warnings),
            "max_wall_s": self.max_wall_s,
            "wall_s": self.wall_s,
            "max_run_s": self.max_run_s,
            "run_s": self.run_s,
        }  # fmt: skip


def _wall_s(seconds: RunSeconds, items) -> float:
    """The wall time of `items`' runs, in order, on the workers `seconds` prices them for."""
    return seconds.wall(_seconds(seconds, items))


def _seconds(seconds: RunSeconds, items) -> list[float]:
    """Each run's seconds, `items`' runs in order."""
    return [t for i in items for t in seconds.runs(i.n_params, i.n_tokens)]


def _why_nothing(items: list[Item], allowance: float, seconds: RunSeconds | None, wall: float,
                 run_cap: float, s_now: float) -> tuple[str, bool]:  # fmt: skip
    """Why the choice bought nothing, and whether it is the time: the first allowance no
    proposed run fits (the time asked only of the runs the FLOPs buy), both time allowances
    where each run that fits one overruns the other, else that none helps."""
    if items and min(i.cost for i in items) > allowance:
        return (f"the allowance ({allowance:.3g} FLOPs) buys no proposed run: the cheapest costs "
                f"{min(i.cost for i in items):.3g} FLOPs; raise --allowance"), False
    cheap = [i for i in items if i.cost <= allowance]  # the time is asked of what the FLOPs buy
    if cheap and seconds is not None:
        walls = [seconds.wall(seconds.runs(i.n_params, i.n_tokens)) for i in cheap]
        sums = [sum(seconds.runs(i.n_params, i.n_tokens)) for i in cheap]
        if min(walls) > wall:
            return (f"the wall-time allowance ({wall:.0f} s) fits no proposed run: the quickest "
                    f"takes ~{min(walls):.0f} s here; raise --max-wall-seconds"), True
        if min(sums) > run_cap:
            return (f"the run-seconds allowance ({run_cap:.0f} s) fits no proposed run: the "
                    f"shortest takes ~{min(sums):.0f} s here; raise --max-seconds"), True
        if not any(w <= wall and t <= run_cap for w, t in zip(walls, sums, strict=True)):
            return (f"the wall-time allowance ({wall:.0f} s) and the run-seconds allowance "
                    f"({run_cap:.0f} s) fit no proposed run together: each that fits one overruns "
                    "the other; raise --max-wall-seconds or --max-seconds"), True
    return (f"no proposed run narrows the target's interval by {MIN_GAIN:.1%} of its variance or "
            f"more (now {s_now:.3g} in log^2)"), False


def propose(
    data: pd.DataFrame,
    target_flops: float,
    allowance: float,
    *,
    max_runs: int | None = None,
    noise: float | None = None,
    seed: int = 0,
    min_params: float = 0.0,
    max_tokens: float = math.inf,
    seconds: RunSeconds | None = None,
    max_wall_s: float | None = None,
    max_run_s: float | None = None,
) -> Proposal:
    """The next wave for `data` (a canonical table of fit points: n_params, n_tokens, loss and,
    where known, flops, flops_budget, seed). noise: the measured relative seed noise, None or NaN
    where no configuration was repeated (then seeds are proposed). min_params: the smallest model
    the sweep can build (sweeps.next passes its sizing policy's); max_tokens: the most tokens a
    run may see (sweeps.next passes 4 epochs of the corpus). seconds, max_wall_s: what a run
    takes on the trainer's workers (seconds.py) and the wall time the wave may take: the wave
    then fits both allowances and is ranked by the one that binds (select.py). max_run_s: the
    same for the runs' seconds summed (run-seconds, as GPU-hours are); both may be given."""
    if not (math.isfinite(allowance) and allowance > 0):
        raise AnalysisError(f"--allowance {allowance:g}: must be a positive number of FLOPs, "
                            "e.g. --allowance 1e13")  # fmt: skip
    if max_runs is not None and max_runs < 1:
        raise AnalysisError(f"--max-runs {max_runs}: must be >= 1, e.g. --max-runs 10")
    flops = canonical(data)["flops"]
    if not target_flops > flops.max():
        raise AnalysisError(
            f"--target-flops {target_flops:g} is not beyond the largest run ({flops.max():.3g} "
            "FLOPs): a plan extrapolates to a larger budget; give one above it, e.g. "
            f"--target-flops {10 ** math.ceil(math.log10(flops.max() * 10)):.0e}"
        )
    measured = noise is not None and math.isfinite(noise) and noise > 0
    # fitted as the report fits it (budgets as the ladder), so both give the same interval
    rec = recommend(planned_flops(data), seed=seed, noise=noise if measured else None)
    assert rec.fit is not None and rec.calibration is not None
    opt = law_optimal(rec.fit, target_flops)
    if not (math.isfinite(opt.n_params) and opt.n_params > 0):
        raise AnalysisError(
            f"the recommended law ({rec.law}) has no compute-optimal allocation at "
            f"{target_flops:g} FLOPs (an exponent at 0): the runs do not determine it; add sizes "
            "and budgets by hand (python -m analysis shows what is ill-determined)"
        )
    pred = rec.predict(opt.n_params, opt.n_tokens, level=LEVEL)
    noise_sd = math.log1p(noise) if measured and noise is not None else None
    state = target_state(rec, np.array([[opt.n_params, opt.n_tokens]]), noise_sd=noise_sd)
    items, notes = candidate_items(data, rec, target_flops, noise_measured=measured,
                                   min_n=min_params, max_d=max_tokens)  # fmt: skip
    for flag, limit in (("--max-wall-seconds", max_wall_s), ("--max-seconds", max_run_s)):
        if limit is not None and not (math.isfinite(limit) and limit > 0):
            raise AnalysisError(f"{flag} {limit:g}: must be a positive number of seconds, e.g. "
                                f"{flag} 600")  # fmt: skip
    wall = math.inf if max_wall_s is None or seconds is None else float(max_wall_s)
    run_cap = math.inf if max_run_s is None or seconds is None else float(max_run_s)
    if seconds is not None and (math.isfinite(wall) or math.isfinite(run_cap)):
        # only where the time binds (the FLOP plan's wave would not fit it) are the slices' parts
        # offered: with time to spare the choice stays the FLOP planner's
        free = choose(state, items, allowance, max_runs=max_runs)
        if _wall_s(seconds, free.items) > wall or sum(_seconds(seconds, free.items)) > run_cap:
            items, notes = candidate_items(data, rec, target_flops, noise_measured=measured,
                                           min_n=min_params, max_d=max_tokens,
                                           partial=True)  # fmt: skip
    choice = choose(state, items, allowance, max_runs=max_runs, seconds=seconds, max_wall_s=wall,
                    max_run_s=run_cap)  # fmt: skip
    stop, time_binds = None, False
    if not choice.items:
        stop, time_binds = _why_nothing(items, allowance, seconds, wall, run_cap, sigma2(state))
    if time_binds and (candidates.LAST_RESORT_PARTS or candidates.LAST_RESORT_STEPS):
        # the FLOPs buy a run but the time left fits none: the last resort's smaller parts and
        # nearer budgets (candidates.py), rather than a loop that stops with its time unspent
        more, _ = candidate_items(data, rec, target_flops, noise_measured=measured,
                                  min_n=min_params, max_d=max_tokens, partial=True,
                                  last_resort=True)  # fmt: skip
        last = choose(state, more, allowance, max_runs=max_runs, seconds=seconds,
                      max_wall_s=wall, max_run_s=run_cap)  # fmt: skip
        if last.items:
            choice, stop = last, None
    q = rec.calibration.quantile(LEVEL)
    half = q * math.sqrt(choice.final)
    expected = (pred.loss * math.exp(-half), pred.loss * math.exp(half))
    warns: list[str] = list(notes) + list(rec.warnings)  # what the law's fit says of itself
    if not rec.calibration.n_points:
        warns.append(
            "no back-test was possible (too few rungs: 4 sizes on an N ladder, 3 budgets on an "
            "IsoFLOP one): the interval at the target does not "
            "cover the law's extrapolation error; the plan assumes k = "
            f"{state.k:g} per unit of log distance (analysis/planning/value.py K_PRIOR)"
        )
    wall_s = None if seconds is None else _wall_s(seconds, choice.items)
    run_s = None if seconds is None else sum(_seconds(seconds, choice.items))
    return Proposal(pred, bool(rec.calibration.n_points), rec.law, float(allowance), choice,
                    expected, stop, tuple(warns), rec.calibration.n_folds,
                    None if math.isinf(wall) else wall, wall_s,
                    None if math.isinf(run_cap) else run_cap, run_s)  # fmt: skip
