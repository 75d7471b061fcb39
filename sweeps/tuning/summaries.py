"""The rules from finished studies: read their summaries, fit lr* and batch*, write the file.

    python -m sweeps.tune fit results/lr_tune [more folders] [--exclude 2e4] [--out FILE]
                                              [--batch-of compute|tokens]

Reads `results/<sweep>/tune/<study>.json` (written by sweeps/tuning/search.py after every trial),
takes each study's optimum (`sweeps.tuning.rule_fit.optimum_of`), fits the rules (`fit_rules`) and
writes `hparam_rules.json`, which `optim.lr=auto optim.batch_size=auto optim.rules=...` read.
Needs neither Optuna nor torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweeps import records
from sweeps.errors import UserError
from sweeps.tuning.rule_fit import fit_rules, optimum_of

__all__ = ["RULES_FILE", "read_summaries", "fit_sweep"]

RULES_FILE = "hparam_rules.json"


def read_summaries(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every study summary of a sweep folder; UserError when there is none."""
    folder = Path(sweep_dir) / records.TUNE_DIR
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        raise UserError(
            str(sweep_dir),
            f"no study summaries under {folder}",
            "run python -m sweeps.tune -m sweep=lr_tune first, or point to its results folder",
        )
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def fit_sweep(
    sweep_dir: str | Path | Sequence[str | Path],
    *,
    out: str | Path | None = None,
    exclude: tuple[float, ...] = (),
    batch_of: str = "compute",
) -> dict[str, Any]:
    """Fit the rules from the studies of one sweep folder or several (e.g. the same sizes tuned at
    two token budgets, so that the batch rule sees a range of compute); write them (default
    <first sweep_dir>/hparam_rules.json).

    `exclude` drops sizes (by model.n_params target) from the fit, e.g. for a held-out check.
    `batch_of`: the batch rule's variable, "compute" (C) or "tokens" (D); see
    sweeps/run/hparam_rules.py.
    """
    dirs = [sweep_dir] if isinstance(sweep_dir, (str, Path)) else list(sweep_dir)
    optima = [
        optimum_of(s)
        for d in dirs
        for s in read_summaries(d)
        if not any(math.isclose(s["n_params_target"], x, rel_tol=1e-6) for x in exclude)
    ]
    rules = fit_rules(
        [o for o in optima if o is not None], source=", ".join(map(str, dirs)), batch_of=batch_of
    )
    path = Path(out) if out is not None else Path(dirs[0]) / RULES_FILE
    records.write_json_atomic(path, rules)
    rules["path"] = str(path)
    return rules
