"""Any results table in: a CSV, Parquet or JSONL file, a DataFrame, or a results folder, read into
the canonical table every fit, back-test and prediction takes (docs/tables.md).

Canonical columns (the names `analysis/inputs/run_records.py` gives a record's fields):
`n_params` N (under the convention the user states), `n_tokens` D (tokens seen), `loss` (nats per
token), `flops` C (6 N D when absent), and optional `seed`, `group` (architecture, corpus,
schedule: fitted apart), `lr`, `step` (its presence makes the table one of loss curves) and `run`
(which rows of a curve table belong to one run). `columns={"n_params": "params", ...}` maps the
table's own names. Every bad table raises `TableError` with one line naming the column and the fix;
nothing is guessed silently.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisWarning, TableError
from .file_readers import read_table_file
from .table_validation import (
    MIN_POINTS,
    check_curve_runs,
    check_duplicates,
    check_fit_size,
    check_loss_units,
    check_values,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TABLE_CONVENTIONS",
    "MIN_POINTS",
    "TableError",
    "parse_columns",
    "read_table_file",
    "load_table",
    "end_points",
    "fit_points",
]

# canonical name -> what it holds (also the help text of a missing column)
CANONICAL_COLUMNS = {
    "n_params": "N, parameters",
    "n_tokens": "D, tokens seen",
    "loss": "loss in nats/token",
    "flops": "C, training FLOPs (6ND when absent)",
    "seed": "seed",
    "group": "group fitted apart (architecture, corpus, schedule)",
    "lr": "learning rate",
    "step": "optimizer step (a table of loss curves)",
    "run": "run id (which rows of a curve table are one run)",
    "schedule": "learning-rate schedule (constant, wsd, cosine, linear)",
}
# schedules whose mid-run evaluations are (nearly) finished runs of that length
HOLDING_SCHEDULES = ("constant", "wsd")
REQUIRED_COLUMNS = ("n_params", "n_tokens", "loss")
# what N counts; `as_given` records that the table did not say
TABLE_CONVENTIONS = ("as_given", "total", "non_embedding", "matmul")
POINTS = ("final", "all", "curves")


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """`"n_params=params,loss=val_loss"` (or a dict) -> {canonical: table column}, checked."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        pairs = [(str(k), str(v)) for k, v in spec.items()]
    else:
        pairs = []
        for part in [p.strip() for p in str(spec).split(",") if p.strip()] or [""]:
            key, eq, value = part.partition("=")
            if not (eq and key.strip() and value.strip()):
                raise TableError(
                    f"--columns {spec!r}: {part!r} is not CANONICAL=COLUMN; write comma-separated "
                    "pairs such as n_params=params,n_tokens=tokens,loss=val_loss"
                )
            pairs.append((key.strip(), value.strip()))
    out: dict[str, str] = {}
    for key, value in pairs:
        if key not in CANONICAL_COLUMNS:
            raise TableError(
                f"--columns: {key!r} is not a canonical column; map one of "
                f"{', '.join(CANONICAL_COLUMNS)} (e.g. n_params={value})"
            )
        if key in out:
            raise TableError(
                f"--columns: {key} is mapped twice ({out[key]!r}, {value!r}); keep one"
            )
        if value in out.values():
            other = next(k for k, v in out.items() if v == value)
            raise TableError(f"--columns: column {value!r} is mapped to {other} and {key} (a "
                             "--group column counts too); map each to its own column")  # fmt: skip
        out[key] = value
    return out


def _canonical(frame: pd.DataFrame, columns: dict[str, str], where: str) -> pd.DataFrame:
    """Rename the mapped columns to canonical names; check required ones exist."""
    have = [str(c) for c in frame.columns]
    for key, col in columns.items():
        if col not in frame.columns:
            flag = "--group or --columns" if key == "group" else "--columns"
            raise TableError(
                f"{where}: {key}={col}: the table has no column {col!r} "
                f"(it has {', '.join(have[:12])}); fix the name given to {flag}"
            )
    # the mapping wins over a column already named like its canonical name (n_params=n_params_total)
    shadowed = [k for k, v in columns.items() if k != v and k in frame.columns]
    frame = frame.drop(columns=[k for k in shadowed if k not in columns.values()])
    frame = frame.rename(columns={v: k for k, v in columns.items()})
    for key in REQUIRED_COLUMNS:
        if key == "n_tokens" and "flops" in frame.columns and "n_tokens" not in frame.columns:
            continue  # D = C / 6N, derived by load_table once the values are checked
        if key not in frame.columns:
            raise TableError(
                f"{where}: no column {key} ({CANONICAL_COLUMNS[key]}); the table has "
                f"{', '.join(have[:12])}: map yours with --columns {key}=<name>"
            )
    keep = [c for c in CANONICAL_COLUMNS if c in frame.columns]
    return frame[keep].copy()


