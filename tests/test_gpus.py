"""One GPU per job, without a GPU: SWEEPS_GPUS fakes the device list, and each job's child
process records the CUDA_VISIBLE_DEVICES it was given (it then trains on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sweeps import records
from sweeps.errors import UserError
from sweeps.sweep.gpus import ENV_GPUS, ENV_LOCK_DIR, POOL_LOG, gpu_jobs, hold_gpus, wants_pool


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_GPUS, "0,1,2,3")
    monkeypatch.setenv(ENV_LOCK_DIR, str(tmp_path / "locks"))
    for key in ("WORLD_SIZE", "SUBMITIT_EXECUTOR", "SWEEPS_GPU_CHILD"):
        monkeypatch.delenv(key, raising=False)


def test_jobs_at_once_are_gpus_over_gpus_per_run(four_gpus, monkeypatch) -> None:
    assert gpu_jobs(1, 2) == 4 and gpu_jobs(2, 2) == 2 and gpu_jobs(3, 2) == 1
    monkeypatch.setenv(ENV_GPUS, "")
    assert gpu_jobs(1, 2) == 2  # no GPU: the CPU default


def test_holders_never_share_a_device_and_wait_for_free_ones(four_gpus) -> None:
    with hold_gpus(2) as a, hold_gpus(2) as b:
        assert len(a) == len(b) == 2 and not set(a) & set(b)
        got: list[list[str]] = []

        def third() -> None:
            with hold_gpus(1, poll_s=0.01) as c:
                got.append(c)

        t = threading.Thread(target=third)
        t.start()
        time.sleep(0.3)
        assert not got  # all four are held: it waits
    t.join(timeout=10)
    assert got and len(got[0]) == 1


def test_pool_applies_to_local_sweeps_and_refuses_impossible_requests(
    four_gpus, tiny_cfg, monkeypatch
) -> None:
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert wants_pool(tiny_cfg(device="auto"), launcher=joblib, in_sweep=True)
    assert not wants_pool(tiny_cfg(device="cpu"), launcher=joblib, in_sweep=True)
    assert not wants_pool(tiny_cfg(device="auto"), launcher=slurm, in_sweep=True)
    assert not wants_pool(tiny_cfg(device="auto"), launcher="", in_sweep=False)  # one run
    assert wants_pool(tiny_cfg(device="auto", gpus_per_run=2), launcher="", in_sweep=False)
    with pytest.raises(UserError, match="gpus_per_run.*only 4 are visible"):
        wants_pool(tiny_cfg(device="auto", gpus_per_run=5), launcher=joblib, in_sweep=True)
    monkeypatch.setenv(ENV_GPUS, "")
    with pytest.raises(UserError, match="no GPU is visible"):
        wants_pool(tiny_cfg(device="auto", gpus_per_run=2), launcher=joblib, in_sweep=True)
    monkeypatch.setenv("SWEEPS_GPU_CHILD", "1")  # the child itself trains in place
    assert not wants_pool(tiny_cfg(device="auto"), launcher=joblib, in_sweep=True)


def _sweep(tmp_path: Path, overrides: list[str], extra: list[str]) -> dict[str, dict]:
    env = {**os.environ, ENV_GPUS: "0,1,2,3", ENV_LOCK_DIR: str(tmp_path / "locks")}
    env.pop("HYDRA_FULL_ERROR", None)
    args = [o for o in overrides if not o.startswith(("device=", "budget.tokens"))]
    cmd = [sys.executable, "-m", "sweeps.train", "-m", "launcher=joblib", "device=auto"]
    cmd += [*args, "budget.tokens=4e4", "sweep_name=gpus", *extra]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    sweep_dir = tmp_path / "results" / "gpus"
    recs = {d.name: records.read_record(d) for d in records.iter_run_dirs(sweep_dir)}
    log = [json.loads(x) for x in (sweep_dir / POOL_LOG).read_text().splitlines()]
    return {r["run_id"]: {**r, "record": recs[r["run_id"]]} for r in log}


def _all_overlap(jobs: list[dict]) -> bool:
    return max(j["start"] for j in jobs) < min(j["end"] for j in jobs)


@pytest.mark.slow
def test_four_fake_gpus_run_four_jobs_at_once_each_on_its_own(tmp_path, tiny_overrides) -> None:
    jobs = _sweep(tmp_path, tiny_overrides, ["seed=0,1,2,3"])
    assert len(jobs) == 4
    seen = [j["record"]["config"]["resolved"]["visible_devices"] for j in jobs.values()]
    assert sorted(seen) == ["0", "1", "2", "3"]  # what each job's process saw, all different
    assert sorted(g for j in jobs.values() for g in j["gpus"]) == ["0", "1", "2", "3"]
    assert all(j["record"]["status"] == "ok" for j in jobs.values())
    assert _all_overlap(list(jobs.values())), "the 4 jobs did not run at once"


@pytest.mark.slow
def test_gpus_per_run_2_runs_two_ddp_jobs_of_two(tmp_path, tiny_overrides) -> None:
    jobs = _sweep(tmp_path, tiny_overrides, ["seed=0,1", "gpus_per_run=2"])
    assert len(jobs) == 2
    seen = sorted(j["record"]["config"]["resolved"]["visible_devices"] for j in jobs.values())
    assert seen in (["0,1", "2,3"], ["0,2", "1,3"], ["0,3", "1,2"])
    assert not set(seen[0].split(",")) & set(seen[1].split(","))
    assert all(j["record"]["config"]["resolved"]["world_size"] == 2 for j in jobs.values())
    assert _all_overlap(list(jobs.values())), "the 2 jobs did not run at once"


def test_a_pooled_run_another_process_holds_is_refused_before_a_device(
    four_gpus, tiny_cfg, capfd
) -> None:
    """The child said so and exited 1, but the pool found no record and returned None: the
    command exited 0 having trained nothing. Then the child was started on a device to find
    out, and under torchrun its failure summary followed our line. train.py prints RunHeld as
    one line and exits 1."""
    from sweeps.errors import RunHeld
    from sweeps.run.runner import run_dir_for, run_lock
    from sweeps.sweep.gpus import POOL_LOG, run_on_gpus

    cfg = tiny_cfg()
    run_dir = run_dir_for(cfg)
    with run_lock(run_dir), pytest.raises(RunHeld) as held:
        run_on_gpus(cfg, in_sweep=False)
    assert "being trained by another process" in str(held.value)
    # checked before a device is taken: no child (with torchrun, its failure summary after our
    # line) and no pool row
    assert not (run_dir.parent / POOL_LOG).exists()
    with run_lock(run_dir):
        assert run_on_gpus(cfg, in_sweep=True) is None  # a sweep's job: skipped, goes on
    assert RunHeld.SKIPPED in capfd.readouterr().err
    assert not (run_dir.parent / POOL_LOG).exists()
