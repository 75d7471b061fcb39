"""Where a report's runs come from: a results folder of run records, or a results table.

`load_source(source)` returns the (runs, curves) frames the report, the comparison and the
back-tests read (the shapes `run_records.load_runs` gives): a table's rows become runs with status
ok,
`arch` set to their `group`, `flops_budget` set where a table's given C is shared by several runs
(an IsoFLOP slice), and a curve table's rows become the curves. `convention_text` says what N, D
and C mean under the table's N convention.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..result_types import MATMUL_CONVENTION
from .canonical_table import fit_points, load_table
from .holdout import parse_holdout
from .row_sample import sample_note, sample_rows
from .run_records import CURVE_COLUMNS, RUN_COLUMNS, fit_runs, load_runs
from .table_validation import MIN_POINTS

__all__ = [
    "ReportInputs",
    "load_source",
    "report_inputs",
    "runs_from_table",
    "convention_text",
    "default_table_out",
    "mark_table_out",
    "is_table",
]


TABLE_MARK = ".table"  # in a default table report folder: the name of the table it reports


def default_table_out(path: str | os.PathLike[str]) -> Path:
    """Where a table's report goes when --out is not given: `<table stem>_report/` beside it.

    AnalysisError when that folder holds the report of another table of the same stem
    (`runs.csv` and `runs.parquet`): one would overwrite the other's figures and numbers."""
    path = Path(path)
    out = path.with_name(path.stem + "_report")
    try:
        other = (out / TABLE_MARK).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return out
    if other and other != path.name:
        raise AnalysisError(
            f"--out: {out} holds the report of {other}, not of {path.name}; give this table its "
            f"own folder, e.g. --out {path.with_name(path.name.replace('.', '_') + '_report')}"
        )
    return out


def mark_table_out(out: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Note in a default report folder which table it reports (read by default_table_out)."""
    (Path(out) / TABLE_MARK).write_text(Path(path).name + "\n", encoding="utf-8")


_CONVENTIONS = {
    "as_given": "N as given by the table (convention not stated: --n-convention)",
    "total": "N = all parameters",
    "non_embedding": "N = non-embedding parameters",
    "matmul": "N = matmul parameters incl. head",
}


def is_table(source: str | os.PathLike[str] | pd.DataFrame) -> bool:
    """Whether `source` is a table (a DataFrame or a file) rather than a results folder."""
    return isinstance(source, pd.DataFrame) or not Path(source).is_dir()


def convention_text(attrs: dict) -> str:
    """What N, D, C and the loss mean, from a table's attrs; the records' own text for a folder."""
    if attrs.get("kind") != "table":
        return MATMUL_CONVENTION
    conv = str(attrs.get("n_convention", "as_given"))
    c = "C as given by the table" if attrs.get("flops_given") else "C = 6 N D"
    return f"{c}, {_CONVENTIONS.get(conv, conv)}; loss in nats/token"


def _config_keys(points: pd.DataFrame) -> list[str] | str:
    """A table row's config for `seed_noise.seed_groups`: the columns that say what was trained (N,
    D,
    group, lr) and its seed, so rows that differ only by seed give the seed noise floor; "null"
    (no config) for a table without a seed column."""
    if "seed" not in points:
        return "null"
    cols = [c for c in ("n_params", "n_tokens", "group", "lr", "seed") if c in points]
    return [json.dumps(dict(zip(cols, row, strict=True)), default=str)
            for row in points[cols].itertuples(index=False, name=None)]  # fmt: skip


def runs_from_table(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A canonical table (`canonical_table.load_table`) as the (runs, curves) frames of a results
    folder."""
    points = fit_points(table)
    n = len(points)
    runs = pd.DataFrame({c: [None] * n for c in RUN_COLUMNS})
    for col in ("n_params", "n_tokens", "loss", "flops", "seed", "lr"):
        if col in points:
            runs[col] = points[col].to_numpy()
    run_ids = (points["run"].astype(str) if "run" in points
               else pd.Series([f"row{i + 1}" for i in range(n)]))  # fmt: skip
    runs["run_id"] = run_ids.to_numpy()
    runs["status"] = "ok"
    runs["sweep"] = table.attrs.get("name", "table")
    runs["arch"] = points["group"].to_numpy() if "group" in points else None
    runs["flops_budget"] = _budgets(points)
    runs["n_steps"] = points["step"].to_numpy() if "step" in points else None
    for col in runs.columns:
        if col.startswith(("n_", "flops")) or col in ("loss", "lr", "seed"):
            runs[col] = pd.to_numeric(runs[col], errors="coerce").astype(float)
    runs["config_key"] = _config_keys(points)
    runs["run_dir"] = table.attrs.get("source", "")
    runs["excluded_reason"] = ""
    runs["included"] = True
    runs.attrs = {"skipped": [], "path": table.attrs.get("source", "table"),
                  "table": dict(table.attrs)}  # fmt: skip
    curves = pd.DataFrame(columns=[*CURVE_COLUMNS, "n_params", "included"])
    if "step" in table and table.attrs.get("points") in ("curves", "all") and len(table) > n:
        key = ["run"] if "run" in table else [c for c in ("n_params", "seed", "group", "lr")
                                              if c in table]  # fmt: skip
        ids = table.groupby(key, sort=False, dropna=False).ngroup().to_numpy()
        if "run" not in table:  # name each curve by its end point's run id
            end_ids = points.merge(
                table.assign(_id=ids).drop_duplicates(key)[[*key, "_id"]], on=key, how="left"
            )["_id"].to_numpy()
            names = dict(zip(end_ids, run_ids, strict=True))
            run_col = [names.get(i, f"curve{i}") for i in ids]
        else:
            run_col = table["run"].astype(str).tolist()
        curves = pd.DataFrame({"run_id": run_col, "sweep": runs["sweep"].iloc[0],
                               "step": table["step"], "n_tokens": table["n_tokens"],
                               "flops": table["flops"], "loss": table["loss"],
                               "train_loss": np.nan, "lr": table.get("lr", np.nan),
                               "time_s": np.nan, "n_params": table["n_params"],
                               "included": True})  # fmt: skip
    return runs.reset_index(drop=True), curves.reset_index(drop=True)


