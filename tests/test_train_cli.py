"""`python -m sweeps.train` as the user runs it: SIGKILL then resume, a diverged run's exit code,
and the instant rerun of a finished run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_module

from sweeps import records
from sweeps.run.loop import train
from sweeps.run.runner import run_dir_for
from sweeps.sweep.compose import register_configs, to_run_config


def composed(overrides: list[str]):
    """The RunConfig the CLI builds from these overrides (Compose API, same conf/)."""
    register_configs()
    with initialize_config_module("conf", version_base="1.3"):
        return to_run_config(compose("config", overrides=overrides))


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_to_the_uninterrupted_loss(cli, tiny_overrides, tmp_path):
    # ~400 steps (a few seconds), a checkpoint every 0.1 s: the kill lands mid-training.
    overrides = [*tiny_overrides, "budget.tokens=1e5", "n_evals=4", "checkpoint_every_s=0.1"]
    cfg = composed(overrides)
    run_dir = run_dir_for(cfg)
    ckpt = run_dir / records.CHECKPOINT_FILE

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps.train", *overrides],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, killed whole
    )
    try:
        deadline = time.monotonic() + 90
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before a checkpoint was seen"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert ckpt.exists() and not (run_dir / records.RECORD_FILE).exists()
    assert records.run_state(run_dir) == "partial"

    rerun = cli(overrides, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from its checkpoint" in rerun.stderr
    resumed = records.read_record(run_dir)

    whole = train(cfg, tmp_path / "uninterrupted")
    assert resumed["status"] == whole["status"] == "ok"
    assert resumed["loss"] == whole["loss"]  # exactly: fp32 on the CPU is deterministic
    assert resumed["train_loss"] == whole["train_loss"]
    assert resumed["n_tokens"] == whole["n_tokens"]
    steps = [r["step"] for r in records.read_curve(run_dir)]
    assert steps == sorted(set(steps)) and len(steps) == 4  # no duplicated evaluations
    assert not ckpt.exists()
    assert list(run_dir.glob(".*.tmp")) == []  # nothing half-written left behind


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_says_so_and_the_rerun_reaches_the_uninterrupted_loss(
    cli, tiny_overrides, tmp_path
):
    """SIGTERM (what schedulers send before a kill) exited 143 silently and kept only the last
    periodic checkpoint. Now the run checkpoints at the step it reached and says so; the rerun
    resumes from that step (no periodic checkpoint here: one per hour)."""
    overrides = [*tiny_overrides, "budget.tokens=1e5", "n_evals=4", "checkpoint_every_s=3600"]
    cfg = composed(overrides)
    run_dir = run_dir_for(cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps.train", *overrides], cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90  # the first evaluation: training is under way
        while not (run_dir / records.CURVE_FILE).exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before its first evaluation"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM) at step" in err and "Traceback" not in err
    stopped = int(err.split("terminated (SIGTERM) at step ")[1].split()[0])
    assert records.run_state(run_dir) == "partial"
    rerun = cli(overrides, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    # it resumes where the signal stopped it (no periodic checkpoint was due): no step is lost
    assert f"resuming from its checkpoint at step {stopped:,} of" in rerun.stderr, rerun.stderr
    resumed = records.read_record(run_dir)
    whole = train(cfg, tmp_path / "uninterrupted")
    assert resumed["loss"] == whole["loss"] and resumed["n_tokens"] == whole["n_tokens"]
    steps = [r["step"] for r in records.read_curve(run_dir)]
    assert steps == sorted(set(steps)) and len(steps) == 4


def test_diverged_run_exits_non_zero_with_its_record(cli, tiny_overrides, tmp_path):
    proc = cli([*tiny_overrides, "optim.lr=1e4", "optim.grad_clip=0"])
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "diverged" in proc.stderr
    (run_dir,) = (tmp_path / "results" / "default").iterdir()
    assert records.read_record(run_dir)["status"] == "diverged"


@pytest.mark.slow
def test_rerun_of_a_finished_run_reports_already_done(cli, tiny_overrides, tmp_path):
    """The second command trains nothing (start-up only, ~3 s on an idle machine): no file of the
    finished run is written again (checked on the files, not timed: the machine is shared)."""
    first = cli(tiny_overrides)
    assert first.returncode == 0, first.stderr
    files = sorted((tmp_path / "results").rglob("*"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files if p.is_file()}
    assert any(p.name == "record.json" for p in before)
    again = cli(tiny_overrides)
    assert again.returncode == 0, again.stderr
    assert "already done" in again.stderr
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in before}
    assert after == before


def test_integer_lr_is_the_same_run_as_its_float(tiny_overrides):
    one, one_f = (
        composed([*tiny_overrides, "optim.lr=1"]),
        composed([*tiny_overrides, "optim.lr=1.0"]),
    )
    assert one.optim.lr == 1.0 and isinstance(one.optim.lr, float)
    assert run_dir_for(one) == run_dir_for(one_f)
    assert composed([*tiny_overrides, "optim.lr=auto"]).optim.lr == "auto"
