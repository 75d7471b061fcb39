"""`Tracking`: the one object the runner and the trainer call, fanning out to the chosen backends.

Every call to a backend goes through `Tracking._call`, which runs it on one worker thread per run:
an exception there becomes one warning per backend per run (on stderr, naming the tracker and the
error) and the run goes on; the record is written exactly as without trackers. A backend is a
class with these methods:

    start(*, resume_step)      open (or continue) the run's tracker run; steps > resume_step
                               logged by an interrupted attempt are dropped or overwritten
    log(step, metrics)         scalars against the optimizer step
    summary(values)            the record's summary at the end (and tags)
    flush()                    make what was logged so far durable (called before checkpoints)
    finish(status)             close it: "ok", "diverged", "failed", "pruned" or "interrupted"

    images(paths)              figures (PNG), for the analysis' summary run
"""

from __future__ import annotations

import importlib
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sweeps.tracking.settings import TrackerConfig

__all__ = [
    "Backend",
    "RunInfo",
    "Tracking",
    "open_tracking",
    "flatten",
    "FACTORIES",
    "SUMMARY_FIELDS",
]

# the record's fields a tracker run gets as its summary when the run ends
SUMMARY_FIELDS = (
    "status",
    "reason",
    "loss",
    "loss_se",
    "perplexity",
    "bits_per_byte",
    "train_loss",
    "n_params",
    "n_params_total",
    "n_params_embedding",
    "n_params_non_embedding",
    "n_params_matmul",
    "n_tokens",
    "flops",
    "flops_exact",
    "flops_marginal",
    "n_steps",
    "time_s",
    "tokens_per_s",
)


@dataclass(frozen=True)
class RunInfo:
    """What names a tracker run and what it is tagged with."""

    run_id: str  # the project's run id (or "analysis" for a sweep's summary run)
    sweep: str
    results_dir: str
    params: dict[str, Any]  # flat hyper-parameters (the resolved config)
    tags: dict[str, str] = field(default_factory=dict)  # sweep, run_id, arch, corpus, parent, ...


class Backend(Protocol):
    def load(self) -> None: ...
    def start(self, *, resume_step: int) -> None: ...
    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...
    def summary(self, values: Mapping[str, Any]) -> None: ...
    def images(self, paths: Iterable[Path]) -> None: ...
    def flush(self) -> None: ...
    def finish(self, status: str) -> None: ...


# name -> "module:Class"; imported on use (each tracker library is an optional extra)
FACTORIES: dict[str, str] = {
    "tensorboard": "sweeps.tracking.tb_backend:TensorBoardBackend",
    "wandb": "sweeps.tracking.wandb_backend:WandbBackend",
    "mlflow": "sweeps.tracking.mlflow_backend:MlflowBackend",
}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b.c": leaf}; lists become strings (trackers take scalars)."""
    out: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    key = prefix[:-1]
    out[key] = str(obj) if isinstance(obj, list | tuple) else obj
    return out


# All of a run's waits for its trackers together (its flushes before checkpoints, its finish): an
# unreachable MLflow server made each of a run's seven flushes wait 300 s (a 7 s run took 37 min)
WAIT_BUDGET_S = 15.0


