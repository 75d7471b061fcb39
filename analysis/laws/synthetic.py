"""Synthetic run records from a known law: for tests, benchmarks, and a report without a sweep.

Records are written with `sweeps.records.write_record` exactly as a real sweep writes them, so the
loader is exercised too. Losses follow L = E + A/N^alpha + B/D^beta times log-normal noise, with an
optional fraction of outliers pushed up (a bad learning rate, a step-starved run).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from sweeps.records import RunRecord, write_json_atomic, write_record

__all__ = ["TRUE_PARAMS", "law_loss", "grid_points", "isoflop_points", "write_sweep"]

# A law whose losses look like a small byte-level LM on N 1e4..1e7, D 1e6..1e9 (~2.3 to ~6 nats).
TRUE_PARAMS = {"E": 1.8, "A": 60.0, "B": 100.0, "alpha": 0.35, "beta": 0.30}


def law_loss(params: dict[str, float], n_params, n_tokens) -> np.ndarray:
    """E + A/N^alpha + B/D^beta (nats/token)."""
    n, d = np.asarray(n_params, float), np.asarray(n_tokens, float)
    return params["E"] + params["A"] * n ** -params["alpha"] + params["B"] * d ** -params["beta"]


def _noisy(loss, rng, noise, outlier_frac, outlier_scale):
    loss = loss * np.exp(rng.normal(0.0, noise, loss.shape))
    out = rng.random(loss.shape) < outlier_frac
    return loss * np.where(out, np.exp(rng.uniform(0.05, outlier_scale, loss.shape)), 1.0)


def grid_points(
    *,
    rng: np.random.Generator,
    params: dict[str, float] = TRUE_PARAMS,
    n_sizes: int = 16,
    n_token_counts: int = 16,
    n_range: tuple[float, float] = (1e4, 1e7),
    d_range: tuple[float, float] = (1e6, 1e9),
    noise: float = 0.01,
    outlier_frac: float = 0.05,
    outlier_scale: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A full N x D grid (log-spaced) -> (N, D, loss) with noise and outliers."""
    n = np.geomspace(*n_range, n_sizes).round()
    d = np.geomspace(*d_range, n_token_counts).round()
    nn, dd = (x.ravel() for x in np.meshgrid(n, d, indexing="ij"))
    return nn, dd, _noisy(law_loss(params, nn, dd), rng, noise, outlier_frac, outlier_scale)


def isoflop_points(
    *,
    rng: np.random.Generator,
    params: dict[str, float] = TRUE_PARAMS,
    budgets=(1e13, 1e14, 1e15, 1e16, 1e17),
    n_per_budget: int = 9,
    span_decades: float = 1.0,
    center_shift: float = 0.0,
    noise: float = 0.003,
    outlier_frac: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IsoFLOP grid: per budget C, N log-spaced +-span_decades around the true N*(C) (shifted by
    `center_shift` decades to put the minimum off-centre) and D = C / (6N). -> (N, D, loss, C)."""
    from .chinchilla import compute_optimal

    full = dict(params) | {"log_A": 0.0}
    ns, ds, cs = [], [], []
    for c in budgets:
        n_star = compute_optimal(full, c).n_params
        n = n_star * np.logspace(-span_decades, span_decades, n_per_budget) * 10**center_shift
        ns.append(n.round())
        ds.append(c / (6 * n.round()))
        cs.append(np.full(n.size, c))
    n, d, c = np.concatenate(ns), np.concatenate(ds), np.concatenate(cs)
    return n, d, _noisy(law_loss(params, n, d), rng, noise, outlier_frac, 0.3), c


def write_sweep(
    path: str | os.PathLike[str],
    *,
    n_params,
    n_tokens,
    loss,
    flops_budget=None,
    status=None,
    sweep: str = "synthetic",
    dataset_id: str = "synthetic-v1",
    params: dict[str, float] = TRUE_PARAMS,
    n_curve_points: int = 8,
    seed: int = 0,
    schedule: str | None = None,
) -> Path:
    """Write one run folder per point under `path` (the sweep folder); returns the folder.

    Curves hold `n_curve_points` evaluations at log-spaced fractions of the run's tokens, with the
    law's loss at that many tokens (as if each prefix were a cooled-down run). `schedule` goes
    into each config as `schedule.name` (e.g. "constant": curves that give IsoFLOP slices).
    """
    root = Path(path)
    n_params = np.asarray(n_params, float)
    n_tokens = np.asarray(n_tokens, float)
    loss = np.asarray(loss, float)
    budgets = [None] * n_params.size if flops_budget is None else list(flops_budget)
    statuses = ["ok"] * n_params.size if status is None else list(status)
    for i, (n, d, ell) in enumerate(zip(n_params, n_tokens, loss, strict=True)):
        config = {
            "model": {"n_params": float(n)},
            "budget": {"tokens": float(d)},
            "seed": seed,
            "index": i,
        }
        if schedule is not None:
            config["schedule"] = {"name": schedule}
        run_id = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
        d_model = max(16, round((n / 12) ** 0.5))  # N ~ 12 d^2: one layer
        embedding = 256.0 * d_model
        record = {
            "run_id": run_id,
            "sweep": sweep,
            "status": statuses[i],
            "reason": None if statuses[i] == "ok" else statuses[i],
            "config": config,
            "arch": "gpt",
            "shape": {"n_layer": 1, "d_model": d_model, "vocab_size": 256},
            "n_params": int(n),
            "n_params_total": int(n + 2 * embedding),
            "n_params_embedding": int(2 * embedding),
            "n_params_non_embedding": int(n),
            "n_params_matmul": int(n),
            "flops_per_token_6n": 6.0 * n,
            "flops_per_token_exact": 6.6 * n,
            "n_tokens": int(d),
            "flops": 6.0 * n * d,
            "flops_exact": 6.6 * n * d,
            "flops_marginal": 6.0 * n * d,
            "flops_budget": None if (b := budgets[i]) is None else float(b),
            "loss": float(ell),
            "perplexity": float(np.exp(ell)) if np.isfinite(ell) else None,
            "bits_per_byte": float(ell / np.log(2)) if np.isfinite(ell) else None,
            "train_loss": float(ell),
            "n_steps": int(max(1, d // 4096)),
            "batch_size": 16,
            "lr": 1e-3,
            "seed": seed,
            "dataset_id": dataset_id,
            "parent_run_id": None,
            "created_at": f"2025-01-01T00:00:{i % 60:02d}Z",
        }
        run_dir = root / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        fractions = np.geomspace(0.02, 1.0, n_curve_points)
        lines = []
        for k, frac in enumerate(fractions):
            t = d * frac
            ell_t = float(law_loss(params, n, t)) * (ell / float(law_loss(params, n, d)))
            lines.append(
                {
                    "step": k + 1,
                    "n_tokens": t,
                    "flops": 6 * n * t,
                    "loss": ell_t,
                    "train_loss": ell_t,
                    "lr": 1e-3,
                    "time_s": float(k),
                }
            )
        (run_dir / "curve.jsonl").write_text(
            "".join(json.dumps(r, allow_nan=True) + "\n" for r in lines), encoding="utf-8"
        )
        write_record(run_dir, RunRecord(**record))
    return root


# re-exported so tests can write a hand-made broken record the same atomic way
_write_json = write_json_atomic
