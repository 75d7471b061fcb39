"""Wall-time model of one training run, fitted to this host's records (used by `sweeps.plan`).

    time_s(run) = a + s * steps + D_eff * (b + c * flops_per_token_exact),
    D_eff = D + n_evals * n_val / 3

(evaluation is a forward pass, a third of a training step's FLOPs; `s` is what an optimizer step
costs whatever its size: Python, kernel launches, the optimizer, which is most of a tiny model's
time), fitted to the records of this host under results_dir when there are enough, else built-in
constants measured on a 2-core Xeon (below). Records that all train one tokens-per-step cannot
tell `s` from `b` (steps are then tokens / a constant): `s` is held at the built-in value. A WSD
branch counts its cooldown only, as its time_s does. Add `setup_s` per run (data, model, compose)
and `startup_s` per worker process (Python + torch import).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from sweeps import records

__all__ = ["TimeModel", "BUILTIN", "fit_time_model", "schedule_wall_s"]

EVAL_WEIGHT = 1.0 / 3.0  # an evaluated token costs about a third of a trained one


@dataclass(frozen=True)
class TimeModel:
    """Seconds of one run: a + s * steps + D_eff * (b + c * flops_per_token_exact), plus fixed
    overheads."""

    a: float
    s: float
    b: float
    c: float
    source: str
    setup_s: float = 1.5  # per run: compose, load the cached data, build the model
    startup_s: float = 4.0  # per worker process: Python + torch import

    def run_s(
        self, *, n_steps: float, n_tokens: float, flops_per_token: float, n_eval_tokens: float
    ) -> float:
        d_eff = n_tokens + EVAL_WEIGHT * n_eval_tokens
        return self.a + self.s * n_steps + d_eff * (self.b + self.c * flops_per_token)


# Measured on a 2-core Intel Xeon with native bf16 (avx512_bf16/amx_bf16; bf16 autocast, one
# thread per run; GPT at context 32, synthetic data): 12 runs, N = 4e3..1e5 x D = 3e4, 2e5 x batch
# 4, 32 (29 to 1,562 steps) gave a = 0.035 s, s = 8.9 ms/step, b = 4.4e-6 s/token and
# c = 1.8e-11 s/FLOP, every run within 18% (mean |log ratio| 0.05). The step term is most of a
# tiny run: without it the fit missed 1,562-step runs 5x. Checked on runs they were not fitted
# to, the demo's 17 (byte-level Python corpus, context 256): each within 0.83-1.24x, 781 s
# predicted for 786 s trained (the constants before, without the step term: 1.05-1.89x). Other
# CPUs (fp32 where bf16 is not native) and GPUs differ; this host's records replace them.
BUILTIN = TimeModel(a=0.035, s=8.9e-3, b=4.4e-6, c=1.8e-11, source="built-in constants")


def _features(rec: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """(optimizer steps, D_eff, exact FLOPs per token, tokens per step) of what a record's time_s
    measured, or None. A WSD branch's time_s is its cooldown's only (the trunk trained in another
    run), while its n_steps and n_tokens count from step 0: its own share is flops_marginal's."""
    cfg = rec.get("config") or {}
    try:
        n_eval = float(cfg.get("n_evals", 8)) * float(cfg.get("data", {}).get("n_val_tokens", 0))
        steps, n_tokens = float(rec["n_steps"]), float(rec["n_tokens"])
        fpt = float(rec["flops_per_token_exact"])
        per_step = n_tokens / steps
        if rec.get("flops_marginal") is not None and fpt > 0:
            n_tokens = min(n_tokens, float(rec["flops_marginal"]) / fpt)
            steps = n_tokens / per_step
        return steps, n_tokens + EVAL_WEIGHT * n_eval, fpt, per_step
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def fit_time_model(results_dir: str | Path, *, host: str | None = None) -> TimeModel:
    """Fit a, s, b, c (non-negative, relative errors) to this host's ok records under
    results_dir; the built-in constants when fewer than 4 records of 2 or more sizes exist."""
    host = host or platform.node()
    rows, times, per_step = [], [], set()
    root = Path(results_dir)
    for record_path in sorted(root.glob(f"*/*/{records.RECORD_FILE}")):
        try:
            rec = records.read_record(record_path.parent)
        except records.RecordError:
            continue
        if rec.get("status") != "ok" or rec.get("host") != host or not rec.get("time_s"):
            continue
        feats = _features(rec)
        if feats is None or feats[0] <= 0:
            continue
        steps, d_eff, fpt, tokens_per_step = feats
        rows.append((1.0, steps, d_eff, d_eff * fpt))
        times.append(float(rec["time_s"]))
        per_step.add(round(tokens_per_step))
    if len(rows) < 4 or len({r[3] / r[2] for r in rows}) < 2:
        return BUILTIN
    a_mat = np.array(rows) / np.array(times)[:, None]
    target = np.ones(len(rows))
    held = None
    if len(per_step) < 2:  # steps ~ tokens: the data cannot tell a step's cost from a token's
        # (NNLS put it all on one, s = 0 at times: a batch-4 run then priced 0.6x). The built-in
        # step cost, no more than half the fastest step seen, with a, b, c fitted around it
        held = min(BUILTIN.s, 0.5 * min(t / r[1] for r, t in zip(rows, times, strict=True)))
        target = target - held * a_mat[:, 1]
        a_mat = a_mat[:, [0, 2, 3]]
    scale = a_mat.max(axis=0)  # columns of very different size: solve in scaled units
    coef, _ = nnls(a_mat / scale, target)
    coef = (coef / scale).tolist()
    if held is not None:
        coef.insert(1, held)
    a, s, b, c = coef
    if b == 0 and c == 0 and (held is not None or s == 0):
        return BUILTIN
    source = f"fitted to {len(rows)} records of {host} in {root}"
    if held is not None:
        source += f" (step cost built-in: every record trains {per_step.pop():,} tokens a step)"
    return TimeModel(a=a, s=s, b=b, c=c, source=source)


def schedule_wall_s(durations: list[float], n_workers: int, startup_s: float) -> float:
    """Wall time when jobs go, in order, to the first free of n_workers processes."""
    free = [0.0] * max(1, min(n_workers, len(durations)))
    for d in durations:
        i = free.index(min(free))
        free[i] += d
    return (startup_s if durations else 0.0) + max(free, default=0.0)
