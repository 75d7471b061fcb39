"""Run ids of version 2 (sweeps/run/identity.py): folders named by version 1 are reported by
sweeps.status and sweeps.plan, left out of fits by analysis/, and never reused, retrained over nor
deleted. The version-1 folders are real ones, written by the code before the bump (fixtures)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import AnalysisWarning
from analysis.inputs.run_records import OLDER_ID_REASON, fit_runs, load_runs
from analysis.laws.synthetic import TRUE_PARAMS, grid_points, write_sweep
from sweeps import records
from sweeps.plan import main as plan_main
from sweeps.run import identity
from sweeps.run.runner import run_dir_for, run_one
from sweeps.status import main as status_main
from sweeps.sweep.status import sweep_status

V1_SWEEP = Path(__file__).resolve().parent / "fixtures" / "v1_sweep"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _with_v1_folders(sweep: Path) -> dict[str, bytes]:
    """The two version-1 folders (an ok run, a skipped one) copied into `sweep`; their bytes."""
    shutil.copytree(V1_SWEEP, sweep, dirs_exist_ok=True)
    return _snapshot(sweep)


def test_the_id_hashes_its_version(tiny_cfg, monkeypatch) -> None:
    cfg = tiny_cfg()
    assert identity.semantic_config(cfg)["id_version"] == records.RUN_ID_VERSION == 2
    before = identity.run_id_for(cfg)
    monkeypatch.setattr(identity, "RUN_ID_VERSION", 3)
    assert identity.run_id_for(cfg) != before


def test_status_counts_older_folders_and_says_so_once(tmp_path: Path, hand_record, capsys) -> None:
    sweep = tmp_path / "v1"
    old = _with_v1_folders(sweep)
    partial = sweep / "0123456789ab"  # an interrupted version-1 run: config.json without the field
    records.write_json_atomic(partial / records.CONFIG_FILE, {"seed": 0})
    records.append_curve(partial, {"step": 2, "n_tokens": 512, "loss": 4.0, "time_s": 1.0})
    hand_record(sweep / "fedcba987654")
    st = sweep_status(sweep)
    assert st["counts"]["older-id"] == 3 and st["counts"]["ok"] == 1
    assert st["counts"]["skipped"] == st["counts"]["partial"] == 0
    assert st["n_finished"] == 1 and st["eta_s"] is None
    assert {r["id_version"] for r in st["runs"] if r["state"] == "older-id"} == {1}
    assert status_main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert out.count("older run-id version") == 1
    assert "3 folder(s)" in out and "not reused" in out and "not fitted" in out
    assert "3 optimizer steps" not in out  # an older folder's own reason is not listed
    assert _snapshot(sweep).items() >= old.items()  # nothing of them changed


def test_plan_reports_older_folders_and_plans_their_runs_anew(
    tmp_path: Path, tiny_overrides, capsys
) -> None:
    # the version-1 ok folder is this very run (same settings) under its old id
    sweep = tmp_path / "results" / "v1"
    _with_v1_folders(sweep)
    args = [*tiny_overrides, "sweep_name=v1", "budget.tokens=2e4,1e3", "budget.min_steps=1"]
    assert plan_main(["--json", *args]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["older_id"]) == sorted(p.name for p in V1_SWEEP.iterdir())
    assert [r["state"] for r in out["runs"]] == ["new", "new"]  # not reused
    assert not {r["run_id"] for r in out["runs"]} & set(out["older_id"])
    assert plan_main(args) == 0
    text = capsys.readouterr().out
    assert text.count("older run-id version") == 1 and "warning: 2 folder(s)" in text


def test_a_rerun_trains_anew_and_leaves_the_older_folder_alone(tiny_cfg, tmp_path: Path) -> None:
    cfg = tiny_cfg(sweep_name="v1")  # the settings of the version-1 ok run
    sweep = Path(cfg.results_dir) / "v1"
    old = _with_v1_folders(sweep)
    rec = run_one(cfg)
    assert rec["id_version"] == 2 and run_dir_for(cfg).name not in old
    v1 = json.loads((V1_SWEEP / "72f1b20a321b" / records.RECORD_FILE).read_text())
    # the same run: the id bump changes no number. The fixture was trained on another CPU, whose
    # kernels round differently (AVX-512 vs AVX2: 3.1623018197715282 vs 3.16230184212327), so
    # the losses agree to float32's precision, not bit for bit; another seed or config moves the
    # loss by far more than 1e-5 relative
    assert rec["loss"] == pytest.approx(v1["loss"], rel=1e-5)
    assert _snapshot(sweep).items() >= old.items()


def test_analysis_leaves_older_records_out_of_fits_with_one_warning(tmp_path: Path) -> None:
    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=4, n_token_counts=4)
    sweep = write_sweep(tmp_path / "s", n_params=n, n_tokens=d, loss=loss, params=TRUE_PARAMS)
    older = sorted(records.iter_run_dirs(sweep))[:5]
    for run_dir in older:  # as the code before the bump wrote them: no id_version
        rec = json.loads((run_dir / records.RECORD_FILE).read_text())
        del rec["id_version"]
        records.write_json_atomic(run_dir / records.RECORD_FILE, rec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs, _ = load_runs(sweep)
    said = [str(w.message) for w in caught if issubclass(w.category, AnalysisWarning)]
    assert len(said) == 1 and said[0].startswith("5 record(s) from an older run-id version")
    out = runs[runs["run_id"].isin([p.name for p in older])]
    assert (~out["included"]).all() and (out["excluded_reason"] == OLDER_ID_REASON).all()
    assert len(fit_runs(runs)) == 16 - 5


def test_older_constant_lr_runs_give_no_isoflop_slices(tmp_path: Path) -> None:
    from analysis.laws.curve_slices import constant_lr_curves

    n, d = np.repeat([1e5, 1e6, 1e7], 2), np.tile([1e8, 4e8], 3)
    sweep = write_sweep(tmp_path / "c", n_params=n, n_tokens=d, loss=np.full(6, 3.0),
                        schedule="constant")  # fmt: skip
    older = sorted(records.iter_run_dirs(sweep))[:2]
    for run_dir in older:
        rec = json.loads((run_dir / records.RECORD_FILE).read_text())
        records.write_json_atomic(run_dir / records.RECORD_FILE, rec | {"id_version": 1})
    with pytest.warns(AnalysisWarning, match="2 record"):
        runs, curves = load_runs(sweep)
    used, _ = constant_lr_curves(runs, curves)
    assert used is not None
    assert set(used["run_id"]) == {p.name for p in records.iter_run_dirs(sweep)} - {
        p.name for p in older
    }


def test_analysis_of_only_older_records_says_why_nothing_is_fitted(tmp_path: Path) -> None:
    from analysis.errors import AnalysisError

    sweep = tmp_path / "v1"
    _with_v1_folders(sweep)
    with pytest.warns(AnalysisWarning, match="2 record"):
        runs, _ = load_runs(sweep)
    with pytest.raises(AnalysisError, match="older run-id version"):
        fit_runs(runs)


def test_plan_flags_done_runs_scored_on_other_data(tiny_cfg, tiny_overrides, capsys) -> None:
    """A done run whose record names another dataset id than its data settings give now (the
    corpus or the code's split changed): train -m skips it as done, and the analysis will not
    fit it with new runs, so sweeps.plan says so (before, it showed a plain "done")."""
    cfg = tiny_cfg(sweep_name="d")
    run_one(cfg)
    run_dir = run_dir_for(cfg)
    args = [*tiny_overrides, "sweep_name=d"]
    assert plan_main(["--json", *args]) == 0
    (same,) = json.loads(capsys.readouterr().out)["runs"]
    assert same["state"] == "done" and same["other_data"] is None
    rec = records.read_record(run_dir)
    records.write_json_atomic(run_dir / records.RECORD_FILE, rec | {"dataset_id": "synthetic-old"})
    assert plan_main(["--json", *args]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["state"] == "done" and run["other_data"] == "synthetic-old"
    assert plan_main(args) == 0
    text = capsys.readouterr().out
    assert "warning: 1 done run(s) were scored on other data (dataset synthetic-old)" in text
    assert run["run_id"] in text and "results_dir=results2" in text
