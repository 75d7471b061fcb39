"""Foreign results tables as users export them, found by fuzzing `python -m analysis TABLE`: each
bad one is one line naming the column, flag or file and the fix (exit 2, nothing written); each
unusual but valid one is read as its plain twin is. The first cases of this kind live in
tests/test_analysis_command_tables.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.command import main
from analysis.inputs.canonical_table import load_table
from tests.tables_data import FOREIGN, assert_refused, foreign, grid


def _write(path, content) -> None:
    if isinstance(content, pd.DataFrame):
        if path.suffix == ".parquet":
            content.to_parquet(path)
        else:
            content.to_csv(path, index=False, sep="\t" if path.suffix == ".tsv" else ",")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _jsonl(rows: list[str]) -> str:
    return "\n".join(rows) + "\n"


def _groups_of_sizes() -> pd.DataFrame:
    """Group 'b' holds 8 runs at two sizes: the table checks pass, `recommend` needs three."""
    t = foreign(grid())
    return t.assign(corpus=np.where(t["params"] >= 3e6, "b", "a"))


BAD = [  # (file name, content, extra args, text the one line must hold)
    ("r.csv", lambda: foreign(grid()).assign(params=True), [], "non-numeric value 'True' (row 1)"),
    (
        "r.parquet",
        lambda: foreign(grid()).assign(params=lambda t: pd.to_datetime(t["params"])),
        [],
        "'params' (n_params) has non-numeric value '1970-01-01",
    ),
    (
        "r.tsv",
        lambda: foreign(grid()).to_csv(index=False),
        [],
        "comma-separated; rename it to .csv",
    ),
    ("r.csv", lambda: foreign(grid()).to_csv(index=False, sep="\t"), [], "tab-separated"),
    (
        "r.csv",
        lambda: foreign(grid()).rename(columns={"val_loss": "vål"}).to_csv().encode("latin-1"),
        [],
        "not UTF-8 text (byte 0xe5); save it as UTF-8",
    ),
    (
        "r.jsonl",
        lambda: _jsonl(['{"params": 1e6, "tokens": 2e7, "val_loss": 3.1, "params": 5}']),
        [],
        "line 1 gives the key 'params' twice",
    ),
    (
        "r.json",
        lambda: '[{"params": 1e6, "tokens": 2e7, "val_loss": 3.1, "tokens": 5}]',
        [],
        "an object gives the key 'tokens' twice; keep one",
    ),
    ("r.json", lambda: "[]\n", [], "an empty JSON array, no runs"),
    (
        "r.json",
        lambda: '{"params": [1e6, 2e6], "tokens": [2e7], "val_loss": [3.1, 3.0]}',
        [],
        "its columns cannot form a table",
    ),
    (
        "r.csv",
        lambda: foreign(grid()),
        ["--columns", "n_params=params,n_tokens=params,loss=val_loss"],
        "column 'params' is mapped to n_params and n_tokens",
    ),
    (
        "r.csv",
        lambda: foreign(grid()),
        ["--columns", FOREIGN, "--group", "tokens"],
        "column 'tokens' is mapped to n_tokens and group",
    ),
    (
        "r.csv",
        lambda: foreign(grid()).assign(params=lambda t: t["params"] * 1e300),
        [],
        "C = 6 N D is inf at row 1, out of floating-point range",
    ),  # fmt: skip
    (
        "r.csv",
        lambda: foreign(grid()).assign(params=1e-300, tokens=lambda t: t["tokens"] * 1e-300),
        [],
        "C = 6 N D is 0 at row 1",
    ),  # fmt: skip
    ("r.csv", lambda: foreign(grid()), ["--out", "r.csv/report"], "r.csv is a file, not a folder"),
    (
        "r.csv",
        _groups_of_sizes,
        ["--group", "corpus", "--predict", "N=1e8,D=2e9", "--json"],
        "group 'b': recommend: 2 distinct model size(s)",
    ),  # fmt: skip
]


@pytest.mark.parametrize("name, make, extra, expect", BAD, ids=[b[3][:30] for b in BAD])
def test_bad_foreign_table_is_one_line_exit_2_nothing_written(
    tmp_path, capsys, name, make, extra, expect
):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    _write(tmp_path / name, make())
    args = [str(tmp_path / name), *(str(tmp_path / a) if a.startswith("r.") else a for a in extra)]
    if "--columns" not in extra:
        args += ["--columns", FOREIGN]
    assert_refused(main([*args, "--n-bootstrap", "5"]), capsys, expect, tmp_path, name)


def _spaced_header(t: pd.DataFrame) -> str:
    return t.to_csv(index=False).replace(",", ", ")  # Excel-like: `params, tokens, val_loss`


GOOD = [  # (file name, content, --columns): each reads as the plain CSV does
    ("r.csv", _spaced_header, FOREIGN),
    ("r.csv", lambda t: b"\xef\xbb\xbf" + t.to_csv(index=False).encode(), FOREIGN),  # BOM
    ("r.jsonl", lambda t: "\ufeff" + t.to_json(orient="records", lines=True), FOREIGN),
    (
        "r.jsonl",
        lambda t: _jsonl([json.dumps(r | {"id": 10**40}) for r in t.to_dict("records")]),
        FOREIGN,
    ),  # fmt: skip
    ("r.parquet", lambda t: t.set_index("params"), FOREIGN),  # the index holds a column
    ("r.csv", lambda t: t, FOREIGN + ","),  # a trailing comma in --columns
    # pandas' to_json: one array of runs, one object of columns (was "line 1 is a JSON list")
    ("r.json", lambda t: t.to_json(orient="records"), FOREIGN),
    ("r.json", lambda t: t.to_json(orient="columns"), FOREIGN),
    ("r.json", lambda t: json.dumps(t.to_dict(orient="list"), indent=2), FOREIGN),
    ("r.json", lambda t: t.to_json(orient="index"), FOREIGN),  # were read transposed
    ("r.json", lambda t: t.to_json(orient="split"), FOREIGN),
]


@pytest.mark.parametrize("name, make, columns", GOOD, ids=range(len(GOOD)))
def test_unusual_but_valid_table_reads_as_its_plain_twin(tmp_path, name, make, columns):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    t = foreign(grid())
    _write(tmp_path / name, make(t))
    got = load_table(tmp_path / name, columns=columns)
    want = load_table(t, columns=FOREIGN)
    for col in ("n_params", "n_tokens", "loss", "flops"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-9)


def test_json_holds_the_tables_warnings_and_points_agree_however_given(tmp_path, capsys):
    """A perplexity column was warned about on stderr only: a script reading --json saw
    "warnings": []. And N,D / N,C / D,C name one point: one loss."""
    t = foreign(grid()).assign(val_loss=lambda t: np.exp(t["val_loss"]))
    t.to_csv(tmp_path / "r.csv", index=False)
    points = ["N=1e8,D=2e9", "N=1e8,C=1.2e18", "D=2e9,C=1.2e18"]
    args = [str(tmp_path / "r.csv"), "--columns", FOREIGN, "--json", "--n-bootstrap", "5"]
    assert main([*args, *(a for p in points for a in ("--predict", p))]) == 0
    doc = json.loads(capsys.readouterr().out)  # stdout is the JSON document alone
    assert any("looks like perplexity" in w for w in doc["warnings"]), doc["warnings"]
    losses = [p["loss"] for p in doc["predictions"]]
    np.testing.assert_allclose(losses, losses[0], rtol=1e-12)
