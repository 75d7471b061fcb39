"""Preemption-safe SLURM through submitit: the timeout signal makes the run checkpoint at the
next step boundary and hand over to submitit, which requeues the job; the requeued job resumes
and ends with the loss of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps import records
from sweeps.run import loop as trainer


class Requeued(Exception):
    """What submitit's handler does in the job process: requeue, then exit."""


def test_timeout_signal_checkpoints_at_a_step_boundary_then_hands_over(
    tiny_cfg, tmp_path, monkeypatch
) -> None:
    cfg = tiny_cfg(n_evals=2)
    full = trainer.train(cfg, tmp_path / "full")

    calls: list[int] = []

    def submitit_handler(signum, frame):  # stands in for submitit's checkpoint_and_try_requeue
        calls.append(signum)
        raise Requeued

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setattr(signal, "getsignal", lambda sig: submitit_handler)
    save = trainer._save_checkpoint
    saved_steps: list[int] = []

    def recording_save(path, state):
        saved_steps.append(state["step"])
        save(path, state)

    lr_at = trainer.lr_at

    def lr_then_signal(step, **kw):  # the timeout signal arrives in the middle of step 5
        if step == 5:
            os.kill(os.getpid(), signal.SIGUSR2)
        return lr_at(step, **kw)

    monkeypatch.setattr(trainer, "_save_checkpoint", recording_save)
    monkeypatch.setattr(trainer, "lr_at", lr_then_signal)
    run_dir = tmp_path / "run"
    old = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        with pytest.raises(Requeued):
            trainer.train(cfg, run_dir)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert calls == [signal.SIGUSR2]
    assert saved_steps == [6]  # step 5 completed, then the checkpoint, then submitit's handler
    assert (run_dir / records.CHECKPOINT_FILE).exists()
    monkeypatch.setattr(trainer, "lr_at", lr_at)
    monkeypatch.delenv("SUBMITIT_EXECUTOR")
    resumed = trainer.train(cfg, run_dir)
    assert resumed["loss"] == full["loss"] and resumed["n_tokens"] == full["n_tokens"]


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.mark.slow
def test_submitit_local_job_that_times_out_is_requeued_and_ends_as_uninterrupted(
    tmp_path, tiny_overrides
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    args = [o for o in tiny_overrides if not o.startswith(("results_dir", "budget.tokens"))]
    args += ["budget.tokens=6e4", "sweep_name=requeue", "seed=0"]
    base = [sys.executable, "-m", "sweeps.train"]
    alone = subprocess.run(
        [*base, *args, f"results_dir={tmp_path / 'alone'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert alone.returncode == 0, alone.stderr[-3000:]
    (ref_dir,) = records.iter_run_dirs(tmp_path / "alone" / "requeue")
    ref = records.read_record(ref_dir)

    sweep_dir = tmp_path / "results" / "requeue"
    cmd = [*base, "-m", "launcher=submitit_local", "hydra.launcher.timeout_min=5", *args]
    cmd.append(f"results_dir={tmp_path / 'results'}")
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if list(sweep_dir.glob("*/checkpoint.pt")):
                break
            assert proc.poll() is None, "the sweep ended before it could time out"
            time.sleep(0.02)
        else:
            pytest.fail("no checkpoint within 240 s")
        # submitit's local controller (pid = job id) sends this signal to its tasks when the
        # job nears its time limit; with timeout_min < 10 submitit counts it as a timeout. (The
        # real one would come at 5 min - 30 s; under load a 1-min limit fired before the first
        # checkpoint.)
        (job_folder,) = [p for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()]
        tasks = _children(int(job_folder.name))
        assert tasks
        for pid in tasks:
            os.kill(pid, signal.SIGUSR2)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    logs = "".join(p.read_text() for p in sorted(job_folder.glob("*_log.*")))
    assert proc.returncode == 0, out[-2000:] + logs[-3000:]
    assert "this job is timed-out" in logs and "Requeued job" in logs, logs[-3000:]
    assert "resuming from its checkpoint" in logs, logs[-3000:]
    (run_dir,) = records.iter_run_dirs(sweep_dir)
    record = records.read_record(run_dir)
    assert record["status"] == "ok" and record["run_id"] == ref["run_id"]
    assert record["loss"] == ref["loss"] and record["n_tokens"] == ref["n_tokens"]
