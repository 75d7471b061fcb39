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
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sweeps.tracking.fanout import RunInfo
from sweeps.tracking.settings import TrackerConfig, mlflow_template, mlflow_uri, tracker_dir

__all__ = ["MlflowBackend", "find_runs"]

STATUS = {"ok": "FINISHED", "diverged": "FINISHED", "failed": "FAILED"}  # else KILLED
BATCH = 100  # MLflow takes at most 100 params or tags per request
METRIC_BATCH = 1000  # and at most 1000 metrics
SQLITE = "sqlite:///"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _seed_store(uri: str) -> None:
    """A SQLite store that does not exist yet starts as a copy of an empty, migrated one (made
    here by MLflow itself the first time, under a lock); MLflow checks its schema on opening.
    Without a writable cache folder MLflow creates the store itself, as it would anyway."""
    if not uri.startswith(SQLITE) or Path(uri[len(SQLITE) :]).exists():
        return
    target = Path(uri[len(SQLITE) :])
    # a tracker.mlflow_uri in a folder not made yet (preflight found it can be): neither the copy
    # nor MLflow's own SQLite makes it, and the run went on without MLflow
    target.parent.mkdir(parents=True, exist_ok=True)
    import mlflow
    from mlflow import MlflowClient

    try:
        template = mlflow_template(mlflow.__version__)
    except OSError:
        return
    with _locked(template.with_suffix(".lock")):
        if not template.exists():
            fd, tmp = tempfile.mkstemp(dir=template.parent, suffix=".db.tmp")
            os.close(fd)
            os.unlink(tmp)  # MLflow creates its tables only in a database it finds empty
            try:
                MlflowClient(tracking_uri=SQLITE + tmp).search_experiments()
                os.replace(tmp, template)
            finally:
                Path(tmp).unlink(missing_ok=True)
    part = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(template, part)
    os.replace(part, target)  # under the sweep's lock: no job opens it half-copied


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
        self.logged: dict[str, int] = {}  # metric -> last step the store holds or will hold
        self.pending: list[Any] = []  # metric points not yet written (one log_batch per flush)
        self.last_step = 0

    def load(self) -> None:
        """Import MLflow and open the store (a new one seeded from the template)."""
        from mlflow import MlflowClient

        for name in ("alembic", "mlflow"):  # table migrations and store notices: not ours to show
            logging.getLogger(name).setLevel(logging.WARNING)
        # it logs each failed store call with its traceback, then raises: the raise is what
        # `Tracking` reports, once per run (a store deleted mid-run printed ~1,600 lines)
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        with _locked(self.sweep_dir / ".mlflow.lock"):
            _seed_store(self.uri)
            self.client = MlflowClient(tracking_uri=self.uri)
            self.client.get_experiment_by_name(self.info.sweep)  # opens the store here

    def start(self, *, resume_step: int) -> None:
        from mlflow.entities import Param

        if self.client is None:
            self.load()
        client = self.client
        with _locked(self.sweep_dir / ".mlflow.lock"):
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
        self.pending.extend(fresh)
        for m in fresh:
            self.logged[m.key] = step
        self.last_step = step

    def _write(self, tags: list[Any] | None = None) -> None:
        """The pending points (and `tags`) in as few `log_batch` transactions as MLflow takes."""
        points, self.pending = self.pending, []
        for i in range(0, max(len(points), 1), METRIC_BATCH):
            chunk = points[i : i + METRIC_BATCH]
            if chunk or tags:
                self.client.log_batch(self.mlflow_run_id, metrics=chunk, tags=tags or [])
            tags = None

    def summary(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        metrics, tags = {}, []
        for k, v in values.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                if math.isfinite(v):
                    metrics[f"summary/{k}"] = float(v)
            else:
                tags.append(RunTag(k, str(v)[:5000]))
        # as any point: not again at a step the store holds (an attempt killed after its end
        # but before its record logged the summary already; a rerun resumes and ends again)
        self.log(self.last_step, metrics)
        self._write(tags[:BATCH])

    def flush(self) -> None:
        self._write()  # one committed SQLite transaction

    def images(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.mlflow_run_id, str(path), artifact_path="figures")

    def finish(self, status: str) -> None:
        if self.mlflow_run_id:
            self._write()
            self.client.set_terminated(self.mlflow_run_id, status=STATUS.get(status, "KILLED"))
