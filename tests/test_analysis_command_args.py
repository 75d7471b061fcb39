"""`python -m analysis` arguments checked before anything is written (a bad --target-flops used to
fail after the figures, leaving half a report), and each warning about a run shown once."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.command import main
from analysis.laws.synthetic import isoflop_points, write_sweep


@pytest.fixture
def iso(tmp_path):
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), budgets=(1e13, 1e14, 1e15),
                                   n_per_budget=6)  # fmt: skip
    return write_sweep(tmp_path / "iso", n_params=n, n_tokens=d, loss=loss, flops_budget=c)


def _tree(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--target-flops", "-1"], "--target-flops"),
        (["--target-flops", "0"], "--target-flops"),
        (["--target-flops", "nan"], "--target-flops"),
        (["--target-flops", "inf"], "--target-flops"),
        (["--seed", "-1"], "--seed"),
        (["--n-bootstrap", "0"], "--n-bootstrap"),
        (["--out", "{file}"], "--out"),
        (["--compare"], "--out"),
    ],
    ids=["neg", "zero", "nan", "inf", "seed", "n_bootstrap", "out_is_a_file", "compare"],
)
def test_bad_argument_is_one_line_and_writes_nothing(iso, tmp_path, capsys, args, says):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    before = _tree(tmp_path)
    rc = main([str(iso), *[a.format(file=a_file) for a in args]])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and line.startswith("error: ") and says in line
    assert _tree(tmp_path) == before


def test_missing_folder_is_one_line(tmp_path, capsys):
    rc = main([str(tmp_path / "nope")])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and line.startswith("error: ") and "nope" in line
    assert not (tmp_path / "nope").exists()


def test_each_warning_once(iso, capsys):
    """The records are loaded once to list their archs and once for the report: the unreadable
    one used to be warned about twice."""
    (iso / "zzzz").mkdir()
    (iso / "zzzz" / "record.json").write_text('{"truncated')
    assert main([str(iso), "--n-bootstrap", "20"]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped:") == 1 and "zzzz" in err, err


def test_a_csv_and_a_parquet_of_one_stem_do_not_share_a_report_folder(tmp_path, capsys):
    """runs.csv and runs.parquet both reported into runs_report/, each over the other."""
    from analysis.inputs.sources import default_table_out
    from tests.tables_data import grid

    frame = grid()
    frame.to_csv(tmp_path / "runs.csv", index=False)
    frame.to_parquet(tmp_path / "runs.parquet", index=False)
    assert main([str(tmp_path / "runs.csv"), "--n-bootstrap", "5"]) == 0
    assert (tmp_path / "runs_report" / "report.md").exists()
    assert default_table_out(tmp_path / "runs.csv") == tmp_path / "runs_report"  # its own: again
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main([str(tmp_path / "runs.parquet"), "--n-bootstrap", "5"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "holds the report of runs.csv" in line and "--out" in line
    assert "runs_parquet_report" in line
    assert _tree(tmp_path) == before


def test_the_python_api_marks_a_tables_default_report_folder_too(tmp_path):
    from analysis import build_report
    from analysis.inputs.sources import TABLE_MARK
    from tests.tables_data import grid

    grid().to_csv(tmp_path / "runs.csv", index=False)
    build_report(str(tmp_path / "runs.csv"), n_bootstrap=5)
    assert (tmp_path / "runs_report" / TABLE_MARK).read_text().strip() == "runs.csv"
