"""Any results table in (analysis/inputs/canonical_table.py): formats, column mapping, N
conventions, curves,
several lrs per point, a records folder as a table, held-out splits. The CLI on tables
(predictions as JSON, groups, the bad tables it refuses in one line):
tests/test_analysis_command_tables.py.

Tables are tiny synthetic grids from a known Chinchilla law with seeded log-normal noise
(tests/tables_data.py)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError, AnalysisWarning, TableError
from analysis.inputs.canonical_table import end_points, load_table, parse_columns
from analysis.inputs.holdout import parse_holdout
from analysis.laws.synthetic import TRUE_PARAMS, law_loss, write_sweep
from analysis.prediction.backtest import backtest_chinchilla, backtest_power_law
from tests.tables_data import FOREIGN, foreign, grid

# ---------------------------------------------------------------- reading and mapping


def test_csv_parquet_jsonl_and_dataframe_read_the_same(tmp_path):
    pytest.importorskip("pyarrow")
    t = foreign(grid())
    t.to_csv(tmp_path / "r.csv", index=False)
    t.to_parquet(tmp_path / "r.parquet")
    t.to_json(tmp_path / "r.jsonl", orient="records", lines=True)
    frames = [
        load_table(tmp_path / f"r.{ext}", columns=FOREIGN) for ext in ("csv", "parquet", "jsonl")
    ]
    frames.append(load_table(t, columns=parse_columns(FOREIGN)))
    for f in frames:
        assert list(f.columns) == ["n_params", "n_tokens", "loss", "flops"]
        np.testing.assert_allclose(f["loss"], frames[0]["loss"], rtol=1e-9)  # JSON: 10 digits
        np.testing.assert_allclose(f["flops"], 6 * f["n_params"] * f["n_tokens"])
    assert frames[0].attrs["n_convention"] == "as_given" and frames[0].attrs["kind"] == "table"
    assert frames[0].attrs["columns"]["loss"] == "val_loss"


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    grid().to_csv(tmp_path / "r.csv")
    (tmp_path / "r.parquet").write_bytes(b"PAR1 not really")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    with pytest.raises(TableError, match=r"needs pyarrow: pip install 'scaling-sweeps\[tables\]'"):
        load_table(tmp_path / "r.parquet")


def test_n_convention_recorded_and_selects_a_column(tmp_path):
    t = grid()
    t["n_params_non_embedding"] = t["n_params"] * 0.8
    out = load_table(t, n_convention="non_embedding")
    np.testing.assert_allclose(out["n_params"], t["n_params"] * 0.8)
    assert out.attrs["n_convention"] == "non_embedding"
    mapped = load_table(t, columns="n_params=n_params_non_embedding")  # the mapping wins
    np.testing.assert_allclose(mapped["n_params"], t["n_params"] * 0.8)
    with pytest.raises(TableError, match="--n-convention 'weights': choose one of as_given"):
        load_table(t, n_convention="weights")


def test_curve_table_end_points_and_tokens_along_the_curve():
    rows = []
    for n in (1e5, 3e5, 1e6, 3e6):
        for d_total in (1e7, 1e8):
            for step in (100, 200, 400):
                d = d_total * step / 400
                rows.append({"n_params": n, "n_tokens": d, "step": step, "run": f"{n}-{d_total}",
                             "loss": float(law_loss(TRUE_PARAMS, n, d))})  # fmt: skip
    curves = pd.DataFrame(rows)
    ends = load_table(curves)
    assert len(ends) == 8 and (ends["step"] == 400).all()
    assert set(ends["n_tokens"]) == {1e7, 1e8}
    every = load_table(curves, points="all")
    assert len(every) == 24
    assert len(end_points(every)) == 8
    # n_tokens given as each run's total: read as tokens seen = total * step / last step
    flat = curves.assign(n_tokens=curves["run"].str.split("-").str[1].astype(float))
    with pytest.warns(AnalysisWarning, match="constant along the steps"):
        got = load_table(flat, points="all")
    np.testing.assert_allclose(got["n_tokens"], curves["n_tokens"])


def test_several_lrs_per_point_keep_the_best_and_say_so():
    t = grid()
    worse = t.assign(loss=t["loss"] * 1.05, lr=3e-3)
    both = pd.concat([t.assign(lr=1e-3), worse], ignore_index=True)
    with pytest.warns(AnalysisWarning, match="keeps its best lr"):
        out = load_table(both)
    assert len(out) == len(t) and (out["lr"] == 1e-3).all()


def test_perplexity_like_loss_is_warned():
    t = grid()
    with pytest.warns(AnalysisWarning, match="looks like perplexity"):
        load_table(t.assign(loss=np.exp(t["loss"])))


def test_records_folder_as_a_table(tmp_path):
    t = grid()
    write_sweep(tmp_path / "s", n_params=t["n_params"], n_tokens=t["n_tokens"], loss=t["loss"])
    out = load_table(tmp_path / "s")
    assert len(out) == len(t) and out.attrs["kind"] == "records"
    assert out.attrs["n_convention"] == "matmul"


# ---------------------------------------------------------------- back-tests take tables


def test_backtest_takes_a_table_and_a_holdout_split():
    t = load_table(grid())
    old = backtest_chinchilla(t["n_params"], t["n_tokens"], t["loss"])
    new = backtest_chinchilla(t)
    assert old.rel_errors == pytest.approx(new.rel_errors) and new.held_out == "N = 1e+07"
    b = backtest_chinchilla(t, holdout="C>1e16")
    held = 6 * t["n_params"] * t["n_tokens"] > 1e16
    assert b.n_test == held.sum() and b.n_train == (~held).sum() and b.held_out == "C>1e16"
    assert b.max_abs_rel_error < 0.05  # the law is right: only noise and extrapolation
    m = backtest_chinchilla(t, holdout=(t["n_tokens"] >= 6.4e8).to_numpy())
    assert m.n_test == 5
    p = backtest_power_law(t[t["n_tokens"] == 6.4e8], variable="N", holdout="N>=1e7")
    assert p.n_test == 1 and p.n_train == 4


def test_mismatched_arrays_name_the_arguments():
    with pytest.raises(AnalysisError, match=r"n_params, n_tokens and loss have different "
                                            r"lengths \(3, 3, 2\)"):  # fmt: skip
        backtest_chinchilla([1, 2, 3], [1, 2, 3], [1, 2])
    with pytest.raises(AnalysisError, match="holdout mask has 2 values for 20 runs"):
        t = grid()
        backtest_chinchilla(t, holdout=[True, False])


@pytest.mark.parametrize(
    "text, match",
    [("C=>1e21", "write COLUMN OP NUMBER"), ("Q>1", "unknown column 'Q'"),
     ("C>inf", "not a finite number"), ("C>abc", "not a finite number")],
)  # fmt: skip
def test_holdout_parse_errors(text, match):
    with pytest.raises(AnalysisError, match=match):
        parse_holdout(text)


def test_a_table_of_n_c_and_loss_derives_d_and_says_so(tmp_path):
    """A published table with N, C and loss but no D was refused ('no column n_tokens')."""
    import warnings as _w

    n = np.repeat([1e7, 3e7, 1e8], 3)
    c = np.tile([1e17, 3e17, 1e18], 3)
    path = tmp_path / "nc.csv"
    pd.DataFrame({"params": n, "compute": c, "loss": 3.0 + 0.01 * np.arange(9)}).to_csv(
        path, index=False
    )
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        t = load_table(path, columns="n_params=params,flops=compute")
    assert np.allclose(t["n_tokens"], t["flops"] / (6 * t["n_params"]))
    said = [str(w.message) for w in caught if issubclass(w.category, AnalysisWarning)]
    assert any("D derived as C / (6 N)" in m and "'compute'" in m for m in said)
    assert any("D derived" in m for m in t.attrs["warnings"])  # kept for the report


def _two_lr_curves() -> pd.DataFrame:
    rows = []
    for lr, worse in ((1e-3, 1.0), (3e-3, 1.05)):
        for n in (1e5, 3e5, 1e6, 3e6):
            for d_total in (1e7, 1e8):
                for step in (100, 200, 400):
                    d = d_total * step / 400
                    rows.append({"n_params": n, "n_tokens": d, "step": step, "lr": lr,
                                 "run": f"{n}-{d_total}-{lr}",
                                 "loss": worse * float(law_loss(TRUE_PARAMS, n, d))})  # fmt: skip
    return pd.DataFrame(rows)


def test_curve_points_all_says_what_it_fits_and_warns_on_mid_run_points():
    """--curve-points all fitted every row yet said 'each point keeps its best lr', and nothing
    warned that mid-run points of a cosine run are not finished runs."""
    import warnings as _w

    curves = _two_lr_curves()
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        every = load_table(curves, points="all")
    said = " ".join(str(w.message) for w in caught)
    assert len(every) == 48 and "best lr" not in said
    assert "fits all 48 rows of 16 curves" in said and "not a finished run" in said
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        load_table(curves.assign(schedule="constant"), points="all")
    assert not any("not a finished run" in str(w.message) for w in caught)
    with pytest.warns(AnalysisWarning, match="keeps its best lr"):  # the end points: still true
        assert len(load_table(curves)) == 8


def test_approach_2_says_when_its_irreducible_loss_sits_at_a_bound():
    from analysis.laws.isoflop import fit_isoflop
    from analysis.laws.synthetic import isoflop_points

    params = dict(TRUE_PARAMS) | {"E": 1e-9}  # a law with no floor: L*(C) is a power law
    n, _, loss, c = isoflop_points(rng=np.random.default_rng(0), params=params, noise=0.0)
    fit = fit_isoflop(n, c / (6 * n), loss, c)
    assert any("sits at its bound" in w for w in fit.warnings), fit.warnings
    good = fit_isoflop(*isoflop_points(rng=np.random.default_rng(0), noise=0.0)[:3],
                       isoflop_points(rng=np.random.default_rng(0), noise=0.0)[3])  # fmt: skip
    assert not any("sits at its bound" in w for w in good.warnings), good.warnings
