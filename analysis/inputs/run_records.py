"""Loading run records into tidy DataFrames (the checks every fit makes are in errors.py).

`load_runs(path)` reads `<sweep>/<run_id>/record.json` (+ `curve.jsonl`) written by `sweeps.records`
and returns two frames: one row per run (the record's scalar fields; `config.*` columns
flattened) and one row per evaluation of each training curve. Runs that a fit should not use
stay in the frame with `included = False` and an `excluded_reason` (diverged, failed, skipped,
non-finite loss, duplicate, WSD trunk, older run-id version), so the report can count them.
Conventions are the record's: loss in nats/token, `n_params` the matmul N of C = 6ND.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweeps.records import (
    RECORD_FILE,
    SCHEMA_VERSION,
    RecordError,
    iter_run_dirs,
    read_curve,
    read_record,
)
from sweeps.run_record import RUN_ID_VERSION, id_version_of

from ..errors import AnalysisError, AnalysisWarning

__all__ = [
    "RUN_COLUMNS",
    "CURVE_COLUMNS",
    "N_CONVENTIONS",
    "load_runs",
    "fit_runs",
    "excluded_counts",
    "excluded_reasons",
]

# a WSD trunk (sweeps/branches/wsd.py) trains at constant lr and never cools down: its final loss is
# not a finished run's loss, so fits leave it out unless told otherwise
TRUNK_REASON = "WSD trunk (constant lr, never cooled down; its branches are the runs)"
# a folder named by an older run-id rule (sweeps/run_record.py) is no run of this code's sweeps:
# a rerun never reuses it (it trains the run again under its new id), so it must not be fitted
OLDER_ID_REASON = "older run-id version"

RUN_COLUMNS = (
    "run_id",
    "sweep",
    "status",
    "reason",
    "arch",
    "n_params",
    "n_params_total",
    "n_params_embedding",
    "n_params_non_embedding",
    "n_params_matmul",
    "flops_per_token_6n",
    "flops_per_token_exact",
    "n_tokens",
    "flops",
    "flops_exact",
    "flops_marginal",
    "flops_budget",
    "loss",
    "perplexity",
    "bits_per_byte",
    "train_loss",
    "unigram_entropy",
    "n_steps",
    "batch_size",
    "lr",
    "time_s",
    "tokens_per_s",
    "seed",
    "dataset_id",
    "parent_run_id",
    "role",
    "code_version",
    "created_at",
    "id_version",
)
# the order of load_runs' rows: sweep, size, tokens, seed; the run id breaks the ties that remain
RUN_ORDER = ("sweep", "n_params", "n_tokens", "seed", "run_id")
CURVE_COLUMNS = (
    "run_id",
    "sweep",
    "step",
    "n_tokens",
    "flops",
    "loss",
    "train_loss",
    "lr",
    "time_s",
)
# record column for each N convention a fit can use
N_CONVENTIONS = {
    "matmul": "n_params",
    "total": "n_params_total",
    "non_embedding": "n_params_non_embedding",
}
_NUMERIC = ("perplexity", "bits_per_byte", "train_loss", "unigram_entropy", "lr", "time_s",
            "tokens_per_s")  # fmt: skip


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(obj, str | int | float | bool) or obj is None:
        out[prefix] = obj


def _sweep_dirs(root: Path) -> list[Path]:
    """The sweep folders under `root`: root itself if it holds runs, else its subfolders that do."""
    if list(iter_run_dirs(root)):
        return [root]
    return [p for p in sorted(root.iterdir()) if p.is_dir() and list(iter_run_dirs(p))]


def _row(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    path = run_dir / RECORD_FILE
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise AnalysisError(
            f"{path}: schema_version {version!r}, but this analysis reads version "
            f"{SCHEMA_VERSION}; "
            "analyse it with the code version that wrote it (its `code_version` field) or "
            "re-run the sweep with this code"
        )
    # run_id, status, n_params, n_tokens: present and typed, or read_record refused the record
    row = {k: record.get(k) for k in RUN_COLUMNS} | {"id_version": id_version_of(record)}
    row["sweep"] = row["sweep"] or run_dir.parent.name
    config: dict[str, Any] = {}
    _flatten("config", record.get("config") or {}, config)
    row.update(config)
    row["config_key"] = json.dumps(record.get("config"), sort_keys=True, default=str)
    row["run_dir"] = str(run_dir)
    return row


def load_runs(
    path: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    include_trunks: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every run under a sweep folder (or a folder of sweep folders).

    Returns (runs, curves): `runs` has one row per readable record with the record's fields plus
    `included` (bool: usable by fits) and `excluded_reason`; `curves` has one row per evaluation
    (run_id, sweep, step, n_tokens, flops, loss, ...). A malformed or foreign record is skipped with
    an `AnalysisWarning` naming the file; the skipped paths are in `runs.attrs["skipped"]`.
    `dataset_id` keeps only runs of that dataset (otherwise fits refuse a mix of datasets).
    Records with `role == "trunk"` are excluded (see TRUNK_REASON) unless `include_trunks`.

    Raises AnalysisError for a missing folder, a folder without records, or a record of another
    schema version.
    """
    root = Path(path)
    if not root.is_dir():
        raise AnalysisError(
            f"{root}: no such folder; pass a sweep folder such as results/<sweep> "
            "(one sub-folder per run holding record.json)"
        )
    rows: list[dict[str, Any]] = []
    curve_rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    unfinished: list[str] = []
    for sweep_dir in _sweep_dirs(root):
        for run_dir in iter_run_dirs(sweep_dir):
            if not (run_dir / RECORD_FILE).exists():
                unfinished.append(run_dir.name)  # still running or interrupted: no final loss
                continue
            try:
                record = read_record(run_dir)
            except RecordError as e:
                warnings.warn(f"skipped: {e}", AnalysisWarning, stacklevel=2)
                skipped.append(str(run_dir / RECORD_FILE))
                continue
            row = _row(run_dir, record)
            rows.append(row)
            for ev in read_curve(run_dir):
                curve_rows.append(
                    {"run_id": row["run_id"], "sweep": row["sweep"]}
                    | {k: ev.get(k) for k in CURVE_COLUMNS[2:]}
                )
    if unfinished:
        names = ", ".join(unfinished[:5]) + (" ..." if len(unfinished) > 5 else "")
        warnings.warn(
            f"{root}: {len(unfinished)} run folder(s) without a record, not fitted (still "
            f"training, or interrupted: rerun the sweep to finish them): {names}",
            AnalysisWarning,
            stacklevel=2,
        )
    if not rows:
        found = (f"{len(skipped)} record(s) could not be used (the warnings say why)" if skipped
                 else f"no */{RECORD_FILE} or */*/{RECORD_FILE}")  # fmt: skip
        raise AnalysisError(
            f"{root}: no usable run record ({found}"
            + (f"; {len(unfinished)} run(s) not finished yet" if unfinished else "")
            + "); run a sweep first (e.g. `python -m sweeps.train -m sweep=demo`) "
            "or point at results/<sweep>"
        )
    runs = pd.DataFrame(rows)
    for col in RUN_COLUMNS:
        if col not in runs:
            runs[col] = None
    numeric = [c for c in RUN_COLUMNS if c.startswith(("n_", "flops", "loss")) or c in _NUMERIC]
    for col in numeric:
        runs[col] = pd.to_numeric(runs[col], errors="coerce").astype(float)
    if dataset_id is not None:
        runs = runs[runs["dataset_id"] == dataset_id].reset_index(drop=True)
        if runs.empty:
            raise AnalysisError(f"{root}: no run has dataset_id {dataset_id!r}")
    runs = _mark_exclusions(runs, include_trunks=include_trunks)
    # Rows in the order of what the runs are, not of their folder names (run ids are hashes, and
    # their scheme changed once): the bootstrap's resamples, and so its intervals, follow row order.
    runs = runs.sort_values(list(RUN_ORDER), kind="mergesort", na_position="last")
    runs = runs.reset_index(drop=True)
    runs.attrs["skipped"] = skipped
    runs.attrs["path"] = str(root)
    curves = pd.DataFrame(curve_rows, columns=list(CURVE_COLUMNS))
    for col in CURVE_COLUMNS[2:]:
        curves[col] = pd.to_numeric(curves[col], errors="coerce").astype(float)
    curves = curves.merge(runs[["run_id", "n_params", "included"]], on="run_id", how="left")
    return runs, curves


