"""`python -m analysis` on a results table (analysis/inputs/canonical_table.py): predictions as one
JSON document,
groups fitted and drawn together, curve tables, and the bad tables and options it must refuse in
one line, exit 2, writing nothing. Reading and mapping tables: tests/test_analysis_inputs_tables.py.

Tables are tiny synthetic grids from a known Chinchilla law with seeded log-normal noise
(tests/tables_data.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.command import main
from analysis.errors import AnalysisError
from analysis.laws.synthetic import TRUE_PARAMS, law_loss, write_sweep
from tests.tables_data import FOREIGN, assert_refused, foreign, grid

# ---------------------------------------------------------------- the CLI


@pytest.mark.slow
def test_must_show_predict_json_on_foreign_column_names(tmp_path):
    """`python -m analysis TABLE.csv --columns ... --predict N=..,D=.. --json`: one JSON document
    on stdout whose predicted loss and interval hold the generating law."""
    foreign(grid(noise=0.003)).to_csv(tmp_path / "runs.csv", index=False)
    points = [(3e7, 1e9), (1e8, 2e9)]
    cmd = [sys.executable, "-m", "analysis", str(tmp_path / "runs.csv"), "--columns", FOREIGN,
           "--n-bootstrap", "20", "--json"]  # fmt: skip
    for n, d in points:
        cmd += ["--predict", f"N={n:g},D={d:g}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is the JSON document and nothing else
    assert {"predictions", "law", "why", "warnings"} <= set(doc) and doc["law"] and doc["why"]
    assert len(doc["predictions"]) == 2
    for p, (n, d) in zip(doc["predictions"], points, strict=True):
        assert (p["n_params"], p["n_tokens"], p["flops"]) == pytest.approx((n, d, 6 * n * d))
        truth = float(law_loss(TRUE_PARAMS, n, d))
        lo, hi = p["interval"]
        assert lo <= truth <= hi, (lo, truth, hi)
        assert lo <= p["loss"] <= hi and abs(p["loss"] / truth - 1) < 0.02
        assert p["level"] == 0.95 and p["law"] == doc["law"]
    assert "report:" in proc.stderr and (tmp_path / "runs_report" / "fits.json").exists()
    fits = json.loads((tmp_path / "runs_report" / "fits.json").read_text())
    assert fits["n_convention"] == "as_given" and "as given" in fits["convention"]


@pytest.mark.slow
def test_cli_group_fits_each_group_and_draws_them_together(tmp_path, capsys):
    a, b = grid(seed=1), grid(seed=2)
    b["loss"] *= 1.1
    t = pd.concat([foreign(a).assign(corpus="c4"), foreign(b).assign(corpus="rpj")])
    t.to_csv(tmp_path / "r.csv", index=False)
    out = tmp_path / "rep"
    rc = main([str(tmp_path / "r.csv"), "--columns", FOREIGN, "--group", "corpus", "--out",
               str(out), "--n-bootstrap", "10", "--predict", "N=1e8,C=1e18", "--json",
               "--n-convention", "total", "--holdout", "N>=1e7"])  # fmt: skip
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    doc = json.loads(cap.out)
    assert [p["group"] for p in doc["predictions"]] == ["c4", "rpj"]
    assert set(doc["groups"]) == {"c4", "rpj"}
    assert doc["predictions"][1]["loss"] > doc["predictions"][0]["loss"]
    for g in ("c4", "rpj"):
        fits = json.loads((out / g / "fits.json").read_text())
        assert fits["arch"] == g and fits["n_convention"] == "total"
        assert fits["backtests"]["chinchilla"]["held_out"] == "N>=1e7"
    report = (out / "report.md").read_text()
    assert "## r (c4)" in report and "## r (rpj)" in report
    assert (out / "figures" / "compare_compute.png").exists()


def _rows(**cols) -> pd.DataFrame:
    t = foreign(grid())
    for k, v in cols.items():
        t[k] = v
    return t


def _bad(tmp_path, name: str, content) -> str:
    path = tmp_path / name
    if isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    else:
        path.write_text(content)
    return str(path)


def _dup():
    t = foreign(grid())
    return pd.concat([t, t.iloc[[3]]], ignore_index=True)


def _one_size():
    t = foreign(grid())
    return t.assign(params=1e6).drop_duplicates(["params", "tokens"])


def _nan_loss():
    t = foreign(grid())
    t.loc[4, "val_loss"] = np.nan
    return t


def _two_dups(seed=None):
    """Two repeated rows (4 and 6): the error names a real pair, 4 and 21 (it said 4 and 6)."""
    t = foreign(grid())
    if seed is not None:
        t["seed"] = seed
    return pd.concat([t, t.iloc[[3, 5]]], ignore_index=True)


def _one_step_per_run():
    """A curve table whose runs each logged one step, without a run column: rows at the same N and
    step but other D are other runs (they were merged into one run per N without a word)."""
    return _rows(step=1000)


def _text(col):
    t = foreign(grid()).astype({col: object})
    t.loc[2, col] = "1.3B"
    return t


BAD = [  # (file name, content, extra args, text the one line must hold)
    ("r.csv", lambda: grid().drop(columns="loss"), [], "no column loss (loss in nats/token)"),
    (
        "r.csv",
        lambda: foreign(grid()),
        ["--columns", "n_params=params,n_tokens=tokens,loss=vl"],
        "no column 'vl'",
    ),
    ("r.csv", lambda: foreign(grid()), ["--columns", "n_params:params"], "'n_params:params'"),
    ("r.csv", lambda: foreign(grid()), ["--columns", "size=params"], "'size' is not a canonical"),
    ("r.csv", lambda: _text("params"), [], "'params' (n_params) has non-numeric value '1.3B'"),
    (
        "r.csv",
        lambda: _rows(tokens=-1.0),
        [],
        "'tokens' (n_tokens) has 20 value(s) that are not positive",
    ),
    (
        "r.csv",
        _nan_loss,
        [],
        "'val_loss' (loss) has 1 value(s) that are not positive (first: nan at row 5)",
    ),
    ("r.csv", lambda: _rows(val_loss=math.inf), [], "'val_loss' (loss)"),
    ("r.csv", _dup, [], "rows 4 and 21 repeat the same point (params=1e+05, tokens=6.4e+08"),
    ("r.csv", _one_size, [], "single model size (n_params=1e+06)"),
    (
        "r.csv",
        lambda: _rows(corpus=["b" if i in (0, 4, 8) else "a" for i in range(20)]),
        ["--group", "corpus"],
        "group 'b' has 3 run(s); a law needs at least 6",
    ),
    (
        "r.csv",
        lambda: _rows(corpus=[None] + ["a"] * 19),
        ["--group", "corpus"],
        "'corpus' (group) is empty at row 1",
    ),
    ("r.csv", lambda: _rows(), ["--group", "corpus"], "no column 'corpus'"),
    ("r.csv", lambda: _rows(), ["--group", "corpus"], "fix the name given to --group"),
    ("r.csv", _two_dups, [], "rows 4 and 21 repeat the same point (params=1e+05, tokens=6.4e+08)"),
    (
        "r.csv",
        lambda: _two_dups(np.nan),
        [],
        "rows 4 and 21 repeat the same point (params=1e+05, tokens=6.4e+08, seed empty)",
    ),
    (
        "r.csv",
        _one_step_per_run,
        [],
        "rows 1 and 2 have the same params=1e+05, step=1000 but other tokens, so they are two runs",
    ),
    ("r.csv", lambda: "params;tokens;val_loss\n1e6;2e7;3,1\n", [], "semicolon-separated"),
    (
        "r.csv",
        lambda: _rows().assign(extra=1.0).rename(columns={"extra": "val_loss"}),
        [],
        "column 'val_loss' appears 2 times in the header",
    ),
    (
        "r.jsonl",
        lambda: '{"n_params": 1e6, "n_tokens": 2e7, "loss": 3.1}\n{"n_params": 2e6,\n',
        [],
        "line 2 is not valid JSON",
    ),
    ("r.csv", lambda: "", [], "empty file"),
    ("r.csv", lambda: "params,tokens,val_loss\n", [], "no rows"),
    ("r.xlsx", lambda: "x", [], "unknown table type '.xlsx'"),
    ("r.jsonl", lambda: "{not json\n", [], "line 1 is not valid JSON"),
    (
        "record.json",
        lambda: json.dumps({"schema_version": 1, "run_id": "a"}, indent=1),
        [],
        "this is one run's record, not a table; give the sweep folder",
    ),
    ("r.parquet", lambda: "not parquet", [], "cannot be read as parquet"),
    ("r.csv", lambda: _rows(), ["--holdout", "C>1e30"], "no point is held out"),
    ("r.csv", lambda: _rows(), ["--holdout", "N>=1e5"], "leaves 0 point(s) to fit"),
    ("r.csv", lambda: _rows(), ["--holdout", "size>1"], "unknown column 'size'"),
    ("r.csv", lambda: _rows(), ["--predict", "N=abc,D=1e9"], "N=abc must be a finite positive"),
    ("r.csv", lambda: _rows(), ["--predict", "N=1e9"], "give exactly two of N, D and C"),
    ("r.csv", lambda: _rows(), ["--target-flops", "-1"], "--target-flops -1.0"),
    ("r.csv", lambda: _rows(), ["--json"], "--json prints the predictions"),
]


@pytest.mark.parametrize("name, make, extra, expect", BAD, ids=[b[3][:30] for b in BAD])
def test_bad_table_is_one_line_exit_2_nothing_written(tmp_path, capsys, name, make, extra, expect):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    path = _bad(tmp_path, name, make())
    args = [path, *extra]
    if "--columns" not in extra:
        args += ["--columns", FOREIGN] if "val_loss" in open(path).read() else []
    assert_refused(main([*args, "--n-bootstrap", "5"]), capsys, expect, tmp_path, name)


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-1e13"])
def test_target_flops_checked_before_a_folder_report_is_written(tmp_path, capsys, value):
    """-1e13 (scientific notation) reached argparse as an option: "expected one argument"."""
    t = grid()
    sweep = write_sweep(tmp_path / "s", n_params=t["n_params"], n_tokens=t["n_tokens"],
                        loss=t["loss"])  # fmt: skip
    assert main([str(sweep), "--target-flops", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target-flops" in err and "finite positive" in err
    assert not (sweep / "report").exists()


def test_predict_points_parse_and_json_is_strict():
    from types import SimpleNamespace

    from analysis.prediction.requested_points import parse_point, predictions_json

    assert parse_point("N=1e9,D=2e10") == (1e9, 2e10)
    assert parse_point("N=1e9,C=1.2e20") == pytest.approx((1e9, 2e10))
    assert parse_point("D=2e10, C=1.2e20") == pytest.approx((1e9, 2e10))
    assert parse_point("n_params=1e9,n_tokens=2e10") == (1e9, 2e10)
    for bad in ("N=1e9,N=2e9", "N=1e9,D=2e10,C=1e20", "X=1", "N=-1,D=1", "N=1e9,D=inf"):
        with pytest.raises(AnalysisError, match="--predict"):
            parse_point(bad)
    rec = SimpleNamespace(law="chinchilla", why="back-test", warnings=("E reaches 0",),
                          to_dict=lambda: {"law": "chinchilla"})  # fmt: skip
    pred = {"n_params": 1e9, "n_tokens": 2e10, "flops": 1.2e20, "loss": np.float64(2.5),
            "interval": [math.nan, 2.6], "level": 0.95, "law": "chinchilla"}  # fmt: skip
    doc = predictions_json([{"group": None, "recommendation": rec, "predictions": [pred]}],
                           table=pd.DataFrame())  # fmt: skip
    text = json.dumps(doc, allow_nan=False)  # NaN would raise here
    assert json.loads(text)["predictions"][0]["interval"] == [None, 2.6]
    assert doc["warnings"] == ["E reaches 0"] and "groups" not in doc


def test_backtest_isoflop_takes_a_table():
    from analysis.laws.synthetic import isoflop_points
    from analysis.prediction.backtest import backtest_isoflop

    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), budgets=(1e13, 1e14, 1e15, 1e16))
    table = pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss, "flops": c})
    a, b = backtest_isoflop(n, d, loss, c), backtest_isoflop(table)
    assert a.rel_errors == pytest.approx(b.rel_errors) and b.held_out == "C = 1e+16"
    with pytest.raises(AnalysisError, match="one compute budget per run"):
        backtest_isoflop(n, d, loss, c[:3])


def test_folder_options_checked_before_writing(tmp_path, capsys):
    t = grid()
    sweep = write_sweep(tmp_path / "s", n_params=t["n_params"], n_tokens=t["n_tokens"],
                        loss=t["loss"])  # fmt: skip
    for extra, expect in ((["--n-convention", "weights"], "n_convention='weights'"),
                          (["--columns", "n_params=x"], "apply to tables"),
                          (["--holdout", "N>1e30"], "no point is held out")):  # fmt: skip
        assert main([str(sweep), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expect in err, err
        assert not (sweep / "report").exists()


@pytest.mark.slow
def test_cli_curve_table_fits_end_points_and_envelope(tmp_path, capsys):
    rows = []
    for n in (1e5, 3e5, 1e6, 3e6):
        for d_total in (1e7, 4e7, 1.6e8):
            for step in (1, 2, 4, 8):
                d = d_total * step / 8
                rows.append({"size": n, "seen": d, "iter": step, "name": f"{n:g}-{d_total:g}",
                             "val": float(law_loss(TRUE_PARAMS, n, d))})  # fmt: skip
    pd.DataFrame(rows).to_json(tmp_path / "curves.jsonl", orient="records", lines=True)
    cols = "n_params=size,n_tokens=seen,step=iter,run=name,loss=val"
    args = [str(tmp_path / "curves.jsonl"), "--columns", cols, "--n-bootstrap", "5"]
    assert main([*args, "--predict", "N=1e7,D=1e9", "--json"]) == 0
    cap = capsys.readouterr()
    assert "curves: 12 runs, 12 fitted" in cap.err
    pred = json.loads(cap.out)["predictions"][0]  # fitted to the 12 end points, not 48 rows
    assert pred["loss"] == pytest.approx(float(law_loss(TRUE_PARAMS, 1e7, 1e9)), rel=0.01)
    fits = json.loads((tmp_path / "curves_report" / "fits.json").read_text())
    assert fits["n_fitted"] == 12 and "envelope" in fits["fits"]
    assert fits["fits"]["chinchilla"]["params"]["alpha"] == pytest.approx(0.35, abs=0.03)


def test_a_table_with_seeds_measures_its_seed_noise(tmp_path, capsys):
    """Rows identical but for the seed column give the seed noise floor, as repeated records do;
    before, a table's runs carried no config and the report said 'not measured'."""
    rng = np.random.default_rng(0)
    rows = [
        {"params": n, "tokens": n * m, "seed": s,
         "val": (1.7 + 400 / n**0.34 + 410 / (n * m) ** 0.28) * (1 + 0.004 * rng.normal())}
        for n in (1e6, 2e6, 4e6, 8e6, 1.6e7) for m in (5, 20, 80) for s in (0, 1)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    rc = main([str(tmp_path / "t.csv"), "--columns", "n_params=params,n_tokens=tokens,loss=val",
               "--n-bootstrap", "20", "--out", str(tmp_path / "rep")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "seed noise floor: rel sd" in out and "not measured" not in out
    fits = json.loads((tmp_path / "rep" / "fits.json").read_text())
    assert len(fits["seed_noise"]["groups"]) == 15
    assert 0.001 < fits["seed_noise"]["rel_sd"] < 0.01


def test_a_table_warning_reaches_the_report_and_is_printed_once(tmp_path, capsys):
    """A loss column that looks like perplexity: the warning is in report.md and fits.json (it
    was only on stderr, and the report said 'loss in nats/token'), and the CLI prints it once."""
    t = grid()
    t["loss"] = np.exp(t["loss"])
    t.to_csv(tmp_path / "p.csv", index=False)
    rc = main([str(tmp_path / "p.csv"), "--n-bootstrap", "5", "--out", str(tmp_path / "rep")])
    cap = capsys.readouterr()
    assert rc == 0
    assert (cap.out + cap.err).count("looks like perplexity") == 1
    assert "looks like perplexity" in (tmp_path / "rep" / "report.md").read_text()
    fits = json.loads((tmp_path / "rep" / "fits.json").read_text())
    assert any("looks like perplexity" in d for d in fits["diagnostics"])


def test_an_unwritable_report_folder_is_refused_before_any_fit(tmp_path, capsys, monkeypatch):
    import analysis.command as command

    grid().to_csv(tmp_path / "r.csv", index=False)
    (tmp_path / "ro").mkdir()
    real = command.os.access
    monkeypatch.setattr(command.os, "access", lambda p, m: Path(p).name != "ro" and real(p, m))
    fits = []
    monkeypatch.setattr("analysis.report.build.build_report", lambda *a, **k: fits.append(1))
    rc = main([str(tmp_path / "r.csv"), "--out", str(tmp_path / "ro" / "rep")])
    err = capsys.readouterr().err
    assert rc == 2 and not fits
    assert err.count("\n") == 1 and "cannot write in" in err and "--out" in err
    assert list((tmp_path / "ro").iterdir()) == []


def test_a_write_that_fails_midway_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    def fail(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "rep" / "runs.csv"))

    grid().to_csv(tmp_path / "r.csv", index=False)
    monkeypatch.setattr("analysis.report.build.build_report", fail)
    rc = main([str(tmp_path / "r.csv"), "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert err.count("\n") == 1 and "runs.csv: Permission denied" in err


def test_negative_numbers_reach_their_option_but_not_past_a_double_dash():
    from analysis.command import _attach_negative_numbers, build_parser

    parser = build_parser()
    attach = _attach_negative_numbers
    assert attach(parser, ["r.csv", "--target-flops", "-1e13"]) == ["r.csv", "--target-flops=-1e13"]
    assert attach(parser, ["r.csv", "--json", "-5"]) == ["r.csv", "--json", "-5"]  # a flag
    assert attach(parser, ["--", "--out", "-1e5"]) == ["--", "--out", "-1e5"]  # paths after --