def end_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run of a loss-curve table (one with a `step` column): each run's last step.

    A run is the rows sharing `run` if there is such a column, else the rows sharing n_params,
    seed, group and lr. A table without `step` is returned as it is.
    """
    if "step" not in table or table.empty:
        return table
    keys = ["run"] if "run" in table else [c for c in ("n_params", "seed", "group", "lr")
                                           if c in table]  # fmt: skip
    last = table.sort_values("step").groupby(keys, sort=False, dropna=False).tail(1)
    out = last.sort_index().reset_index(drop=True)
    out.attrs = dict(table.attrs) | {"n_curve_rows": len(table)}
    return out


def _tokens_along_curves(t: pd.DataFrame, where: str) -> pd.DataFrame:
    keys = ["run"] if "run" in t else [c for c in ("n_params", "seed", "group", "lr") if c in t]
    g = t.groupby(keys, sort=False, dropna=False)
    flat = (g["n_tokens"].transform("nunique") == 1) & (g["step"].transform("nunique") > 1)
    if flat.any():
        warnings.warn(
            f"{where}: n_tokens is constant along the steps of {int(flat.sum())} curve row(s): "
            "read as each run's total, tokens at a step = n_tokens * step / last step "
            "(give tokens seen per step to avoid this)",
            AnalysisWarning,
            stacklevel=3,
        )
        last = g["step"].transform("max").to_numpy(float)
        scaled = t["n_tokens"].to_numpy(float) * t["step"].to_numpy(float) / last
        t.loc[flat, "n_tokens"] = scaled[flat.to_numpy()]
        t = t[t["n_tokens"] > 0].copy()  # step 0 has seen no tokens
    return t


def _best_lr(t: pd.DataFrame, where: str) -> pd.DataFrame:
    """Where one (N, D) point was trained at several learning rates, keep the best (lowest loss),
    as a tuned lr per size would have; say how many rows that dropped."""
    keys = [c for c in ("n_params", "n_tokens", "seed", "group") if c in t]
    if "lr" not in t or not t.duplicated(subset=keys).any():
        return t
    best = t.loc[t.groupby(keys, sort=False, dropna=False)["loss"].idxmin()]
    warnings.warn(
        f"{where}: {len(t) - len(best)} run(s) repeat an (N, D) point at another lr: each point "
        "keeps its best lr (lowest loss); pass a table with one lr per point to fit them all",
        AnalysisWarning,
        stacklevel=3,
    )
    out = best.sort_index().reset_index(drop=True)
    out.attrs = dict(t.attrs)
    return out


def _warn_mid_run(t: pd.DataFrame, where: str) -> None:
    """--curve-points all on loss curves: every evaluation is fitted as a run. An evaluation
    mid-way through a run whose learning rate decays (cosine, linear) is not a finished run of
    that length (it has not cooled down) and sits above the law; a constant or WSD-trunk curve's
    is nearly one. Said unless a schedule column says every run is constant or wsd."""
    sched = t["schedule"].astype(str).str.lower() if "schedule" in t else None
    if sched is not None and sched.isin(HOLDING_SCHEDULES).all():
        return
    n_runs = len(end_points(t))
    warnings.warn(
        f"{where}: --curve-points all fits all {len(t)} rows of {n_runs} curves as points, every "
        "learning rate's included: a mid-run evaluation of a decaying schedule (cosine, linear) "
        "is not a finished run and sits above the law, so fits and back-tests on them miss; "
        "use --curve-points final, or map a schedule column (--columns schedule=...) whose "
        "values say constant or wsd",
        AnalysisWarning,
        stacklevel=3,
    )


def load_table(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    columns: str | Mapping[str, str] | None = None,
    n_convention: str | None = None,
    points: str = "final",
) -> pd.DataFrame:
    """The canonical table of `source` (a .csv/.tsv/.parquet/.jsonl file, a DataFrame, or a
    results folder of run records), validated.

    columns: {canonical: table column} or "n_params=params,loss=val_loss". n_convention: what N
    counts (one of TABLE_CONVENTIONS; default `as_given` for a table, `matmul` for records; a
    table holding `n_params_<convention>` columns uses that column as N). points: "final" keeps each
    run's last step of a curve table (`step` column; where a point has several lr, the best),
    "all" keeps every row as a point, "curves" keeps every row and marks the last steps as the
    points (`fit_points` picks them).
    The result's `attrs` hold source, name, n_convention, columns, points and kind
    ("table" or "records"). Raises TableError (one line: the column and the fix).
    """
    if points not in POINTS:
        raise TableError(
            f"points={points!r}: choose 'final' (each run's last step), 'all' (every row is a "
            "point) or 'curves' (every row, the runs' last steps being the points)"
        )
    if n_convention is None and isinstance(source, pd.DataFrame):
        n_convention = source.attrs.get("n_convention")
    conv = n_convention or "as_given"
    if conv not in TABLE_CONVENTIONS:
        raise TableError(
            f"--n-convention {conv!r}: choose one of {', '.join(TABLE_CONVENTIONS)} "
            "(what your n_params counts)"
        )
    mapping = parse_columns(columns)
    src = str(source)
    if isinstance(source, pd.DataFrame):
        frame, where, name = source, "table", str(source.attrs.get("name", "table"))
        src = str(source.attrs.get("source", "DataFrame"))
        if frame.empty:
            raise TableError("table: no rows; pass a DataFrame with one row per run")
    elif Path(source).is_dir():
        return _records_table(Path(source), n_convention or "matmul", mapping)
    else:
        frame, where, name = read_table_file(source), str(source), Path(source).stem
    by_conv = f"n_params_{conv}"
    if conv != "as_given" and by_conv in frame.columns and "n_params" not in mapping:
        mapping["n_params"] = by_conv
        frame = frame.drop(columns=["n_params"], errors="ignore")
    t = _canonical(frame, mapping, where)
    t = check_values(t, mapping, where)
    derived = "n_tokens" not in t
    if derived:  # a table of N, C and loss: D from C = 6 N D, said in the report
        t["n_tokens"] = t["flops"].astype(float) / (6.0 * t["n_params"].astype(float))
    flops_given = "flops" in t
    if not flops_given:
        t["flops"] = 6.0 * t["n_params"] * t["n_tokens"]
        ok = (t["flops"] > 0) & (t["flops"] < float("inf"))  # 1e300 * 1e300, 1e-300 * 1e-300
        if not ok.all():
            i = int((~ok).to_numpy().argmax())
            raise TableError(
                f"{where}: C = 6 N D is {t['flops'].iloc[i]:g} at row {i + 1}, out of floating-"
                "point range; give N and D in parameters and tokens, or map a flops column"
            )
    check_duplicates(t, mapping, where)
    check_curve_runs(t, mapping, where)
    with warnings.catch_warnings(record=True) as caught:  # shown, and kept for the report
        warnings.simplefilter("always")
        if derived:
            warnings.warn(
                f"{where}: no n_tokens column: D derived as C / (6 N) from the flops column "
                f"({mapping.get('flops', 'flops')!r}) and N; give D (--columns n_tokens=...) "
                "where your C counts more than 6 N D (attention, another N convention)",
                AnalysisWarning,
                stacklevel=2,
            )
        if "step" in t:
            t = _tokens_along_curves(t, where)
        ends = end_points(t)
        if points != "all":  # "all" fits every row: no point keeps only its best lr
            ends = _best_lr(ends, where)
        elif "step" in t:
            _warn_mid_run(t, where)
        check_fit_size(ends, where)
        check_loss_units(ends, mapping, where)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    out = (ends if points == "final" else t).reset_index(drop=True)
    out.attrs = {"source": src, "name": name, "n_convention": conv, "columns": dict(mapping),
                 "points": points, "kind": "table", "flops_given": flops_given,
                 "warnings": [str(w.message) for w in caught
                              if issubclass(w.category, AnalysisWarning)]}  # fmt: skip
    return out


def fit_points(table: pd.DataFrame) -> pd.DataFrame:
    """The rows a law is fitted to: each run's last step (best lr per point) for a table loaded
    with points="curves", otherwise the table itself."""
    if table.attrs.get("points") != "curves":
        return table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)  # load_table warned already
        out = _best_lr(end_points(table), "table")
    out.attrs = dict(table.attrs) | {"points": "final"}
    return out


def _records_table(root: Path, conv: str, mapping: dict[str, str]) -> pd.DataFrame:
    """A results folder as a canonical table: its included runs, N under `conv`."""
    from .run_records import N_CONVENTIONS, fit_runs, load_runs

    if mapping:
        raise TableError(f"{root}: --columns applies to tables; a results folder has its own names")
    if conv not in N_CONVENTIONS:
        raise TableError(
            f"--n-convention {conv!r}: a results folder records {', '.join(N_CONVENTIONS)}"
        )
    data = fit_runs(load_runs(root)[0], n_convention=conv)
    # a run's planned IsoFLOP budget where it has one (the report's recommendation reads the
    # same, so --predict and the report back-test on one ladder), else its C
    budget = data["flops_budget"].to_numpy(float)
    flops = np.where(np.isfinite(budget), budget, data["C"].to_numpy(float))
    cols: dict[str, Any] = {"n_params": data["N"], "n_tokens": data["D"], "loss": data["L"],
                            "flops": flops, "seed": data["seed"], "lr": data["lr"],
                            "run": data["run_id"]}  # fmt: skip
    if data["arch"].nunique() > 1:
        cols["group"] = data["arch"].astype(str)
    out = pd.DataFrame(cols).reset_index(drop=True)
    out.attrs = {"source": str(root), "name": root.resolve().name, "n_convention": conv,
                 "columns": {}, "points": "final", "kind": "records"}  # fmt: skip
    return out