def _mark_exclusions(runs: pd.DataFrame, *, include_trunks: bool = False) -> pd.DataFrame:
    runs = runs.copy()
    reason = pd.Series("", index=runs.index, dtype=object)
    not_ok = runs["status"] != "ok"
    reason[not_ok] = runs.loc[not_ok, "status"].astype(str)
    older = runs["id_version"] < RUN_ID_VERSION
    reason[older] = OLDER_ID_REASON
    not_ok = not_ok | older
    if older.any():
        versions = ", ".join(str(v) for v in sorted(runs.loc[older, "id_version"].unique()))
        warnings.warn(
            f"{int(older.sum())} record(s) from an older run-id version (id_version {versions}; "
            f"this code names runs with version {RUN_ID_VERSION}): excluded from fits, as a rerun "
            "never reuses them; re-run the sweep with this code (it trains them under new ids, "
            "the old folders stay) or analyse them with the code that wrote them (code_version)",
            AnalysisWarning,
            stacklevel=3,
        )
    if not include_trunks:
        trunk = ~not_ok & (runs["role"] == "trunk")
        reason[trunk] = TRUNK_REASON
        not_ok = not_ok | trunk
    loss = runs["loss"].to_numpy(float)
    bad_loss = ~not_ok & ~(np.isfinite(loss) & (loss > 0))
    reason[bad_loss] = "non-finite or non-positive loss"
    bad_size = ~not_ok & ~bad_loss & ~((runs["n_params"] > 0) & (runs["n_tokens"] > 0))
    reason[bad_size] = "non-positive n_params or n_tokens"
    for what, n in (
        ("non-finite or non-positive losses", bad_loss.sum()),
        ("non-positive n_params/n_tokens", bad_size.sum()),
    ):
        if n:
            ids = ", ".join(
                runs.loc[bad_loss if "loss" in what else bad_size, "run_id"].astype(str)
            )
            warnings.warn(
                f"{n} run(s) with status ok have {what} ({ids}): excluded from fits; "
                "mark them diverged in their record or re-run them",
                AnalysisWarning,
                stacklevel=3,
            )
    # duplicates: the same run_id twice (a copied folder) or the same resolved config twice
    usable = reason == ""
    order = runs.sort_values("created_at", na_position="last").index
    seen_id: set[str] = set()
    seen_cfg: set[str] = set()
    dups = []
    for i in order:
        if not usable[i]:
            continue
        rid, cfg = str(runs.at[i, "run_id"]), runs.at[i, "config_key"]
        has_cfg = cfg not in ("null", "{}")
        if rid in seen_id or (has_cfg and cfg in seen_cfg):
            reason[i] = "duplicate"
            dups.append(f"{rid} ({runs.at[i, 'run_dir']})")
        seen_id.add(rid)
        if has_cfg:
            seen_cfg.add(cfg)
    if dups:
        warnings.warn(
            f"{len(dups)} duplicated run(s) (same run_id or same resolved config): "
            f"{'; '.join(dups)}; only the first written is used, delete the copies",
            AnalysisWarning,
            stacklevel=3,
        )
    runs["excluded_reason"] = reason
    runs["included"] = reason == ""
    return runs


