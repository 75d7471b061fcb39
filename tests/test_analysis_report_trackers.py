"""Trackers outside a run, with the real libraries, offline: the analysis' summary run (laws and
figures into MLflow and TensorBoard, the latter without torch) and Optuna's dashboard serving the
tuning studies' storage. The runs' own trackers are tested in tests/test_tracking.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps.tracking import settings
from tests.processes import background, child_env

# ---- the analysis' summary run --------------------------------------------------------------


@pytest.fixture(scope="module")
def iso_report(tmp_path_factory):
    """One synthetic IsoFLOP sweep and its report (fits take a while: built once)."""
    import numpy as np

    from analysis.laws.synthetic import isoflop_points, write_sweep
    from analysis.report.build import build_report

    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), budgets=(1e13, 1e14, 1e15),
                                   n_per_budget=5)  # fmt: skip
    sweep = tmp_path_factory.mktemp("analysis") / "iso"
    write_sweep(sweep, n_params=n, n_tokens=d, loss=loss, flops_budget=c)
    return sweep, build_report(sweep, n_bootstrap=20, seed=0)


def test_analysis_logs_laws_and_figures_to_one_mlflow_summary_run(iso_report):
    from mlflow import MlflowClient

    from analysis.report.tracker_summary import log_report

    sweep, rep = iso_report
    for _ in range(2):  # a rerun replaces the summary run
        assert log_report(rep, sweep, tracker="mlflow") == (
            "mlflow: summary run 'analysis' of sweep 'iso'"
        )
    fits = json.loads((rep.out_dir / "fits.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{sweep / 'mlflow.db'}")
    exp = client.get_experiment_by_name("iso")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id], filter_string="tags.run_id = 'analysis'")
    metrics = run.data.metrics
    params = fits["fits"]["chinchilla"]["params"]
    assert metrics["summary/fits.chinchilla.params.alpha"] == pytest.approx(params["alpha"])
    lo, hi = fits["fits"]["chinchilla"]["intervals"]["alpha"]  # the estimate's interval
    assert metrics["summary/fits.chinchilla.intervals.alpha.lo"] == pytest.approx(lo)
    assert metrics["summary/fits.chinchilla.intervals.alpha.hi"] == pytest.approx(hi)
    assert any(k.startswith("summary/backtests.") for k in metrics)
    assert any(k.startswith("summary/prediction.") for k in metrics)
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert len(figures) == len(rep.figures) and all(p.endswith(".png") for p in figures)


def test_analysis_logs_to_tensorboard_without_torch(iso_report):
    sweep, rep = iso_report
    code = (
        "import sys; from pathlib import Path; from analysis.result_types import Report; "
        "from analysis.report.tracker_summary import log_report; "
        f"rep = Report(out_dir=Path({str(rep.out_dir)!r}), target_flops={rep.target_flops!r}, "
        f"figures={rep.figures!r}); print(log_report(rep, {str(sweep)!r}, tracker='tensorboard')); "
        "assert 'torch' not in sys.modules and 'hydra' not in sys.modules, 'imported'"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(sweep / "tensorboard" / "analysis"))
    acc.Reload()
    assert len(acc.Tags()["images"]) == len(rep.figures)


def test_analysis_tracker_missing_package_is_one_line(iso_report, tmp_path, capsys, monkeypatch):
    from analysis.__main__ import main

    sweep, _ = iso_report
    monkeypatch.setattr(settings.importlib.util, "find_spec", lambda name, *a: None)
    out = tmp_path / "never"
    assert main([str(sweep), "--tracker", "wandb", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install -e '.[wandb]'" in err
    assert not out.exists()  # refused before any fit


# ---- Optuna's dashboard on the tuning studies' storage --------------------------------------


@pytest.mark.slow
def test_optuna_dashboard_serves_the_tuning_studies(tiny_cfg):
    import dataclasses
    import shutil as sh
    import socket
    import urllib.request

    from sweeps.tuning.study import TuneConfig, TuneRunConfig, open_study

    if sh.which("optuna-dashboard") is None:
        pytest.skip("optuna-dashboard is not installed (pip install optuna-dashboard)")
    base = tiny_cfg()
    cfg = TuneRunConfig(
        **{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, tune=TuneConfig()
    )
    study = open_study(cfg)  # results/<sweep>/optuna.db, as sweeps.tune opens it
    study.enqueue_trial({"lr": 1e-3, "log2_batch_size": 3})
    trial = study.ask()
    study.tell(trial, 2.5)
    db = Path(cfg.results_dir) / cfg.sweep_name / "optuna.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = ["optuna-dashboard", f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port)]
    with background(cmd) as proc:  # its gunicorn workers go with it
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    body = json.load(r)
                break
            except OSError:
                assert proc.poll() is None, "optuna-dashboard exited"
                assert time.time() < deadline, "optuna-dashboard did not answer within 120 s"
                time.sleep(0.5)
    names = [s["study_name"] for s in body["study_summaries"]]
    assert names == [study.study_name]
