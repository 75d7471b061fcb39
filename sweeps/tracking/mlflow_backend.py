"""MLflow: experiment = the sweep name, one MLflow run per project run id (tag `run_id`), in a
SQLite store beside the sweep's runs unless the user set another (`settings.mlflow_uri`).

Resume: the run with the same `run_id` tag is reopened, and a metric point is logged only at a
step after the last one the store holds for that metric, so an interrupted attempt's points after
the checkpoint are not logged twice (on the CPU they equal the resumed run's: the batch at step s
depends only on the seed and s). A fresh start (step 0) retires (soft-deletes) an older attempt's
run, so the store holds exactly one active run per run id. Opening is serialised by a file lock
(<sweep>/.mlflow.lock) so parallel jobs never race to create the database or the same run.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sweeps.tracking.fanout import RunInfo
from sweeps.tracking.settings import TrackerConfig, mlflow_uri, tracker_dir

__all__ = ["MlflowBackend", "find_runs"]

STATUS = {"ok": "FINISHED", "diverged": "FINISHED", "failed": "FAILED"}  # else KILLED
BATCH = 100  # MLflow takes at most 100 params or tags per request


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def find_runs(client: Any, experiment_id: str, run_id: str) -> list[Any]:
    """The active MLflow runs tagged with this project run id (one, after any resume)."""
    return list(client.search_runs([experiment_id], filter_string=f"tags.run_id = '{run_id}'"))


class MlflowBackend:
    def __init__(self, info: RunInfo, cfg: TrackerConfig) -> None:
        self.info = info
        self.uri = mlflow_uri(cfg, info.results_dir, info.sweep)
        self.sweep_dir = Path(info.results_dir) / info.sweep
        self.client: Any = None
        self.mlflow_run_id = ""
        self.logged: dict[str, int] = {}  # metric -> last step the store holds
        self.last_step = 0

    def start(self, *, resume_step: int) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        for name in ("alembic", "mlflow"):  # table migrations and store notices: not ours to show
            logging.getLogger(name).setLevel(logging.WARNING)

        with _locked(self.sweep_dir / ".mlflow.lock"):
            self.client = client = MlflowClient(tracking_uri=self.uri)
            exp = client.get_experiment_by_name(self.info.sweep)
            if exp is None:
                artifacts = tracker_dir(self.info.results_dir, self.info.sweep, "mlartifacts")
                exp_id = client.create_experiment(
                    self.info.sweep, artifact_location=artifacts.resolve().as_uri()
                )
            else:
                exp_id = exp.experiment_id
            runs = find_runs(client, exp_id, self.info.run_id)
            if resume_step > 0 and runs:
                run = runs[0]
                for stale in runs[1:]:
                    client.delete_run(stale.info.run_id)
                client.update_run(run.info.run_id, status="RUNNING")
                self.mlflow_run_id = run.info.run_id
                for key in run.data.metrics:
                    history = client.get_metric_history(self.mlflow_run_id, key)
                    self.logged[key] = max((m.step for m in history), default=-1)
                return
            for stale in runs:  # an older attempt that never reached a checkpoint
                client.delete_run(stale.info.run_id)
            tags = {**self.info.tags, "run_id": self.info.run_id, "sweep": self.info.sweep}
            run = client.create_run(exp_id, run_name=self.info.run_id, tags=tags)
            self.mlflow_run_id = run.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in sorted(self.info.params.items())]
        for i in range(0, len(params), BATCH):
            client.log_batch(self.mlflow_run_id, params=params[i : i + BATCH])

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        fresh = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if step > self.logged.get(k, -1)
        ]
        if fresh:
            self.client.log_batch(self.mlflow_run_id, metrics=fresh)
            for m in fresh:
                self.logged[m.key] = step
        self.last_step = step

    def summary(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics, tags = [], []
        for k, v in values.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                if math.isfinite(v):
                    metrics.append(Metric(f"summary/{k}", float(v), now, self.last_step))
            else:
                tags.append(RunTag(k, str(v)[:5000]))
        self.client.log_batch(self.mlflow_run_id, metrics=metrics, tags=tags[:BATCH])

    def flush(self) -> None:
        pass  # every write above is a committed SQLite transaction

    def images(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.mlflow_run_id, str(path), artifact_path="figures")

    def finish(self, status: str) -> None:
        if self.mlflow_run_id:
            self.client.set_terminated(self.mlflow_run_id, status=STATUS.get(status, "KILLED"))
