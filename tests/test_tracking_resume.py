"""Trackers around the ends of a run: a kill right after the record is written (a rerun skips the
run as done, so the trackers must hold its end by then), and bad tracker settings refused before
anything is written (a package that fails to import, a tracker folder that cannot be written)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sweeps import records
from sweeps.config import TrackerConfig
from sweeps.errors import UserError
from sweeps.run.runner import run_dir_for, run_one
from tests.test_tracking import _tb_scalars


class Killed(BaseException):
    """Stands in for a SIGKILL right after record.json is written (nothing catches it for good)."""


def _mlflow_run(cfg):
    """(client, the one MLflow run) of `cfg`'s sweep store (the default sqlite one)."""
    from mlflow import MlflowClient

    sweep_dir = Path(cfg.results_dir) / cfg.sweep_name
    client = MlflowClient(tracking_uri=f"sqlite:///{sweep_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(cfg.sweep_name)
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    return client, run


def test_a_kill_right_after_the_record_leaves_every_tracker_run_ended(
    tiny_cfg, monkeypatch, tmp_path
):

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_cfg(tracker=TrackerConfig(tensorboard=True, mlflow=True))
    write = records.write_record

    def write_then_die(run_dir, record):
        write(run_dir, record)
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(records, "write_record", write_then_die)
        with pytest.raises(Killed):
            run_one(cfg)
    record = run_one(cfg)  # done: skipped, no tracker opened
    assert record is not None and record["status"] == "ok"
    sweep_dir = Path(cfg.results_dir) / cfg.sweep_name
    scalars = _tb_scalars(sweep_dir / "tensorboard" / record["run_id"])
    assert scalars["summary/loss"][-1][1] == pytest.approx(record["loss"], rel=1e-6)
    assert [s for s, _ in scalars["val/loss"]] == [
        r["step"] for r in records.read_curve(run_dir_for(cfg))
    ]
    _, run = _mlflow_run(cfg)
    assert run.info.status == "FINISHED"  # not KILLED, not left RUNNING
    assert run.data.metrics["summary/loss"] == pytest.approx(record["loss"], rel=1e-9)
    assert run.data.metrics["val/loss"] == pytest.approx(record["loss"], rel=1e-9)


def test_a_tracker_package_that_fails_to_import_stops_the_run_before_anything_is_written(
    tiny_cfg, monkeypatch, tmp_path
):
    stub = tmp_path / "stub" / "wandb"  # installed, but `import wandb` fails (a broken dependency)
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('No module named pydantic_core')\n")
    monkeypatch.syspath_prepend(str(stub.parent))
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    cfg = tiny_cfg(tracker=TrackerConfig(wandb=True))
    with pytest.raises(UserError) as e:
        run_one(cfg)
    line = e.value.line()
    assert "\n" not in line and line.startswith("tracker.wandb: the wandb package fails to import")
    assert "pydantic_core" in line and "pip install -e '.[wandb]'" in line
    assert not Path(cfg.results_dir).exists()


@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_a_tracker_folder_that_cannot_be_written_stops_the_run_before_it_trains(tiny_cfg, name):
    cfg = tiny_cfg(tracker=TrackerConfig(**{name: True}))
    blocker = Path(cfg.results_dir) / cfg.sweep_name / name
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")  # root ignores permissions; a file in the way does not
    with pytest.raises(UserError) as e:
        run_one(cfg)
    line = e.value.line()
    assert "\n" not in line and line.startswith(f"tracker.{name}: cannot write the {name} folder")
    assert str(blocker) in line and f"drop tracker={name}" in line
    assert sorted(p.name for p in blocker.parent.iterdir()) == [name]  # no run folder


def test_an_mlflow_store_in_a_missing_folder_names_the_uri(tiny_cfg, tmp_path):
    store = tmp_path / "blocked" / "sub" / "m.db"
    (tmp_path / "blocked").write_text("a file where the store's folder would be")
    cfg = tiny_cfg(tracker=TrackerConfig(mlflow=True, mlflow_uri=f"sqlite:///{store}"))
    with pytest.raises(UserError) as e:
        run_one(cfg)
    assert e.value.line().startswith("tracker.mlflow_uri: cannot write the mlflow folder")
    assert not Path(cfg.results_dir).exists()


def test_an_mlflow_store_in_a_folder_not_made_yet_is_made(tiny_cfg, tmp_path, capfd):
    """Preflight passed it (the folder can be made), then MLflow's load failed mid-run with a
    FileNotFoundError warning and the run had no MLflow run."""
    from mlflow import MlflowClient

    store = tmp_path / "new" / "sub" / "m.db"
    cfg = tiny_cfg(tracker=TrackerConfig(mlflow=True, mlflow_uri=f"sqlite:///{store}"))
    record = run_one(cfg)
    assert record is not None and record["status"] == "ok"
    assert "warning" not in capfd.readouterr().err
    exp = MlflowClient(tracking_uri=f"sqlite:///{store}").get_experiment_by_name(cfg.sweep_name)
    assert exp is not None


def test_a_kill_between_the_trackers_end_and_the_record_logs_no_summary_point_twice(
    tiny_cfg, monkeypatch
):

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_cfg(
        checkpoint_every_s=0.0, tracker=TrackerConfig(tensorboard=True, mlflow=True, log_every=5)
    )
    with monkeypatch.context() as m:  # the trackers ended, then the kill: no record
        m.setattr(records, "write_record", lambda run_dir, record: (_ for _ in ()).throw(Killed))
        with pytest.raises(Killed):
            run_one(cfg)
    record = run_one(cfg)  # resumes from the checkpoint one step before the end, ends again
    assert record is not None and record["status"] == "ok"
    sweep_dir = Path(cfg.results_dir) / cfg.sweep_name
    client, run = _mlflow_run(cfg)
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == sorted(set(steps)), f"{key}: a step logged twice {steps}"
    assert run.data.metrics["summary/loss"] == pytest.approx(record["loss"], rel=1e-9)
    scalars = _tb_scalars(sweep_dir / "tensorboard" / record["run_id"])
    assert [s for s, _ in scalars["summary/loss"]] == [record["n_steps"]]


def test_a_kill_right_after_a_failed_record_leaves_the_tracker_run_failed(tiny_cfg, monkeypatch):
    """A run that crashes mid-training with its retries spent: the rerun does not retry it, so
    the trackers must hold its end before the failed record is written (MLflow was left
    RUNNING when the record came first and a kill fell between the two)."""

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_cfg(max_retries=0, tracker=TrackerConfig(mlflow=True, log_every=5))
    write = records.write_record

    def write_then_die(run_dir, record):
        write(run_dir, record)
        raise Killed

    def crash(percent, loss):
        raise RuntimeError("a crash mid-run")

    with monkeypatch.context() as m:
        m.setattr(records, "write_record", write_then_die)
        with pytest.raises(Killed):
            run_one(cfg, in_sweep=True, on_eval=crash)
    record = run_one(cfg, in_sweep=True)  # failed, retries spent: not retried, no tracker
    assert record is not None and record["status"] == "failed"
    _, run = _mlflow_run(cfg)
    assert run.info.status == "FAILED"  # not left RUNNING


def test_tracker_folders_deleted_mid_run_give_one_warning_each_and_no_traceback(
    tiny_cfg, monkeypatch, capsys
):
    import logging
    import shutil
    import threading

    from sweeps.run import loop

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_cfg(
        n_evals=4, checkpoint_every_s=0.0, tracker=TrackerConfig(tensorboard=True, mlflow=True)
    )
    sweep_dir = Path(cfg.results_dir) / cfg.sweep_name
    save = loop._save_checkpoint

    def save_then_delete(path, state):
        save(path, state)
        if state["step"] == 30:
            shutil.rmtree(sweep_dir / "tensorboard")
            (sweep_dir / "mlflow.db").unlink()
            (sweep_dir / "mlflow.db").mkdir()  # the store's path now unusable

    thread_errors: list[object] = []
    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("mlflow").addHandler(handler)
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    monkeypatch.setattr(loop, "_save_checkpoint", save_then_delete)
    try:
        record = run_one(cfg)
    finally:
        logging.getLogger("mlflow").removeHandler(handler)
    assert record is not None and record["status"] == "ok"
    assert records.read_record(run_dir_for(cfg))["loss"] == record["loss"]
    err = capsys.readouterr().err
    assert err.count("warning: tracker tensorboard:") == 1
    assert err.count("warning: tracker mlflow:") == 1
    assert "Traceback" not in err and not thread_errors  # TensorBoard's own writer thread
    assert [r.getMessage()[:80] for r in logged] == []  # MLflow's error log with its traceback


def test_a_tracker_warning_names_the_cause_not_sqlalchemys_note(capsys):
    """MLflow's store failing mid-run was shown as '(raised as a result of Query-invoked
    autoflush; ...)': SQLAlchemy's note, whose next line holds the cause."""
    from sweeps.tracking.fanout import Tracking

    error = RuntimeError(
        "(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush "
        "block if this flush is occurring prematurely)\n"
        "(sqlite3.OperationalError) attempt to write a readonly database\n"
        "[SQL: INSERT INTO metrics ...]"
    )
    tracking = Tracking({}, label="abc")
    tracking.warn("mlflow", "log", error)
    tracking.warn("mlflow", "log", error)  # once per tracker
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "attempt to write a readonly database" in err and "autoflush" not in err


def test_a_trackers_import_overlaps_the_data_loading(tiny_cfg, monkeypatch, tmp_path):
    """The import check ran in line before the data was loaded: MLflow's ~2.4 s import, once
    overlapped with the run's set-up on the tracking thread, preceded it."""
    import builtins
    import threading

    from sweeps.run import preflight

    stub = tmp_path / "stub" / "wandb"  # an import that ends only when the test lets it
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        "import builtins\nassert builtins._gate.wait(10)\ndone = True\n"
    )
    monkeypatch.syspath_prepend(str(stub.parent))
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    # an import an earlier test began and never waited for (its run was refused) is not this one
    monkeypatch.setattr(preflight, "_IMPORTS", {})
    monkeypatch.setattr(builtins, "_gate", threading.Event(), raising=False)
    cfg = tiny_cfg(tracker=TrackerConfig(wandb=True))
    preflight.check_trackers(cfg)  # returns while the import waits
    assert not getattr(sys.modules.get("wandb"), "done", False)  # under way, not done
    builtins._gate.set()  # type: ignore[attr-defined]
    preflight.check_tracker_imports(cfg)  # waits for it, and it imported
    assert sys.modules["wandb"].done and sys.modules["wandb"].__file__ == str(stub / "__init__.py")
    monkeypatch.delitem(sys.modules, "wandb")  # not the real one: later tests import it again
