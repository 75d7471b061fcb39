"""Sweeps end to end as subprocesses: launchers, SIGKILL and resume, two sweeps at once,
failures, and `sweeps.plan` against the records the sweep then writes. All slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps import records

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


# The tiny synthetic setup of the smoke preset, pointed at the test's folders.
def _base(tmp: Path) -> list[str]:
    return [
        f"results_dir={tmp / 'results'}",
        f"data.cache_dir={tmp / 'cache'}",
        "precision=fp32",
        "device=cpu",
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def _cmd(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _run(tmp: Path, module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cmd(module, *args),
        cwd=tmp,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _records(sweep_dir: Path) -> dict[str, dict]:
    return {
        d.name: records.read_record(d)
        for d in records.iter_run_dirs(sweep_dir)
        if (d / records.RECORD_FILE).exists()
    }


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_smoke_sweep_end_to_end(launcher: str, tmp_path: Path) -> None:
    args = ["-m", "sweep=smoke", f"launcher={launcher}", *_base(tmp_path)]
    res = _run(tmp_path, "sweeps.train", *args)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = _records(tmp_path / "results" / "smoke")
    assert len(recs) == 4 and {r["status"] for r in recs.values()} == {"ok"}
    if launcher == "joblib":  # submitit keeps each job's stderr in its own log files
        assert "[sweep] 4/4 runs done" in res.stderr
    assert "sweep " in res.stderr and "4 ok" in res.stderr
    if launcher != "joblib":  # a rerun's skips are the runner's, whatever the launcher: once
        return
    stamps = {
        k: (tmp_path / "results" / "smoke" / k / "record.json").stat().st_mtime_ns for k in recs
    }
    again = _run(tmp_path, "sweeps.train", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {
        k: (tmp_path / "results" / "smoke" / k / "record.json").stat().st_mtime_ns for k in recs
    } == stamps  # a rerun skips every finished run


def _kill_sweep_args(tmp: Path) -> list[str]:
    # 4 runs of ~800 steps each, a checkpoint every 0.3 s: long enough to be caught mid-run
    # (2 finished and 1 partial at the kill, with 2 workers)
    return [
        "-m",
        "sweep=smoke",
        "model.n_params=2e3,5e3",
        "seed=0,1",
        "budget.tokens=2e5",
        "checkpoint_every_s=0.3",
        *_base(tmp),
    ]


def test_sigkill_then_rerun_resumes_and_never_duplicates(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "results" / "smoke"
    args = _kill_sweep_args(tmp_path)
    proc = subprocess.Popen(
        _cmd("sweeps.train", *args),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 400
        while time.time() < deadline:
            done = [d for d in records.iter_run_dirs(sweep_dir) if (d / "record.json").exists()]
            ckpt = [
                d
                for d in records.iter_run_dirs(sweep_dir)
                if (d / "checkpoint.pt").exists() and not (d / "record.json").exists()
            ]
            if len(done) >= 2 and ckpt:
                break
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(0.1)
        else:
            pytest.fail("no records and checkpoint within 400 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)
    before = {
        d.name: ((d / "record.json").stat().st_mtime_ns, records.read_record(d)["created_at"])
        for d in records.iter_run_dirs(sweep_dir)
        if (d / "record.json").exists()
    }
    interrupted = [
        d.name
        for d in records.iter_run_dirs(sweep_dir)
        if (d / "checkpoint.pt").exists() and not (d / "record.json").exists()
    ]
    assert len(before) >= 2 and interrupted

    res = _run(tmp_path, "sweeps.train", *args, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = _records(sweep_dir)
    assert len(recs) == 4 and {r["status"] for r in recs.values()} == {"ok"}
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == sorted(recs)  # once each
    assert not list(sweep_dir.glob("*/.*.tmp")) and not list(sweep_dir.glob("*/checkpoint.pt"))
    for name, (mtime, created) in before.items():  # no finished run was retrained
        assert (sweep_dir / name / "record.json").stat().st_mtime_ns == mtime
        assert recs[name]["created_at"] == created
        assert f"[{name}] already done" in res.stderr
    for name in interrupted:
        assert f"[{name}] resuming from its checkpoint" in res.stderr
        steps = [r["step"] for r in records.read_curve(sweep_dir / name)]
        assert steps == sorted(set(steps))  # no evaluation recorded twice

    # The resumed run ends exactly where an uninterrupted run of the same config ends.
    name = interrupted[0]
    cfg = recs[name]["config"]
    alone = tmp_path / "alone"
    single = _run(
        tmp_path,
        "sweeps.train",
        "sweep=smoke",
        f"model.n_params={cfg['model']['n_params']}",
        f"seed={cfg['seed']}",
        "budget.tokens=2e5",
        *_base(tmp_path)[1:],
        f"results_dir={alone}",
    )
    assert single.returncode == 0, single.stderr[-3000:]
    (ref,) = _records(alone / "smoke").values()
    assert ref["run_id"] == name
    assert ref["loss"] == recs[name]["loss"]
    assert ref["n_tokens"] == recs[name]["n_tokens"]


def test_two_sweeps_at_once_never_train_a_run_twice(tmp_path: Path) -> None:
    args = ["-m", "sweep=smoke", "hydra.launcher.n_jobs=1", *_base(tmp_path)]
    # build the data cache first so that both sweeps start training at the same moment
    warm = _run(tmp_path, "sweeps.plan", *args[1:])
    assert warm.returncode == 0, warm.stderr
    procs = [
        subprocess.Popen(
            _cmd("sweeps.train", *args),
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    recs = _records(tmp_path / "results" / "smoke")
    assert len(recs) == 4
    for name in recs:
        trained = sum(e.count(f"[{name}] ok: loss") for e in errs)
        assert trained == 1, (name, errs)


def test_a_failing_run_does_not_stop_the_others(tmp_path: Path) -> None:
    res = _run(
        tmp_path,
        "sweeps.train",
        "-m",
        "sweep=smoke",
        "model.n_params=-1,2e3,5e3",
        "budget.tokens=2e4",
        *_base(tmp_path),
    )
    assert res.returncode != 0
    recs = _records(tmp_path / "results" / "smoke")
    assert len(recs) == 2 and {r["status"] for r in recs.values()} == {"ok"}
    assert "2 ok" in res.stderr
    assert "config error for model.n_params=-1 " in res.stderr


def test_plan_agrees_with_the_records_of_a_small_isoflop_sweep(tmp_path: Path) -> None:
    grid = [
        "sweep=isoflop",
        "data=synthetic",
        "model.context=32",
        "optim.batch_size=8",
        "data.n_val_tokens=2048",
        "n_evals=2",
        "budget.flops=2e8,6e8",
        "model.n_params=2e3,5e3,3e4",
        "budget.min_steps=20",
        *_base(tmp_path),
    ]
    plan = _run(tmp_path, "sweeps.plan", "--json", *grid)
    assert plan.returncode == 0, plan.stderr
    planned = {r["run_id"]: r for r in json.loads(plan.stdout)["runs"]}
    assert len(planned) == 6 and any(r["problem"] for r in planned.values())
    res = _run(tmp_path, "sweeps.train", "-m", *grid)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = _records(tmp_path / "results" / "isoflop")
    assert set(recs) == set(planned)
    for run_id, rec in recs.items():
        p = planned[run_id]
        assert rec["n_params"] == p["n_params"]
        assert rec["n_params_total"] == p["n_params_total"]
        assert rec["n_params_non_embedding"] == p["n_params_non_embedding"]
        # D and C are both rounded down to whole steps of batch x context, so they agree exactly
        assert rec["n_tokens"] == p["n_tokens"]
        assert rec["flops"] == p["flops"]
        assert rec["status"] == ("skipped" if p["problem"] else "ok")
        if p["problem"]:
            assert rec["reason"] == p["problem"]
        # C is within one step of the budget
        assert rec["flops_budget"] - rec["flops"] < 6 * rec["n_params"] * 8 * 32 or p["problem"]
    again = _run(tmp_path, "sweeps.plan", "--json", *grid)
    states = {r["state"] for r in json.loads(again.stdout)["runs"]}
    assert states == {"done", "skipped"}


def test_ray_launcher_runs_the_smoke_sweep(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="ray is not installed (pip install 'scaling-sweeps[ray]')")
    pytest.importorskip(
        "hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher is not installed"
    )
    res = _run(
        tmp_path, "sweeps.train", "-m", "sweep=smoke", "launcher=ray", *_base(tmp_path), timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    recs = _records(tmp_path / "results" / "smoke")
    assert len(recs) == 4 and {r["status"] for r in recs.values()} == {"ok"}
