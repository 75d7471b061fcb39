"""Wall-time model of one training run, fitted to this host's records (used by `sweeps.plan`).

    time_s(run) = a + D_eff * (b + c * flops_per_token_exact),  D_eff = D + n_evals * n_val / 3

(evaluation is a forward pass, a third of a training step's FLOPs), fitted to the records of this
host under results_dir when there are enough, else the built-in constants measured on a 2-vCPU
Zen 4 (fp32, one thread per run). Add `setup_s` per run (data, model, compose) and `startup_s` per
worker process (Python + torch import).
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
    """Seconds of one run: a + D_eff * (b + c * flops_per_token_exact), plus fixed overheads."""

    a: float
    b: float
    c: float
    source: str
    setup_s: float = 1.5  # per run: compose, load the cached data, build the model
    startup_s: float = 4.0  # per worker process: Python + torch import

    def run_s(self, *, n_tokens: float, flops_per_token: float, n_eval_tokens: float) -> float:
        d_eff = n_tokens + EVAL_WEIGHT * n_eval_tokens
        return self.a + d_eff * (self.b + self.c * flops_per_token)


# Measured here (2 vCPU AMD Zen 4 without native bf16, so fp32; one thread per run; GPT, context
# 256, batch 16; time includes 8 evaluations of 64k tokens): a fit to N = 3.6e3, 3.3e4, 1.1e5
# gave b = 6.1e-6 s/token and c = 5.1e-11 s/FLOP (20 GFLOP/s) while other tenants kept the load
# at 3-6; c = 3.5e-11 matches the ~30k tokens/s at N = 1e5 that DESIGN.md measured on an idle
# machine. Records of this host in results_dir replace these constants.
BUILTIN = TimeModel(a=0.3, b=6e-6, c=3.5e-11, source="built-in constants (measured here)")


def _features(rec: dict[str, Any]) -> tuple[float, float] | None:
    cfg = rec.get("config") or {}
    try:
        n_eval = float(cfg.get("n_evals", 8)) * float(cfg.get("data", {}).get("n_val_tokens", 0))
        d_eff = float(rec["n_tokens"]) + EVAL_WEIGHT * n_eval
        return d_eff, float(rec["flops_per_token_exact"])
    except (KeyError, TypeError, ValueError):
        return None


def fit_time_model(results_dir: str | Path, *, host: str | None = None) -> TimeModel:
    """Fit a, b, c (non-negative, relative errors) to this host's ok records under results_dir;
    the built-in constants when fewer than 3 records of 2 or more sizes exist."""
    host = host or platform.node()
    rows, times = [], []
    root = Path(results_dir)
    for record_path in sorted(root.glob(f"*/*/{records.RECORD_FILE}")):
        try:
            rec = records.read_record(record_path.parent)
        except records.RecordError:
            continue
        if rec.get("status") != "ok" or rec.get("host") != host or not rec.get("time_s"):
            continue
        feats = _features(rec)
        if feats is None:
            continue
        rows.append((1.0, feats[0], feats[0] * feats[1]))
        times.append(float(rec["time_s"]))
    if len(rows) < 3 or len({r[2] / r[1] for r in rows}) < 2:
        return BUILTIN
    a_mat = np.array(rows) / np.array(times)[:, None]
    scale = a_mat.max(axis=0)  # columns of very different size: solve in scaled units
    coef, _ = nnls(a_mat / scale, np.ones(len(rows)))
    a, b, c = (coef / scale).tolist()
    if b == 0 and c == 0:
        return BUILTIN
    return TimeModel(a=a, b=b, c=c, source=f"fitted to {len(rows)} records of {host} in {root}")


def schedule_wall_s(durations: list[float], n_workers: int, startup_s: float) -> float:
    """Wall time when jobs go, in order, to the first free of n_workers processes."""
    free = [0.0] * max(1, min(n_workers, len(durations)))
    for d in durations:
        i = free.index(min(free))
        free[i] += d
    return (startup_s if durations else 0.0) + max(free, default=0.0)
