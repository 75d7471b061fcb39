"""`python -m sweeps.adaptive`: the closed loop (seed grid, then propose, train, refit), its stop
reasons, its state, and a rerun after a kill that trains nothing twice (sweeps/adaptive.py)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from sweeps import records
from tests.processes import background, child_env, run_module

pytestmark = pytest.mark.slow  # real (tiny) training runs in subprocesses


def _tiny(results: Path, cache: Path) -> list[str]:
    """A seed grid of 9 tiny runs on the synthetic corpus (~15 s), sequential."""
    return [
        f"results_dir={results}", "data=synthetic", f"data.cache_dir={cache}",
        "data.n_val_tokens=2048", "model.context=32", "optim.batch_size=8", "n_evals=2",
        "progress=none", "precision=fp32", "device=cpu", "budget.min_steps=5", "launcher=local",
        "budget.flops=3e8,1e9,3e9", "isoflop_tokens_per_param=10,3,1",
    ]  # fmt: skip


def _loop(tmp_path: Path, overrides: list[str], *more: str, timeout: float = 400):
    args = ["--target-flops", "1e11", "--allowance", "3e10", "--max-runs", "3", *more, "--",
            *overrides]  # fmt: skip
    return run_module("sweeps.adaptive", args, cwd=tmp_path, env=child_env(), timeout=timeout)


def _finished(sweep: Path) -> dict[str, dict]:
    out = {}
    for d in records.iter_run_dirs(sweep):
        if records.run_state(d) == "done":
            out[d.name] = records.read_record(d)
    return out


def test_bad_inputs_are_refused_before_anything_is_trained(tmp_path, data_cache) -> None:
    tiny = _tiny(tmp_path / "results", data_cache)
    def adaptive(*args: str):
        return run_module("sweeps.adaptive", [*args, "--", *tiny], cwd=tmp_path,
                          env=child_env(), timeout=120)  # fmt: skip

    low = adaptive("--target-flops", "1e11", "--allowance", "1e9")
    assert low.returncode == 2
    assert low.stderr.strip().splitlines()[-1].startswith("error: --allowance"), low.stderr
    near = adaptive("--target-flops", "1e9", "--allowance", "1e11")
    assert near.returncode == 2 and "error: --target-flops" in near.stderr
    short = adaptive("--target-flops", "1e11", "--allowance", "1e11", "--max-wall-seconds", "1e-3")
    assert short.returncode == 2 and "error: --max-wall-seconds" in short.stderr, short.stderr
    assert not _finished(tmp_path / "results" / "adaptive")


def test_a_loop_killed_between_and_during_waves_ends_with_the_same_runs_trained_once(
    tmp_path, data_cache
) -> None:
    seed_dir = tmp_path / "seed"
    grid = run_module(
        "sweeps.train", ["-m", "sweep=adaptive", *_tiny(seed_dir, data_cache)],
        cwd=tmp_path, env=child_env(), timeout=300,
    )  # fmt: skip
    assert grid.returncode == 0, grid.stderr[-2000:]
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    shutil.copytree(seed_dir, ref_dir)
    shutil.copytree(seed_dir, cut_dir)

    ref = _loop(tmp_path, _tiny(ref_dir, data_cache), "--max-waves", "2")
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert "stopped: max waves" in ref.stdout

    # killed between waves: the loop ends after wave 1 (its state saved, as after a kill there)
    first = _loop(tmp_path, _tiny(cut_dir, data_cache), "--max-waves", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    sweep = cut_dir / "adaptive"
    after_one = {k: (sweep / k / records.RECORD_FILE).stat().st_mtime_ns
                 for k in _finished(sweep)}  # fmt: skip
    # killed during wave 2: SIGKILL as soon as wave 2's first run has finished
    cmd = [sys.executable, "-m", "sweeps.adaptive", "--target-flops", "1e11", "--allowance", "3e10",
           "--max-runs", "3", "--max-waves", "2", "--", *_tiny(cut_dir, data_cache)]  # fmt: skip
    with background(cmd, cwd=tmp_path, env=child_env()) as proc:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if any((r.get("config") or {}).get("wave") == 2 for r in _finished(sweep).values()):
                break
            time.sleep(0.2)
    state = json.loads((sweep / "waves" / "loop.json").read_text())
    assert state["launched"] == 2 and state["finished"] is False  # it really was mid-wave
    last = _loop(tmp_path, _tiny(cut_dir, data_cache), "--max-waves", "2")
    assert last.returncode == 0, last.stderr[-3000:]

    ref_runs, cut_runs = _finished(ref_dir / "adaptive"), _finished(sweep)
    assert set(cut_runs) == set(ref_runs)  # the same record set as the uninterrupted loop
    # nothing trained twice: the records written before the kills are untouched, none retried
    for run_id, mtime in after_one.items():
        assert (sweep / run_id / records.RECORD_FILE).stat().st_mtime_ns == mtime
    assert all(records.attempts(r) <= 1 for r in cut_runs.values())
    waves = {r["config"].get("wave") for r in cut_runs.values()}
    assert waves == {None, 1, 2}  # each run's record names its wave (the seed grid: none)
    hist = json.loads((sweep / "waves" / "loop.json").read_text())["history"]
    assert [h["wave"] for h in hist] == [0, 1, 2]
    assert [h["spent"] for h in hist] == sorted(h["spent"] for h in hist)


def test_time_allowances_stop_the_loop_when_spent_and_bound_its_waves_when_not(
    tmp_path, data_cache
) -> None:
    """--max-seconds counts the runs' measured training seconds (the seed grid's included): spent,
    the loop stops and says so, and launches no wave."""
    res = _loop(tmp_path, _tiny(tmp_path / "results", data_cache), "--max-seconds", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "stopped: time allowance" in res.stdout, res.stdout
    sweep = tmp_path / "results" / "adaptive"
    runs = _finished(sweep)
    assert len(runs) == 9 and all(r["config"].get("wave") is None for r in runs.values())
    state = json.loads((sweep / "waves" / "loop.json").read_text())
    assert state["stop"].startswith("time allowance") and state["launched"] is None
    assert state["max_seconds"] == 1 and state["history"][-1]["seconds"] > 1
    # a clock allowance counts the loop's own seconds, kept across reruns in loop.json: this
    # rerun trains nothing, and what the first run took already spends it
    wall = run_module("sweeps.adaptive", ["--target-flops", "1e11", "--allowance", "3e10",
                                          "--max-wall-seconds", "1e-3", "--",
                                          *_tiny(tmp_path / "results", data_cache)],
                      cwd=tmp_path, env=child_env(), timeout=300)  # fmt: skip
    assert wall.returncode == 0, wall.stderr[-3000:]
    assert "stopped: wall-time allowance" in wall.stdout, wall.stdout
    assert _finished(sweep).keys() == runs.keys()
    state = json.loads((sweep / "waves" / "loop.json").read_text())
    assert state["wall_s"] > 1 and state["max_wall_seconds"] == 1e-3
    # with time left for a wave, the planner is handed what each run takes here and the time
    # left of each allowance (the loop's own clock starts again without its state; run-seconds
    # less the seed grid's), and its wave fits both (before, it was handed the wall time alone)
    (sweep / "waves" / "loop.json").unlink()
    timed = run_module("sweeps.adaptive", ["--target-flops", "1e11", "--allowance", "3e10",
                                           "--max-wall-seconds", "300", "--max-seconds", "1000",
                                           "--max-waves", "1", "--",
                                           *_tiny(tmp_path / "results", data_cache)],
                       cwd=tmp_path, env=child_env(), timeout=300)  # fmt: skip
    assert timed.returncode == 0, timed.stderr[-3000:]
    assert "stopped: max waves" in timed.stdout, timed.stdout
    wave = json.loads((sweep / "waves" / "wave_1" / "wave.json").read_text())
    assert wave["runs"] and 0 < wave["wall_s"] <= wave["max_wall_s"] < 300
    assert 0 < wave["run_s"] <= wave["max_run_s"] < 1000  # wave.json: the planner's proposal
    assert {r["config"].get("wave") for r in _finished(sweep).values()} == {None, 1}


def test_the_waves_keep_the_seed_grids_cache_folder_and_how_to_run_but_not_its_grid() -> None:
    """data.cache_dir after `--` reached the seed grid but not the waves, which then built the
    corpus again under the default cache (on a cluster, often a small home folder)."""
    from sweeps.adaptive import _wave_extra

    extra = ["sweep=adaptive", "data.cache_dir=/scratch/cache", "budget.flops=1e9,3e9",
             "launcher=joblib", "data.name=synthetic"]  # fmt: skip
    assert _wave_extra(extra) == ["data.cache_dir=/scratch/cache", "launcher=joblib"]


def test_the_waves_run_on_the_seed_grids_launcher_unless_one_is_given_after_the_dashes() -> None:
    """`python -m sweeps.adaptive ... -- sweep=adaptive` trained the seed grid on joblib (the
    preset's launcher) and every wave one run at a time on the default launcher."""
    from sweeps.adaptive import _seed_grid, _wave_extra

    *_, launcher = _seed_grid(["sweep=adaptive", "results_dir=/nonexistent/results"])
    assert launcher == "joblib"
    assert _wave_extra(["sweep=adaptive", "threads=1"], launcher) == ["launcher=joblib",
                                                                      "threads=1"]  # fmt: skip
    given = ["sweep=adaptive", "launcher=slurm", "hydra.launcher.partition=gpu"]
    assert _wave_extra(given, launcher) == ["launcher=slurm", "hydra.launcher.partition=gpu"]
    assert _wave_extra(["hydra/launcher=submitit_local"], launcher) == [
        "hydra/launcher=submitit_local"]  # fmt: skip
    # its settings alone keep the seed grid's launcher, which has them
    assert _wave_extra(["hydra.launcher.n_jobs=4"], launcher) == ["launcher=joblib",
                                                                  "hydra.launcher.n_jobs=4"]
    *_, local = _seed_grid(["sweep=adaptive", "launcher=local", "results_dir=/nonexistent/r"])
    assert local == "local"
