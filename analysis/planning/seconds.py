"""What a run costs in seconds on the machine that will train it, for a planner that a time
allowance binds as well as a FLOP one.

C = 6 N D prices a small model's long run like a large model's short one; on a CPU (and on a GPU
at low utilisation) the first takes several times longer: on 2 CPU cores, N = 3,584 at C = 9.5e11
was estimated at 415 s against 74 s measured for N = 32,768 at the same C (docs/planning.md).
The trainer knows its own costs (sweeps/sweep/timemodel.py, fitted to this host's records); it
hands them over as a table, since analysis/ builds no model: seconds of a run of N parameters
on D tokens are

    per_run_s + D * per_token_s(N) + eval_tokens * eval_per_token_s(N)

with both rates interpolated in log-log between the table's sizes (and extended along its end
segments). An evaluation token is cheaper than a training token (a forward pass, no optimizer
step); where the table gives no eval_per_token_s, the training rate is used. `workers` runs go
at once (the launcher's processes); a set of runs takes the wall time of
`sweeps.sweep.timemodel.schedule_wall_s`: in order, each to the first free worker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sweeps.sweep.timemodel import schedule_wall_s

from ..errors import AnalysisError

__all__ = ["RunSeconds"]


@dataclass(frozen=True)
class RunSeconds:
    """Seconds of a run on the machine that will train it (module docstring)."""

    per_run_s: float
    eval_tokens: float
    n_params: tuple[float, ...]
    per_token_s: tuple[float, ...]
    workers: int = 1
    startup_s: float = 0.0  # per worker process, once a wave
    eval_per_token_s: tuple[float, ...] = ()  # at n_params; () = per_token_s

    def _rate(self, values: tuple[float, ...], n_params: float) -> float:
        x = np.log(np.asarray(self.n_params, float))
        y = np.log(np.asarray(values, float))
        t = math.log(n_params)
        if x.size == 1:
            return math.exp(float(y[0]))
        # np.interp clamps; extend the end segments instead
        j = int(np.clip(np.searchsorted(x, t) - 1, 0, x.size - 2))
        return math.exp(float(y[j] + (y[j + 1] - y[j]) * (t - x[j]) / (x[j + 1] - x[j])))

    def __call__(self, n_params: float, n_tokens: float) -> float:
        rate = self._rate(self.per_token_s, n_params)
        eval_rate = self._rate(self.eval_per_token_s, n_params) if self.eval_per_token_s else rate
        return self.per_run_s + n_tokens * rate + self.eval_tokens * eval_rate

    def runs(self, n_params: Sequence[float], n_tokens: Sequence[float]) -> list[float]:
        return [self(n, d) for n, d in zip(n_params, n_tokens, strict=True)]

    def wall(self, seconds: Sequence[float]) -> float:
        """Wall time of runs taking `seconds`, in order, on the workers."""
        return schedule_wall_s(list(seconds), self.workers, self.startup_s)

    @classmethod
    def from_json(cls, text: str) -> RunSeconds:
        """From `--seconds-model` (what `python -m sweeps.next` passes): a JSON object with
        per_run_s, eval_tokens, n_params and per_token_s (sizes ascending), and optionally workers,
        startup_s and eval_per_token_s (at the same sizes)."""
        fix = ("pass a JSON object such as {\"per_run_s\": 2, \"eval_tokens\": 1e5, \"n_params\": "
               "[1e4, 1e5], \"per_token_s\": [1e-5, 3e-5], \"workers\": 2}")  # fmt: skip
        try:
            raw = json.loads(text)
            out = cls(per_run_s=float(raw["per_run_s"]), eval_tokens=float(raw["eval_tokens"]),
                      n_params=tuple(float(v) for v in raw["n_params"]),
                      per_token_s=tuple(float(v) for v in raw["per_token_s"]),
                      workers=int(raw.get("workers", 1)),
                      startup_s=float(raw.get("startup_s", 0.0)),
                      eval_per_token_s=tuple(float(v) for v in raw.get("eval_per_token_s", ())),
                      )  # fmt: skip
        except (ValueError, TypeError, KeyError) as e:
            raise AnalysisError(f"--seconds-model: cannot be read ({e}); {fix}") from None
        sizes, rates = np.asarray(out.n_params), np.asarray(out.per_token_s)
        wrong = [why for bad, why in (
            (sizes.size < 1 or sizes.size != rates.size,
             "n_params and per_token_s must have the same length, at least 1"),
            (not (np.all(np.isfinite(sizes) & (sizes > 0)) and np.all(np.diff(sizes) > 0)),
             "n_params must ascend and be positive"),
            (not np.all(np.isfinite(rates) & (rates > 0)), "per_token_s must be positive"),
            (bool(out.eval_per_token_s) and (len(out.eval_per_token_s) != sizes.size or not all(
                math.isfinite(v) and v > 0 for v in out.eval_per_token_s)),
             "eval_per_token_s must be positive, one per n_params"),
            (out.workers < 1 or float(raw.get("workers", 1)) != out.workers,
             "workers must be a whole number >= 1"),
            *((not (math.isfinite(v) and v >= 0), f"{name} must be a finite number >= 0")
              for name, v in (("per_run_s", out.per_run_s), ("eval_tokens", out.eval_tokens),
                              ("startup_s", out.startup_s))),
        ) if bad]  # fmt: skip
        if wrong:
            raise AnalysisError(f"--seconds-model: {wrong[0]}; {fix}")
        return out