def _budgets(points: pd.DataFrame) -> np.ndarray:
    """A given C shared by at least 3 runs of several sizes is an IsoFLOP budget; NaN elsewhere."""
    out = np.full(len(points), np.nan)
    if not points.attrs.get("flops_given"):
        return out
    c = points["flops"].to_numpy(float)
    for value in np.unique(c):
        m = c == value
        if m.sum() >= 3 and np.unique(points["n_params"].to_numpy(float)[m]).size >= 3:
            out[m] = value
    return out


def load_source(
    source: str | os.PathLike[str] | pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) of a results folder (`load_runs`) or of a table (file or DataFrame; a
    DataFrame is taken as canonical, a file with its own column names as they are)."""
    if not is_table(source):
        return load_runs(source)
    if isinstance(source, pd.DataFrame) and source.attrs.get("kind") == "table":
        return runs_from_table(source)
    return runs_from_table(load_table(source, points="curves"))


@dataclass
class ReportInputs:
    """What a report fits: the runs and curves of one arch (or group), their fit points, where the
    report goes and what N means."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    data: pd.DataFrame
    name: str
    out_dir: Path
    convention: str
    n_convention: str
    archs: list[str]
    test: pd.Series | None = None  # the user's held-out split of `data` (named by its text)
    warnings: tuple[str, ...] = ()  # what reading the table warned of (perplexity, lr, tokens)
    n_rows: int = 0  # fit points before sampling (`row_sample`): more than len(data) if sampled

    @property
    def subsample(self) -> dict[str, object] | None:
        """A large table's sample, as fits.json says it ({"n_rows", "n_used", "why"}), or None."""
        if self.n_rows <= len(self.data):
            return None
        return {"n_rows": self.n_rows, "n_used": len(self.data),
                "why": sample_note(len(self.data), self.n_rows)}  # fmt: skip


def report_inputs(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    arch: str | None = None,
    n_convention: str | None = None,
    out: str | os.PathLike[str] | None = None,
    holdout: str | None = None,
) -> ReportInputs:
    """Load `source`, keep one arch (or group), pick the fit points; the report folder defaults
    to `<folder>/report` or `<table stem>_report` beside a table file (a DataFrame needs `out`).
    `holdout` (e.g. "C>1e21") is checked here, before anything is written."""
    runs, curves = load_source(source)
    table = runs.attrs.get("table")
    archs = sorted(runs["arch"].dropna().astype(str).unique())
    what = "group" if table else "arch"
    if arch is not None:
        runs = runs[runs["arch"] == arch].reset_index(drop=True)
        runs.attrs = dict(runs.attrs)
        curves = curves[curves["run_id"].isin(runs["run_id"])]
        if runs.empty:
            raise AnalysisError(f"{runs.attrs.get('path')}: no run has {what} {arch!r} ({archs})")
    elif len(archs) > 1:
        raise AnalysisError(
            f"{runs.attrs.get('path')}: runs of {len(archs)} {what}s ({', '.join(archs)}); laws "
            f"differ by {what}: pass arch=... (the CLI fits each and compares them)"
        )
    if table:
        if n_convention not in (None, table.get("n_convention")):
            raise AnalysisError(
                f"n_convention={n_convention!r}: a table's convention is set when it is loaded "
                "(load_table(..., n_convention=...))"
            )
        conv = str(table.get("n_convention", "as_given"))
        data = fit_runs(runs)
        data.attrs["n_convention"] = conv
        text = convention_text(table)
    else:
        conv = n_convention or "matmul"
        data = fit_runs(runs, n_convention=conv)
        text = (
            MATMUL_CONVENTION
            if conv == "matmul"
            else (
                f"C = 6 N D with {_CONVENTIONS.get(conv, conv)} (n_convention={conv}); D = tokens "
                "seen; loss in nats/token"
            )
        )
    data, n_rows = sample_rows(data, columns=("N", "D", "L"))  # a large table: its sample
    data = data.reset_index(drop=True)
    if out is not None:
        out_dir = Path(out)
    elif isinstance(source, pd.DataFrame):
        raise AnalysisError("build_report(table): pass out=... (where the report goes)")
    elif table:
        out_dir = default_table_out(source)
    else:
        out_dir = Path(source) / "report"
    name = str(table.get("name")) if table else Path(source).resolve().name
    test = None
    if holdout is not None:  # checked before anything is written
        h = parse_holdout(holdout)
        mask = h.mask(data)
        try:
            h.check(mask, min_train=MIN_POINTS)
        except AnalysisError as e:
            if arch is None or len(archs) < 2:
                raise
            # one group of several: say which, and that the cut holds runs out of the others
            raise AnalysisError(f"{what} {arch!r}: {e} (in this {what}; each {what} is "
                                f"fitted and split apart)") from None  # fmt: skip
        test = pd.Series(mask, name=h.text)
    said = tuple(runs.attrs.get("table", {}).get("warnings", ()))
    said += (sample_note(len(data), n_rows),) if n_rows > len(data) else ()
    return ReportInputs(runs, curves, data, name, out_dir, text, conv, archs, test, said, n_rows)