class Tracking:
    """The chosen backends of one run, called from one worker thread: the training loop only
    queues a call (microseconds), so a tracker's latency (a SQLite commit, an event flush, W&B's
    start-up) overlaps training, and a tracker's error never reaches the caller."""

    def __init__(
        self, backends: dict[str, Backend], *, label: str, wait_s: float = WAIT_BUDGET_S
    ) -> None:
        self.backends = backends
        self.label = label
        self.wait_s = wait_s  # the most a run waits for its trackers, all flushes and finish
        self.waited_s = 0.0  # how long it has waited so far (left out of the run's time)
        self.dropped = False  # past the budget: the run goes on without its trackers
        self.warned: set[str] = set()
        self.calls: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.worker: threading.Thread | None = None
        self.finished = False

    def warn(self, name: str, method: str, error: Exception) -> None:
        """One warning per tracker per run; later errors of that tracker stay quiet."""
        if name in self.warned:
            return
        self.warned.add(name)
        lines = [ln for ln in str(error).splitlines() if ln.strip()]
        # SQLAlchemy (MLflow's store) puts a note on how the query ran before the cause
        cause = [ln for ln in lines if not ln.startswith("(raised as a result of")]
        first = (cause or lines or [""])[0][:300]
        print(
            f"[{self.label}] warning: tracker {name}: {method} failed "
            f"({type(error).__name__}: {first}); the run goes on, the record is unaffected "
            "(further errors of this tracker in this run are not shown)",
            file=sys.stderr,
            flush=True,
        )

    def _work(self) -> None:
        while (call := self.calls.get()) is not None:
            call()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.dropped:  # a tracker that cannot keep up costs the run nothing more
            return

        def run() -> None:
            for name, backend in self.backends.items():
                try:
                    getattr(backend, method)(*args, **kwargs)
                except Exception as e:  # noqa: BLE001 - a tracker never kills a run
                    self.warn(name, method, e)

        if self.worker is None:
            self.worker = threading.Thread(target=self._work, name=f"tracking-{self.label}")
            self.worker.daemon = True  # a tracker stuck past `wait_s` must not keep the process
            self.worker.start()
        self.calls.put(run)

    def load(self) -> None:
        self._call("load")

    def start(self, *, resume_step: int) -> None:
        self._call("start", resume_step=resume_step)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self._call("log", step, dict(metrics))

    def summary(self, values: Mapping[str, Any]) -> None:
        self._call("summary", dict(values))

    def images(self, paths: Iterable[Path]) -> None:
        self._call("images", list(paths))

    def flush(self) -> None:
        """Wait until every call so far reached the trackers' files (before a checkpoint: what
        was logged up to it survives a kill after it)."""
        if self.dropped or self.worker is None:
            return
        done = threading.Event()
        self._call("flush")
        self.calls.put(done.set)
        if not self._wait(done.wait):
            self._late("flush")

    def end(self, record: Mapping[str, Any]) -> None:
        """The record's summary (not for a pruned trial: partial, a later run resumes it), then
        `finish`; once. The trainer calls it BEFORE writing the record, so a kill after the
        record (a rerun skips a done run) cannot leave a tracker run without its end."""
        if self.finished:
            return
        status = str(record.get("status"))
        if status != "pruned":
            self.summary({k: record[k] for k in SUMMARY_FIELDS if k in record})
        self.finish(status)

    def finish(self, status: str) -> None:
        if self.finished or self.worker is None:
            return  # ended already, or nothing was started (the run failed before training)
        self.finished = True
        if self.dropped:
            return
        self._call("finish", status)
        self.calls.put(None)
        worker = self.worker

        def joined(timeout: float) -> bool:
            worker.join(timeout)
            return not worker.is_alive()

        if not self._wait(joined):
            self._late("finish")

    def _wait(self, wait: Callable[[float], bool]) -> bool:
        """wait(timeout) within what is left of the run's budget; the time counts against it."""
        t = time.perf_counter()
        ok = wait(max(self.wait_s - self.waited_s, 0.0))
        self.waited_s += time.perf_counter() - t
        return ok

    def _late(self, method: str) -> None:
        """Past the budget: say so once, and drop every tracker for the rest of the run."""
        self.dropped = True
        print(
            f"[{self.label}] warning: the trackers did not {method} within this run's "
            f"{self.wait_s:.0f} s budget for them; the run goes on without its trackers (its "
            "record, time and tokens/s are unaffected)",
            file=sys.stderr,
            flush=True,
        )


def _factory(name: str) -> Callable[[RunInfo, TrackerConfig], Backend]:
    module, _, cls = FACTORIES[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def open_tracking(cfg: TrackerConfig, info: RunInfo, *, label: str) -> Tracking | None:
    """The run's Tracking, or None when no tracker is chosen. Building a backend only stores its
    settings; its library is imported (`load`, queued at once, so it overlaps the trainer's
    set-up) and its run opened at `start`, both on the worker thread (inside the guard)."""
    if not cfg.backends:
        return None
    tracking = Tracking({}, label=label, wait_s=WAIT_BUDGET_S)
    for name in cfg.backends:
        try:
            tracking.backends[name] = _factory(name)(info, cfg)
        except Exception as e:  # noqa: BLE001 - as any tracker call
            tracking.warn(name, "open", e)
    tracking.load()
    return tracking
