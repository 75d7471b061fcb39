"""A results table file read as it is, into a DataFrame of the user's own columns
(analysis/inputs/canonical_table.py maps
and checks them): .csv, .tsv, .parquet or JSON lines, UTF-8 with or without a byte-order mark.

A file that cannot be read as its extension says is one `TableError` line naming the file and the
fix: an unknown extension, an empty file, text that is not UTF-8, a semicolon- or wrongly
separated export, a header naming one column twice, a JSON line that is not one object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import TableError

__all__ = ["read_table_file"]

_READERS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
            ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}  # fmt: skip


def read_table_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a .csv, .tsv, .parquet or .jsonl (.ndjson, JSON lines .json) file as it is."""
    path = Path(path)
    if not path.is_file():
        raise TableError(
            f"{path}: no such folder or file; pass a results table (.csv, .parquet, .jsonl) "
            "or a results folder (results/<sweep>)"
        )
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise TableError(
            f"{path}: unknown table type {path.suffix or '(no extension)'!r}; save it as .csv, "
            ".tsv, .parquet or .jsonl (one JSON object per line)"
        )
    if path.stat().st_size == 0:
        raise TableError(f"{path}: empty file; export the runs' results into it (docs/tables.md)")
    try:
        if kind == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise TableError(
                    f"{path}: reading Parquet needs pyarrow: pip install 'scaling-sweeps[tables]' "
                    "(or save the table as .csv)"
                ) from None
            frame = pd.read_parquet(path)
            if not isinstance(frame.index, pd.RangeIndex):  # df.set_index("run").to_parquet()
                frame = frame.reset_index()
        elif kind == "jsonl":
            frame = pd.DataFrame.from_records(_json_lines(path))
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", encoding="utf-8-sig")
            _check_header(path, kind)
    except TableError:
        raise
    except UnicodeDecodeError as e:
        raise TableError(
            f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x}); save it as UTF-8 (in Excel: "
            "'CSV UTF-8')"
        ) from None
    except (ValueError, OSError, pd.errors.ParserError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TableError(
            f"{path}: cannot be read as {kind} ({first}); check the file is a {kind} table with a "
            "header row"
        ) from None
    if frame.empty:
        raise TableError(f"{path}: no rows; export the runs' results into it (docs/tables.md)")
    # `params, tokens` (a space after each comma) names its columns ' tokens'
    return frame.rename(columns=lambda c: c.strip() if isinstance(c, str) else c)


def _check_header(path: Path, kind: str) -> None:
    """A CSV header that pandas would read wrongly without an error: one column holding ';' (a
    semicolon-separated export), or a name given twice (pandas renames the second 'x.1')."""
    sep = "\t" if kind == "tsv" else ","
    head = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, encoding="utf-8-sig")
    names = [str(v).strip() for v in head.iloc[0]]
    if len(names) == 1 and ";" in names[0]:
        raise TableError(
            f"{path}: the header {names[0][:60]!r} is one column holding ';': a semicolon-"
            "separated export (a spreadsheet in a decimal-comma locale); save it as CSV with "
            "commas between columns and points in numbers"
        )
    other, ext = (",", ".csv") if kind == "tsv" else ("\t", ".tsv")
    if len(names) == 1 and other in names[0]:
        raise TableError(
            f"{path}: the header {names[0][:60]!r} is one column holding {other!r}: the file is "
            f"{'comma' if other == ',' else 'tab'}-separated; rename it to {ext}"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TableError(
            f"{path}: column {twice[0]!r} appears {names.count(twice[0])} times in the header; "
            "rename or drop the extra one(s) so each column has one meaning"
        )


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, or of one JSON array of objects (pandas'
    `to_json(orient="records")`), one object of columns (`orient="columns"` or `"list"`), of
    rows (`"index"`) or of columns and data (`"split"`); a
    TableError names the first line that is not one JSON object or repeats a key (pandas gave a
    byte position, and kept the last of a repeated key), and says so when the file is one run's
    record.json rather than a table."""
    import json

    def no_repeats(where: str) -> Any:
        def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in pairs]
            twice = [k for k in keys if keys.count(k) > 1]
            if twice:
                raise TableError(f"{path}: {where} gives the key {twice[0]!r} twice; keep one")
            return dict(pairs)

        return hook

    text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows tools) is no data
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and "schema_version" in whole:
        raise TableError(
            f"{path}: this is one run's record, not a table; give the sweep folder that holds the "
            f"run folders, {path.parent.parent}"
        )
    if whole == []:
        raise TableError(f"{path}: an empty JSON array, no runs; export the table with its rows")
    if isinstance(whole, dict) and {"columns", "data"} <= set(whole):  # orient="split"
        try:
            frame = pd.DataFrame(whole["data"], columns=whole["columns"])
        except (ValueError, TypeError) as e:
            raise TableError(f"{path}: its columns and data do not match ({e})") from None
        return frame.to_dict(orient="records")  # type: ignore[no-any-return]
    if (
        isinstance(whole, dict)
        and whole
        and all(k.isdigit() and isinstance(v, dict) for k, v in whole.items())
        and not all(str(k).isdigit() for v in whole.values() for k in v)
    ):
        return list(whole.values())  # orient="index": row number -> run
    records = isinstance(whole, list) and whole and all(isinstance(o, dict) for o in whole)
    columns = (
        isinstance(whole, dict)
        and whole
        and all(isinstance(v, list | dict) for v in whole.values())
    )
    if records or columns:  # one array of runs, or one object of columns
        whole = json.loads(text, object_pairs_hook=no_repeats("an object"))
        if records:
            return list(whole)
        try:  # {"params": [...], ...} or {"params": {"0": ...}, ...}
            return pd.DataFrame(whole).to_dict(orient="records")  # type: ignore[no-any-return]
        except ValueError as e:  # columns of different lengths
            raise TableError(
                f"{path}: its columns cannot form a table ({e}); give each column one value per run"
            ) from None

    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.strip(), object_pairs_hook=no_repeats(f"line {i}"))
        except json.JSONDecodeError as e:
            raise TableError(
                f"{path}: line {i} is not valid JSON ({e.msg}, column {e.colno}); each line "
                'must be one JSON object such as {"n_params": 1e6, "n_tokens": 2e7, '
                '"loss": 3.1}, or the file one JSON array of such objects'
            ) from None
        if not isinstance(obj, dict):
            raise TableError(
                f"{path}: line {i} is a JSON {type(obj).__name__}, not an object; each line "
                "must be one object with the run's columns as keys (or the whole file one JSON "
                "array of them)"
            )
        rows.append(obj)
    return rows
