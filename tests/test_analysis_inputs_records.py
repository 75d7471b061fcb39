"""Loading records and the bad inputs every fit must refuse or warn about, with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.errors import AnalysisError, AnalysisWarning
from analysis.inputs.run_records import excluded_counts, fit_runs, load_runs
from analysis.laws.chinchilla import fit_chinchilla
from analysis.laws.synthetic import grid_points, write_sweep


@pytest.fixture
def sweep(tmp_path):
    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=4, n_token_counts=4)
    return write_sweep(tmp_path / "grid", n_params=n, n_tokens=d, loss=loss)


def test_load_runs_columns_and_curves(sweep):
    runs, curves = load_runs(sweep)
    assert len(runs) == 16 and runs["included"].all()
    for col in ("run_id", "sweep", "status", "arch", "n_params", "n_params_total",
                "n_params_embedding", "n_params_non_embedding", "n_params_matmul", "n_tokens",
                "flops", "flops_exact", "flops_budget", "loss", "perplexity", "bits_per_byte",
                "seed", "dataset_id", "parent_run_id", "lr", "batch_size", "n_steps",
                "config.model.n_params"):  # fmt: skip
        assert col in runs, col
    assert len(curves) == 16 * 8
    assert set(curves["run_id"]) == set(runs["run_id"])


def test_folder_of_sweeps(sweep, tmp_path):
    runs, _ = load_runs(tmp_path)
    assert len(runs) == 16


def test_missing_folder_and_no_records(tmp_path):
    with pytest.raises(AnalysisError, match="no such folder"):
        load_runs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisError, match="no usable run record"):
        load_runs(tmp_path / "empty")


def test_unfinished_and_unreadable_runs_are_named_not_passed_over(tmp_path, hand_record):
    """A run folder without a record was passed over in silence ('1 runs, 1 fitted'), and a
    folder whose records were all unreadable said 'no run records found'."""
    for name, n in (("aaa", 1000), ("bbb", 2000)):
        hand_record(tmp_path / "s" / name, n_params=n, config={"model": {"n_params": float(n)}})
    (tmp_path / "s" / "ccc").mkdir()
    (tmp_path / "s" / "ccc" / "curve.jsonl").write_text("")
    with pytest.warns(AnalysisWarning, match="1 run folder.s. without a record.*: ccc"):
        runs, _ = load_runs(tmp_path / "s")
    assert sorted(runs["run_id"]) == ["aaa", "bbb"]
    for name in ("aaa", "bbb"):
        (tmp_path / "s" / name / "record.json").write_text("{")
    with (
        pytest.warns(AnalysisWarning),
        pytest.raises(
            AnalysisError, match="2 record.s. could not be used.*1 run.s. not finished yet"
        ),
    ):
        load_runs(tmp_path / "s")


def test_malformed_and_foreign_records_are_skipped_with_warning(sweep):
    bad = sweep / "broken"
    bad.mkdir()
    (bad / "record.json").write_text("{not json", encoding="utf-8")
    foreign = sweep / "foreign"
    foreign.mkdir()
    (foreign / "record.json").write_text(json.dumps({"hello": 1}), encoding="utf-8")
    with pytest.warns(AnalysisWarning) as rec:
        runs, _ = load_runs(sweep)
    messages = " ".join(str(w.message) for w in rec)
    assert "broken" in messages and "not valid JSON" in messages
    assert "foreign" in messages and "no schema_version" in messages
    assert len(runs) == 16 and excluded_counts(runs)["unreadable record"] == 2


def test_wrong_schema_version_is_an_error(sweep):
    path = next(sweep.iterdir()) / "record.json"
    record = json.loads(path.read_text())
    record["schema_version"] = 99
    path.write_text(json.dumps(record))
    with pytest.raises(AnalysisError, match=r"record\.json: schema_version 99.*version 1"):
        load_runs(sweep)


def test_diverged_failed_and_nan_runs_excluded_and_counted(tmp_path):
    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=4, n_token_counts=4)
    loss[0] = np.nan  # a diverged loss stored as null
    loss[1] = -1.0
    status = ["diverged"] + ["ok"] * 14 + ["failed"]
    write_sweep(tmp_path / "s", n_params=n, n_tokens=d, loss=loss, status=status)
    with pytest.warns(AnalysisWarning, match="non-finite or non-positive"):
        runs, _ = load_runs(tmp_path / "s")
    counts = excluded_counts(runs)
    assert counts == {"diverged": 1, "failed": 1, "non-finite or non-positive loss": 1}
    assert len(fit_runs(runs)) == 13


def test_duplicated_runs_warned_and_dropped(sweep, tmp_path):
    import shutil

    first = next(sweep.iterdir())
    shutil.copytree(first, sweep / "copy_of_run")
    with pytest.warns(AnalysisWarning, match="duplicated run"):
        runs, _ = load_runs(sweep)
    assert excluded_counts(runs) == {"duplicate": 1}
    assert len(fit_runs(runs)) == 16


def test_two_datasets_refused(tmp_path):
    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=3, n_token_counts=3)
    write_sweep(tmp_path / "a", n_params=n, n_tokens=d, loss=loss, dataset_id="bytes-v1")
    write_sweep(tmp_path / "b", n_params=n, n_tokens=d, loss=loss, dataset_id="bpe-v2", seed=1)
    runs, _ = load_runs(tmp_path)
    with pytest.raises(AnalysisError, match="2 datasets mixed.*bpe-v2, bytes-v1.*dataset_id="):
        fit_runs(runs)
    runs, _ = load_runs(tmp_path, dataset_id="bpe-v2")
    assert len(fit_runs(runs)) == 9


def test_fit_input_errors():
    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=4, n_token_counts=4)
    with pytest.raises(AnalysisError, match="only one value of N"):
        fit_chinchilla(np.full(16, 1e5), d, loss)
    with pytest.raises(AnalysisError, match="5 point.*5 free parameters"):
        fit_chinchilla(n[:5], d[:5], loss[:5])
    for bad in (np.nan, np.inf, 0.0):
        broken = loss.copy()
        broken[3] = bad
        with pytest.raises(AnalysisError, match="NaN, inf or <= 0"):
            fit_chinchilla(n, d, broken)
    with pytest.raises(AnalysisError, match="no points"):
        fit_chinchilla([], [], [])


@pytest.mark.slow
def test_cli_writes_report(tmp_path, capsys):
    from analysis.__main__ import main
    from analysis.laws.synthetic import isoflop_points

    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), budgets=(1e13, 1e14, 1e15, 1e16))
    sweep = write_sweep(tmp_path / "iso", n_params=n, n_tokens=d, loss=loss, flops_budget=c)
    assert main([str(sweep), "--n-bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "approach 3, L = " in out and "approach 2 (IsoFLOP): a" in out and "back-test" in out
    report = sweep / "report"
    assert {"report.md", "fits.json", "runs.csv"} <= {p.name for p in report.iterdir()}
    fits = json.loads((report / "fits.json").read_text())
    assert fits["target_flops"] == pytest.approx(1e17)
    assert "matmul" in fits["convention"] and "chinchilla" in fits["backtests"]
    assert fits["prediction"]["flops"] == pytest.approx(1e17)
    assert (report / "figures" / "isoflop.svg").exists()


def test_cli_user_error_exits_2_without_traceback(tmp_path, capsys):
    from analysis.__main__ import main

    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such folder" in err and "Traceback" not in err


@pytest.mark.slow
def test_report_skips_isoflop_without_budgets(sweep):
    from analysis.report.build import build_report

    rep = build_report(sweep, n_bootstrap=20, figures=False)
    assert "isoflop" in rep.skipped and "chinchilla" in rep.fits


def test_report_fits_kaplan_laws_on_their_own_points_of_a_grid(tmp_path):
    from analysis.report.build import build_report

    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=6, n_token_counts=4)
    rep = build_report(write_sweep(tmp_path / "g", n_params=n, n_tokens=d, loss=loss),
                       n_bootstrap=20, figures=False)  # fmt: skip
    for law in ("kaplan_N", "kaplan_D", "kaplan_C", "kaplan_joint"):
        assert law in rep.fits, rep.skipped.get(law)
    assert rep.fits["kaplan_N"].n_points == 6 and rep.fits["kaplan_D"].n_points == 4
    assert rep.backtests["kaplan_N"].n_train == 5


def test_import_analysis_is_cheap_and_torch_free():
    import subprocess
    import sys

    code = (
        "import sys, analysis; bad = [m for m in ('torch', 'hydra', 'matplotlib', 'scipy') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runs_are_read_in_the_order_of_what_they_are_not_of_their_folder_names(tmp_path):
    """The same runs under other run ids (another id scheme, another listing order) give the same
    rows in the same order, so the same bootstrap resamples and intervals; before, rows followed
    the folder names."""
    from analysis.prediction.recommend import recommend

    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=5, n_token_counts=4)
    order = np.argsort(-n * d)  # the same points written in another order: other run ids
    a = write_sweep(tmp_path / "a", n_params=n, n_tokens=d, loss=loss)
    b = write_sweep(tmp_path / "b", n_params=n[order], n_tokens=d[order], loss=loss[order])
    fa, fb = fit_runs(load_runs(a)[0]), fit_runs(load_runs(b)[0])
    assert list(fa["run_id"]) != list(fb["run_id"])
    assert np.array_equal(fa[["N", "D", "L"]].to_numpy(), fb[["N", "D", "L"]].to_numpy())
    cols = {"N": "n_params", "D": "n_tokens", "L": "loss"}
    ia = recommend(fa[list(cols)].rename(columns=cols))
    ib = recommend(fb[list(cols)].rename(columns=cols))
    assert ia.predict(1e9, 2e10).interval == ib.predict(1e9, 2e10).interval
