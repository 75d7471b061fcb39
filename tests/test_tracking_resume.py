"""Trackers around the ends of a run: a kill right after the record is written (a rerun skips the
run as done, so the trackers must hold its end by then), and bad tracker settings refused before
anything is written (a package that fails to import, a tracker folder that cannot be written)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps import records
from sweeps.config import TrackerConfig
from sweeps.run.runner import run_dir_for, run_one
from tests.test_tracking import _tb_scalars


class Killed(BaseException):
    """Stands in for a SIGKILL right after record.json is written (nothing catches it for good)."""


def test_a_kill_right_after_the_record_leaves_every_tracker_run_ended(
    tiny_cfg, monkeypatch, tmp_path
):
    from mlflow import MlflowClient

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
    client = MlflowClient(tracking_uri=f"sqlite:///{sweep_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(cfg.sweep_name)
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"  # not KILLED, not left RUNNING
    assert run.data.metrics["summary/loss"] == pytest.approx(record["loss"], rel=1e-9)
    assert run.data.metrics["val/loss"] == pytest.approx(record["loss"], rel=1e-9)