def excluded_counts(runs: pd.DataFrame) -> dict[str, int]:
    """Number of runs kept out of fits, by reason (diverged, failed, skipped, duplicate, ...)."""
    counts = runs.loc[~runs["included"], "excluded_reason"].value_counts()
    out = {str(k): int(v) for k, v in counts.items()}
    if runs.attrs.get("skipped"):
        out["unreadable record"] = len(runs.attrs["skipped"])
    return out


def excluded_reasons(runs: pd.DataFrame) -> dict[str, dict[str, int]]:
    """For each exclusion kind (skipped, failed, diverged ...), the records' own `reason` texts
    and how many runs gave each: what the report lists under the excluded counts."""
    out: dict[str, dict[str, int]] = {}
    ex = runs[~runs["included"]]
    for (kind, why), g in ex.groupby(
        [ex["excluded_reason"], ex["reason"].fillna("").astype(str)], sort=True
    ):
        out.setdefault(str(kind), {})[why or "(no reason recorded)"] = len(g)
    return out


def fit_runs(runs: pd.DataFrame, *, n_convention: str = "matmul") -> pd.DataFrame:
    """The included runs a fit uses, with columns `N` (under `n_convention`), `D`, `C`, `L`.

    Raises AnalysisError if no run is usable, if two dataset_ids are mixed (losses on different
    data are not comparable), or if the convention's column is missing.
    """
    if n_convention not in N_CONVENTIONS:
        raise AnalysisError(
            f"n_convention={n_convention!r}: choose one of {', '.join(N_CONVENTIONS)}"
        )
    use = runs[runs["included"]].copy()
    where = runs.attrs.get("path", "the runs")
    if use.empty:
        counts = excluded_counts(runs)
        raise AnalysisError(
            f"{where}: no usable runs to fit (excluded: {counts or 'none'}); "
            "check the sweep finished with status ok"
        )
    datasets = sorted(use["dataset_id"].dropna().astype(str).unique())
    if len(datasets) > 1:
        raise AnalysisError(
            f"{where}: runs of {len(datasets)} datasets mixed in one fit (dataset_id "
            f"{', '.join(datasets)}); losses on different data are not comparable: analyse each "
            "sweep folder separately (in Python: load_runs(path, dataset_id=...))"
        )
    col = N_CONVENTIONS[n_convention]
    n = use[col].to_numpy(float)
    if not np.all(np.isfinite(n) & (n > 0)):
        raise AnalysisError(
            f"{where}: field {col} missing or non-positive in some records; "
            "use n_convention='matmul' (the n_params field)"
        )
    use["N"] = n
    use["D"] = use["n_tokens"].to_numpy(float)
    use["C"] = 6.0 * use["N"] * use["D"]
    use["L"] = use["loss"].to_numpy(float)
    use.attrs = dict(runs.attrs) | {"n_convention": n_convention}
    return use.reset_index(drop=True)
