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
    return [_summary(p) for p in paths]


def _summary(path: Path) -> dict[str, Any]:
    """One study summary; UserError naming the file when it cannot be one (torn, hand-edited)."""
    fix = "delete it, and rerun that study (python -m sweeps.tune -m ...) to write it again"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise UserError(str(path), f"not a readable study summary ({e})", fix) from e
    if not isinstance(obj, dict):
        raise UserError(str(path), f"not a study summary (a JSON {type(obj).__name__})", fix)
    for key, kind in (("trials", list), ("space", dict), ("n_params_target", int | float)):
        if not isinstance(obj.get(key), kind):
            raise UserError(str(path), f"not a study summary: no {key!r} of the right type", fix)
    return obj


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
    studies = [s for d in dirs for s in read_summaries(d)]
    sizes = sorted({float(s["n_params_target"]) for s in studies})
    for x in exclude:
        if not any(math.isclose(n, x, rel_tol=1e-6) for n in sizes):
            have = ", ".join(f"{n:g}" for n in sizes)
            raise UserError("--exclude", f"{x:g} is no study's size", f"the studies have {have}")
    kept = [
        s
        for s in studies
        if not any(math.isclose(s["n_params_target"], x, rel_tol=1e-6) for x in exclude)
    ]
    if not kept:
        raise UserError("--exclude", "leaves no study to fit", "exclude fewer sizes")
    optima = [optimum_of(s) for s in kept]
    empty = [s for s, o in zip(kept, optima, strict=True) if o is None]
    rules = fit_rules(
        [o for o in optima if o is not None], source=", ".join(map(str, dirs)), batch_of=batch_of
    )
    rules["warnings"] = list(rules.get("warnings", [])) + [
        f"study {s.get('study', '?')} (N = {s['n_params_target']:g}) has no complete trial: left "
        "out of the fit (its runs failed or diverged; see python -m sweeps.status)"
        for s in empty
    ]
    path = Path(out) if out is not None else Path(dirs[0]) / RULES_FILE
    try:
        records.write_json_atomic(path, rules)
    except OSError as e:  # a folder given as --out, a file on the path, no permission
        fix = "give a file path in a folder you can write to, e.g. --out rules.json"
        raise UserError("--out", f"cannot write {path}: {e.strerror or e}", fix) from e
    rules["path"] = str(path)
    return rules
