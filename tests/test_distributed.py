"""DistributedDataParallel on the CPU (gloo): 2 ranks under torchrun train the same run as one
process (same validation losses to 1e-5 relative), write one record, and resume after a SIGKILL
of every rank exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps import records
from sweeps.run.distributed import Ranks, in_distributed_env, rows_of

# batch 7 over 2 ranks: slices of 3 and 4 rows, so a mean of the ranks' means would be wrong
ARGS = ["optim.batch_size=7", "budget.tokens=2.5e4", "n_evals=4", "sweep_name=ddp"]


def test_rows_of_splits_every_batch_into_contiguous_near_equal_slices() -> None:
    for n in (1, 2, 7, 16):
        for world in (1, 2, 3, 4):
            parts = [rows_of(n, r, world) for r in range(world)]
            got = [i for p in parts for i in range(n)[p]]
            assert got == list(range(n))
            sizes = [len(range(n)[p]) for p in parts]
            assert max(sizes) - min(sizes) <= 1


def test_one_process_is_not_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("WORLD_SIZE", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(key, raising=False)
    assert not in_distributed_env()
    ranks = Ranks()
    assert ranks.is_main and not ranks.active and ranks.go(True)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_NTASKS", "2")
    assert in_distributed_env()


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _torchrun(nproc: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
    ]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def _tree(pid: int) -> list[int]:
    """`pid` and every descendant (torchrun starts its ranks in sessions of their own, so a
    process-group kill would miss them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _only_run(results: Path) -> Path:
    (run_dir,) = records.iter_run_dirs(results / "ddp")
    return run_dir


def _losses(run_dir: Path) -> list[float]:
    return [row["loss"] for row in records.read_curve(run_dir)]


def _close(a: list[float], b: list[float], rel: float = 1e-5) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= rel * abs(y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_two_ranks_match_one_process_and_resume_after_sigkill(
    tmp_path: Path, tiny_overrides: list[str]
) -> None:
    base = [
        o
        for o in tiny_overrides
        if not o.startswith(("results_dir", "optim.batch", "budget.", "n_evals"))
    ]
    one_dir, two_dir, killed_dir = (tmp_path / n for n in ("one", "two", "killed"))
    one = _run(
        [sys.executable, "-m", "sweeps.train", *base, *ARGS, f"results_dir={one_dir}"], tmp_path
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two_cmd = [*_torchrun(2), "-m", "sweeps.train", *base, *ARGS]
    two = _run([*two_cmd, f"results_dir={two_dir}"], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]

    ref, run2 = _only_run(one_dir), _only_run(two_dir)
    assert ref.name == run2.name  # the same run id: the rank count is not part of the result
    rec1, rec2 = records.read_record(ref), records.read_record(run2)
    assert rec2["config"]["resolved"]["world_size"] == 2
    assert rec2["n_tokens"] == rec1["n_tokens"] and rec2["n_steps"] == rec1["n_steps"] >= 40
    assert _close(_losses(run2), _losses(ref)), (_losses(run2), _losses(ref))
    assert abs(rec2["loss"] - rec1["loss"]) <= 1e-5 * rec1["loss"]
    assert abs(rec2["train_loss"] - rec1["train_loss"]) <= 1e-5 * rec1["train_loss"]
    # one record, one curve (one line per evaluation), no leftovers from rank 1
    assert [p.name for p in records.iter_run_dirs(two_dir / "ddp")] == [run2.name]
    assert len(_losses(run2)) == 4 and not list(run2.glob("checkpoint*"))

    # SIGKILL of the agent and both ranks after the first checkpoint, then the same command
    proc = subprocess.Popen(
        [*two_cmd, f"results_dir={killed_dir}", "checkpoint_every_s=0"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # killed below by process tree, not by group: torchrun's ranks have sessions of their own
    try:
        deadline = time.time() + 240
        ckpt = None
        while time.time() < deadline and ckpt is None:
            found = list((killed_dir / "ddp").glob("*/checkpoint.pt"))
            ckpt = found[0] if found else None
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.01)
        assert ckpt is not None, "no checkpoint within 240 s"
    finally:
        for pid in _tree(proc.pid):  # the agent and both ranks
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        time.sleep(0.5)
    run_dir = ckpt.parent
    assert not (run_dir / records.RECORD_FILE).exists() and ckpt.exists()
    again = _run([*two_cmd, f"results_dir={killed_dir}", "checkpoint_every_s=0"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from its checkpoint" in again.stderr
    assert _close(_losses(run_dir), _losses(run2)), (_losses(run_dir), _losses(run2))
    assert abs(records.read_record(run_dir)["loss"] - rec2["loss"]) <= 1e-5 * rec2["loss"]
