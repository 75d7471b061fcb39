"""What the runs of a sweep's next wave can be and cost here, for the planner (sweeps/next.py,
sweeps/adaptive.py): the smallest model the sweep's settings build, what a run takes on this
host (the trainer's time model at the shapes the sizing policy builds, handed to
analysis/planning/seconds.py), and how many runs a wave trains at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweeps import records

__all__ = ["longest_run", "seconds_model", "smallest_size", "wave_workers"]


def _sizing(
    sweep_dir: Path, arch: str | None
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(the wave's settings, their sizing arguments for models.sizing but the size, the sweep's
    finished records), from one read of the records."""
    from sweeps.sweep.waves import base_settings

    settings = base_settings(sweep_dir, arch)
    m = settings["model"]
    recs = [records.read_record(d) for d in records.iter_run_dirs(sweep_dir)
            if records.run_state(d) == "done"]  # fmt: skip
    vocab = next((int(r["shape"]["vocab_size"]) for r in recs
                  if (r.get("shape") or {}).get("vocab_size")), 256)  # fmt: skip
    kw = {"vocab_size": vocab, "context": int(m["context"]), "tied": bool(m.get("tied")),
          "min_layers": int(m.get("min_layers", 2)), "n_head": m.get("n_head")}  # fmt: skip
    return settings, kw, recs


def smallest_size(sweep_dir: Path, arch: str | None) -> int:
    """The smallest model the sweep's settings can build (models/sizing.py): no size below it is
    worth proposing (it would train that smallest model again)."""
    from models.sizing import smallest_n_params

    settings, kw, _ = _sizing(sweep_dir, arch)
    return smallest_n_params(settings["model"]["arch"], **kw)


def longest_run(sweep_dir: Path, arch: str | None) -> float:
    """The most tokens a run of the next wave may see: `preflight.MAX_EPOCHS` passes over the
    training split of the sweep's latest finished run (its record's dataset.n_train_tokens), the
    point past which the trainer warns that repeated tokens stop counting as data; inf where no
    record says. On the demo's corpus (29.8M training tokens) the closed loop, given 5x the
    demo's allowance, proposed a run at 3e12 FLOPs that saw it 4.7 times."""
    import math

    from sweeps.run.preflight import MAX_EPOCHS

    recs = [r for r in _sizing(sweep_dir, arch)[2] if arch is None or r.get("arch") == arch]
    sized = [r for r in recs if (r.get("dataset") or {}).get("n_train_tokens")]
    if not sized:
        return math.inf
    latest = max(sized, key=lambda r: str(r.get("created_at", "")))
    return MAX_EPOCHS * float(latest["dataset"]["n_train_tokens"])


def seconds_model(sweep_dir: Path, arch: str | None, workers: int) -> dict[str, Any]:
    """What a run of the next wave takes here, for the planner (analysis/planning/seconds.py):
    the trainer's time model fitted to this host's records (sweeps/sweep/timemodel.py), priced
    per token at the shapes the sizing policy builds, from the smallest up to 1000x the largest
    trained size (beyond, the planner extends the end segments); an evaluation token as the
    time model prices it, without the optimizer step's share (TimeModel.run_s)."""
    import numpy as np

    from models.counting import flops_per_token, param_counts
    from models.sizing import smallest_n_params, solve_shape
    from sweeps.sweep.timemodel import EVAL_WEIGHT, fit_time_model

    settings, kw, recs = _sizing(sweep_dir, arch)
    tm = fit_time_model(sweep_dir.parent)
    ok = [r for r in recs if r.get("status") == "ok" and r.get("n_steps")]
    batch = (settings.get("optim") or {}).get("batch_size", 16)
    if isinstance(batch, int) or not ok:  # "auto" with no run that counted its steps: 16
        per_step = float((batch if isinstance(batch, int) else 16) * kw["context"])
    else:  # "auto": the batch grows with the budget; the sweep's own runs, in the middle
        per_step = float(np.median([r["n_tokens"] / r["n_steps"] for r in ok]))
    largest = max((float(r["n_params"]) for r in ok), default=1e5)
    table: dict[float, tuple[float, float]] = {}  # N: (per training token, per eval token)
    arch_name = settings["model"]["arch"]
    for n in np.geomspace(smallest_n_params(arch_name, **kw), 1000 * largest, 24):
        shape = solve_shape(arch_name, n_params=float(n), **kw)
        forward = tm.b + tm.c * flops_per_token(shape)["exact"]  # no optimizer step in an eval
        table[float(param_counts(shape)["matmul"])] = (forward + tm.s / per_step, forward)
    n_eval = float(settings.get("n_evals", 8)) * float(settings["data"].get("n_val_tokens", 0))
    sizes = sorted(table)
    return {"per_run_s": tm.a + tm.setup_s, "eval_tokens": EVAL_WEIGHT * n_eval,
            "n_params": sizes, "per_token_s": [table[n][0] for n in sizes],
            "eval_per_token_s": [table[n][1] for n in sizes], "workers": workers,
            "startup_s": tm.startup_s, "source": tm.source}  # fmt: skip


def wave_workers(extra: list[str]) -> int:
    """How many runs a wave trains at once: the launcher of the default config with `extra`."""
    from sweeps.sweep.expand import expand_sweep
    from sweeps.sweep.plan import launcher_workers

    return launcher_workers(expand_sweep(list(extra)).master)
