"""Trackers (sweeps/tracking/) with the real libraries, offline, on tiny runs: TensorBoard's own
reader against curve.jsonl, one MLflow run and one W&B run directory per run id after a SIGKILL and
a rerun, a 6-run joblib sweep into one MLflow experiment, and a tracker that raises on every call
leaving the record as it is without one. Trackers outside a run (the analysis' summary run, Optuna's
dashboard): tests/test_analysis_report_trackers.py."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from sweeps import records
from sweeps.config import TrackerConfig
from sweeps.errors import UserError
from sweeps.run import loop
from sweeps.run.runner import run_dir_for, run_one
from sweeps.sweep.compose import register_configs, to_run_config
from sweeps.tracking import fanout, settings
from tests.processes import background, child_env, run_module

# the record's fields that measure time or when it was written: the only ones a tracker may change
TIME_FIELDS = ("time_s", "tokens_per_s", "created_at")


def composed(overrides: list[str]):
    register_configs()
    with initialize_config_module("conf", version_base="1.3"):
        return to_run_config(compose("config", overrides=overrides))


def _val_curve(run_dir: Path) -> list[tuple[int, float]]:
    return [(row["step"], row["loss"]) for row in records.read_curve(run_dir)]


# ---- the setting ---------------------------------------------------------------------------


def test_tracker_group_selects_one_or_several(tiny_overrides):
    assert composed(tiny_overrides).tracker.backends == []
    assert composed([*tiny_overrides, "tracker=mlflow"]).tracker.backends == ["mlflow"]
    both = composed([*tiny_overrides, "tracker=[tensorboard,mlflow]"]).tracker
    assert both.backends == ["tensorboard", "mlflow"]
    flags = composed([*tiny_overrides, "tracker.wandb=true", "+tracker.tags.team=lm"]).tracker
    assert flags.backends == ["wandb"] and flags.tags == {"team": "lm"}


def test_a_missing_package_is_one_line_naming_the_extra(tiny_overrides, tmp_path, monkeypatch):
    real = settings.importlib.util.find_spec
    monkeypatch.setattr(
        settings.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "wandb" else real(name, *a),
    )
    with pytest.raises(UserError) as e:
        composed([*tiny_overrides, "tracker=wandb"])
    line = e.value.line()
    assert "\n" not in line and line.startswith("tracker.wandb: needs the wandb package")
    assert "pip install -e '.[wandb]'" in line
    assert not (tmp_path / "results").exists()  # raised at validation, before anything is written


def test_the_tracker_node_changes_neither_the_run_id_nor_the_record_config(tiny_cfg):
    from sweeps.run.identity import run_id_for

    plain, tracked = tiny_cfg(), tiny_cfg(tracker=TrackerConfig(tensorboard=True))
    assert run_id_for(plain) == run_id_for(tracked)


# ---- a tracker never kills a run, and a skipped run logs nothing ----------------------------


class Raising:
    """A tracker that raises on every call."""

    instances = 0

    def __init__(self, info, cfg) -> None:
        Raising.instances += 1

    def _raise(self, *args, **kwargs):
        raise RuntimeError("tracker server unreachable")

    load = start = log = summary = flush = images = finish = _raise


def test_a_tracker_that_raises_leaves_the_record_as_without_it(tiny_cfg, monkeypatch, capsys):
    cfg = tiny_cfg(n_evals=4, checkpoint_every_s=0.0)
    run_dir = run_dir_for(cfg)
    assert run_one(cfg) is not None
    plain, plain_curve = records.read_record(run_dir), records.read_curve(run_dir)
    shutil.rmtree(run_dir)
    capsys.readouterr()
    monkeypatch.setitem(fanout.FACTORIES, "tensorboard", "tests.test_tracking:Raising")
    tracked = run_one(replace(cfg, tracker=TrackerConfig(tensorboard=True, log_every=1)))
    err = capsys.readouterr().err
    assert tracked is not None and tracked["status"] == "ok"
    assert Raising.instances >= 1
    assert err.count("warning: tracker tensorboard") == 1  # once per run, not once per call
    assert "tracker server unreachable" in err
    on_disk = records.read_record(run_dir)
    assert set(on_disk) == set(plain)
    assert {k: v for k, v in on_disk.items() if k not in TIME_FIELDS} == {
        k: v for k, v in plain.items() if k not in TIME_FIELDS
    }
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in records.read_curve(run_dir)] == [
        {k: v for k, v in r.items() if k != "time_s"} for r in plain_curve
    ]


class Hanging:
    """A tracker whose library hangs on load (an unreachable server's connection retries)."""

    def __init__(self, info, cfg) -> None:
        pass

    def load(self) -> None:
        time.sleep(60)  # the worker thread is a daemon: the test does not wait for it

    def _nothing(self, *args, **kwargs) -> None:
        pass

    start = log = summary = flush = images = finish = _nothing


def test_a_tracker_that_hangs_costs_the_run_its_budget_once_and_not_its_measured_time(
    tiny_cfg, monkeypatch, capsys
):
    """An unreachable MLflow URI made each of a 7 s run's flushes wait 300 s (37 min), and the
    record said 100 tokens/s. Now all waits share one budget per run, past which the run drops
    its trackers (saying so once), and the record's time leaves the waits out."""
    monkeypatch.setattr(fanout, "WAIT_BUDGET_S", 2.0)
    monkeypatch.setitem(fanout.FACTORIES, "tensorboard", "tests.test_tracking:Hanging")
    cfg = tiny_cfg(n_evals=4, checkpoint_every_s=0.0, tracker=TrackerConfig(tensorboard=True))
    t = time.perf_counter()
    rec = run_one(cfg)
    wall = time.perf_counter() - t
    err = capsys.readouterr().err
    assert rec is not None and rec["status"] == "ok"
    assert err.count("did not flush within this run's 2 s budget") == 1, err
    assert "did not finish" not in err  # dropped: the finish does not wait again
    assert rec["time_s"] < wall - 1.5  # the 2 s waited are not the run's time


def test_a_finished_run_skipped_by_a_rerun_logs_nothing(tiny_cfg, monkeypatch):
    cfg = tiny_cfg(tracker=TrackerConfig(tensorboard=True))
    monkeypatch.setitem(fanout.FACTORIES, "tensorboard", "tests.test_tracking:Raising")
    run_one(cfg)
    before = Raising.instances
    run_one(cfg)
    assert Raising.instances == before  # no tracker opened for a run that is already done


# ---- TensorBoard: its own reader against curve.jsonl ----------------------------------------


def _tb_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


class Killed(BaseException):
    """Stands in for a kill right after a checkpoint (nothing in the trainer catches it)."""


def test_tensorboard_holds_the_curves_validation_losses_also_after_a_resume(tiny_cfg, monkeypatch):
    cfg = tiny_cfg(
        n_evals=4, checkpoint_every_s=0.0, tracker=TrackerConfig(tensorboard=True, log_every=5)
    )
    run_dir = run_dir_for(cfg)
    save = loop._save_checkpoint

    def save_then_die(path, state):
        if state["step"] == 25:  # killed before this save: the last checkpoint is at step 24,
            raise Killed  # the point at 25 was logged, and TensorBoard must purge it
        save(path, state)

    with monkeypatch.context() as m:
        m.setattr(loop, "_save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            run_one(cfg)
    record = run_one(cfg)
    assert record is not None and record["status"] == "ok"
    scalars = _tb_scalars(Path(cfg.results_dir) / cfg.sweep_name / "tensorboard" / record["run_id"])
    curve = _val_curve(run_dir)
    assert len(curve) == 4
    assert [s for s, _ in scalars["val/loss"]] == [s for s, _ in curve]
    assert [v for _, v in scalars["val/loss"]] == pytest.approx([v for _, v in curve], rel=1e-6)
    steps = [s for s, _ in scalars["train/loss"]]
    assert steps == sorted(set(steps)) and steps[-1] == record["n_steps"]  # no duplicates
    assert steps == [*range(5, record["n_steps"], 5), record["n_steps"]]


# ---- MLflow and W&B after a real SIGKILL --------------------------------------------------


def _kill_after_first_checkpoint(overrides: list[str], tmp_path: Path) -> Path:
    cfg = composed(overrides)
    run_dir = run_dir_for(cfg)
    cmd = [sys.executable, "-m", "sweeps.train", *overrides]
    with background(cmd, cwd=tmp_path, env=child_env()) as proc:
        deadline = time.time() + 240
        while not (run_dir / records.CHECKPOINT_FILE).exists():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 240 s"
            time.sleep(0.02)
    assert not (run_dir / records.RECORD_FILE).exists(), "killed too late: the run had ended"
    return run_dir


def _run_cli(overrides: list[str], tmp_path: Path, timeout: float = 300):
    """`python -m sweeps.train` to its end (a hang fails at `timeout`), with no tracker warning."""
    res = run_module("sweeps.train", overrides, cwd=tmp_path, env=child_env(), timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "warning: tracker" not in res.stderr, res.stderr[-3000:]
    return res


def _long(tiny_overrides: list[str], *extra: str) -> list[str]:
    # ~400 steps, a checkpoint every 0.1 s: the kill lands well before the end
    return [*tiny_overrides, "budget.tokens=1e5", "n_evals=4", "checkpoint_every_s=0.1", *extra]


def _mlflow_history(db: Path, sweep: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """run id tag -> metric -> [(step, value)], over the experiment's active runs."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(sweep)
    assert exp is not None
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run in client.search_runs([exp.experiment_id]):
        rid = run.data.tags["run_id"]
        assert rid not in out, f"two MLflow runs for run id {rid}"
        out[rid] = {
            key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics
        }
        assert run.info.status == "FINISHED"
    return out


@pytest.mark.slow
def test_mlflow_one_run_per_run_id_with_the_same_history_after_sigkill(tiny_overrides, tmp_path):
    killed = _long(tiny_overrides, "tracker=mlflow", "sweep_name=killed")
    run_dir = _kill_after_first_checkpoint(killed, tmp_path)
    _run_cli(killed, tmp_path)
    whole = _long(tiny_overrides, "tracker=mlflow", "sweep_name=whole")
    _run_cli(whole, tmp_path)

    results = tmp_path / "results"
    ((rid, got),) = _mlflow_history(results / "killed" / "mlflow.db", "killed").items()
    ((_, ref),) = _mlflow_history(results / "whole" / "mlflow.db", "whole").items()
    assert rid == run_dir.name
    assert set(got) == set(ref)
    for key in got:
        steps = [s for s, _ in got[key]]
        assert steps == sorted(set(steps)), f"{key}: duplicated steps"
        assert steps == [s for s, _ in ref[key]], key
        deterministic = key.startswith(("train/", "val/", "progress/")) or key in (
            "summary/loss",
            "summary/n_tokens",
            "summary/flops",
        )
        if deterministic:  # the same batches, the same losses (time-like ones differ)
            assert [v for _, v in got[key]] == [v for _, v in ref[key]], key
    assert [(s, v) for s, v in got["val/loss"]] == _val_curve(run_dir)


def test_mlflow_writes_points_at_flush_into_a_store_copied_from_a_template(tmp_path, monkeypatch):
    """Points wait in memory until a flush (one transaction, not one per point); a new store is a
    copy of the migrated template, made once, which MLflow opens and checks as its own."""
    import mlflow
    from mlflow import MlflowClient

    from sweeps.tracking.mlflow_backend import MlflowBackend

    monkeypatch.setenv("SCALING_SWEEPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    template = settings.mlflow_template(mlflow.__version__)
    cfg = TrackerConfig(mlflow=True)

    def backend(sweep: str) -> MlflowBackend:
        info = fanout.RunInfo("r1", sweep, str(tmp_path / "results"), {"a": 1}, {"arch": "gpt"})
        b = MlflowBackend(info, cfg)
        b.load()
        b.start(resume_step=0)
        return b

    first = backend("one")
    assert template.exists()
    made = template.stat().st_mtime_ns
    first.log(1, {"train/loss": 3.0})
    first.log(2, {"train/loss": 2.5, "val/loss": 2.7})
    run_id = first.mlflow_run_id
    store = MlflowClient(tracking_uri=first.uri)
    assert store.get_run(run_id).data.metrics == {}  # nothing written before the flush
    first.flush()
    assert [(m.step, m.value) for m in store.get_metric_history(run_id, "train/loss")] == [
        (1, 3.0),
        (2, 2.5),
    ]
    first.log(3, {"train/loss": 2.0})
    first.summary({"loss": 2.1, "status": "ok"})
    first.finish("ok")
    run = store.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "ok"
    assert run.data.metrics["train/loss"] == 2.0 and run.data.metrics["summary/loss"] == 2.1

    second = backend("two")  # a second new store: a copy, the template is not made again
    assert template.stat().st_mtime_ns == made
    assert (tmp_path / "results" / "two" / "mlflow.db").exists()
    second.finish("ok")


def _wandb_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((sweep_dir / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_wandb_offline_one_run_directory_per_run_id_after_sigkill(tiny_overrides, tmp_path):
    from sweeps.tracking.wandb_backend import wandb_id

    overrides = _long(tiny_overrides, "tracker=wandb", "sweep_name=wb")
    run_dir = _kill_after_first_checkpoint(overrides, tmp_path)
    sweep_dir = run_dir.parent
    wid = wandb_id("wb", run_dir.name)
    assert wid == f"wb-{run_dir.name}"
    _run_cli(overrides, tmp_path)
    (only,) = _wandb_dirs(sweep_dir)
    assert only.name.endswith(f"-{wid}") and (only / f"run-{wid}.wandb").exists()
    points = [json.loads(line) for line in (sweep_dir / "wandb" / f"{wid}.jsonl").open()]
    steps = [p["step"] for p in points]
    assert steps == sorted(steps)  # replayed up to the checkpoint, then continued in order
    val = [(p["step"], p["metrics"]["val/loss"]) for p in points if "val/loss" in p["metrics"]]
    assert val == _val_curve(run_dir)
    again = _run_cli(overrides, tmp_path)  # finished: skipped, nothing logged
    assert "already done" in again.stderr and _wandb_dirs(sweep_dir) == [only]


@pytest.mark.slow
def test_six_run_joblib_sweep_gives_six_mlflow_runs_in_one_experiment(tmp_path):
    args = [
        "-m",
        "sweep=smoke",
        "model.n_params=2e3,5e3",
        "seed=0,1,2",
        "budget.tokens=2e4",
        "tracker=mlflow",
        "sweep_name=ml6",
        f"results_dir={tmp_path / 'results'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "precision=fp32",
        "device=cpu",
    ]
    _run_cli(args, tmp_path, timeout=600)  # a hang (a tracker left open under loky) fails
    sweep_dir = tmp_path / "results" / "ml6"
    folders = {d.name for d in records.iter_run_dirs(sweep_dir)}
    assert len(folders) == 6
    history = _mlflow_history(sweep_dir / "mlflow.db", "ml6")
    assert set(history) == folders
    for rid, metrics in history.items():
        assert [(s, v) for s, v in metrics["val/loss"]] == _val_curve(sweep_dir / rid)
