"""A full disk under a run's folder (issue 35): one `error:` line naming the folder and the fix, no
traceback, nothing empty or half-written left behind, and a rerun once there is room that resumes
and leaves the folder as an uninterrupted run leaves it.

The disk fills up by `_full_disk`: writes to the files it picks fail with ENOSPC after half their
bytes, as a real full disk does. One test mounts a real, tiny tmpfs (root only; skipped elsewhere).
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from sweeps import records
from sweeps.errors import UserError
from sweeps.run import loop
from sweeps.run.runner import run_dir_for, run_one

ERROR_LOG = "error.log"  # a failed run's traceback, beside its record


class _FullFile:
    """A file opened for writing on a disk with `room` bytes left: a write past it fails."""

    def __init__(self, f: Any, room: int) -> None:
        self._f, self._room = f, room

    def write(self, data: Any) -> int:
        if len(data) > self._room:
            self._f.write(data[: self._room])  # what fitted stays in the file, as on a real disk
            self._room = 0
            self._f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _full_disk(monkeypatch, hit: Callable[[str], bool], room: int = 16) -> list[str]:
    """Writes to files whose path `hit` picks fail once `room` bytes are written (open, and
    Path.open and os.fdopen through io.open); returns the paths hit, in order."""
    real_open = io.open
    seen: list[str] = []

    def open_on_a_full_disk(file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        f = real_open(file, mode, *args, **kw)
        if not any(c in mode for c in "wax+"):
            return f
        name = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.fspath(file)
        if not hit(str(name)):
            return f
        seen.append(str(name))
        return _FullFile(f, room)

    monkeypatch.setattr(io, "open", open_on_a_full_disk)
    monkeypatch.setattr(builtins, "open", open_on_a_full_disk)
    return seen


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _assert_nothing_half_written(run_dir: Path) -> None:
    """No temp file, no empty file but the lock, every JSON file and curve line whole."""
    for p in run_dir.iterdir():
        assert not p.name.endswith(".tmp"), p
        assert p.name == records.LOCK_FILE or p.stat().st_size > 0, f"{p} is empty"
        if p.suffix == ".json":
            json.loads(p.read_text(encoding="utf-8"))
    curve = run_dir / records.CURVE_FILE
    if curve.exists():
        for line in curve.read_text(encoding="utf-8").splitlines():
            json.loads(line)


def _assert_one_disk_full_error(e: UserError, run_dir: Path, err: str) -> None:
    assert e.field == str(run_dir) and "disk is full" in e.problem
    assert "free space" in e.fix and "results_dir" in e.fix
    assert "Traceback" not in err and "failed" not in err


def test_a_full_disk_at_a_checkpoint_is_one_error_and_the_rerun_resumes(
    tiny_cfg, tmp_path, monkeypatch, capsys
):
    cfg = tiny_cfg(n_evals=4)  # checkpoints at the evaluations 20, 39 and 58 (of 78 steps)
    clean = tiny_cfg(n_evals=4, results_dir=str(tmp_path / "clean"))  # the same run id
    expected = run_one(clean)
    run_dir = run_dir_for(cfg)
    with monkeypatch.context() as m:
        saves: list[int] = []
        real_save = torch.save

        def count_saves(obj: Any, f: Any, *a: Any, **kw: Any) -> None:
            saves.append(obj.get("step") if isinstance(obj, dict) else None)
            real_save(obj, f, *a, **kw)

        m.setattr(torch, "save", count_saves)
        opened: list[str] = []

        def second_checkpoint(name: str) -> bool:  # at step 39: the disk is full by then
            if "/.ckpt." in name:
                opened.append(name)
            return "/.ckpt." in name and len(opened) == 2

        hit = _full_disk(m, second_checkpoint, room=1000)
        capsys.readouterr()
        with pytest.raises(UserError) as e:
            run_one(cfg)
    err = capsys.readouterr().err
    assert hit and saves == [20, 39]
    _assert_one_disk_full_error(e.value, run_dir, err)
    _assert_nothing_half_written(run_dir)
    assert not (run_dir / ERROR_LOG).exists()
    assert not (run_dir / records.RECORD_FILE).exists()  # partial, not failed: no retry counted
    ckpt = torch.load(run_dir / records.CHECKPOINT_FILE, weights_only=True)
    assert ckpt["step"] == 20  # the last good checkpoint is kept

    record = run_one(cfg)  # room again
    err = capsys.readouterr().err
    assert "resuming from its checkpoint at step 20" in err
    assert record is not None and record["status"] == "ok" and record["attempts"] is None
    assert record["loss"] == expected["loss"]  # exactly the uninterrupted run
    assert _names(run_dir) == _names(run_dir_for(clean))
    _assert_nothing_half_written(run_dir)


def test_a_full_disk_while_recording_a_crash_leaves_no_empty_error_log(
    tiny_cfg, monkeypatch, capsys
):
    """The issue's second traceback: the run crashed, and its error.log could not be written."""
    cfg = tiny_cfg()
    run_dir = run_dir_for(cfg)

    def crash(*args: Any, **kw: Any) -> dict[str, Any]:
        raise ValueError("a crash inside training")

    with monkeypatch.context() as m:
        m.setattr(loop, "train", crash)
        _full_disk(m, lambda name: ERROR_LOG in name, room=0)
        with pytest.raises(UserError) as e:
            run_one(cfg)
    _assert_one_disk_full_error(e.value, run_dir, capsys.readouterr().err)
    _assert_nothing_half_written(run_dir)
    assert not (run_dir / ERROR_LOG).exists()
    assert not (run_dir / records.RECORD_FILE).exists()
    assert run_one(cfg)["status"] == "ok"  # room again: trained, no failure on the record
    assert not (run_dir / ERROR_LOG).exists()


def test_an_empty_error_log_left_by_a_full_disk_goes_when_the_run_ends_ok(tiny_cfg):
    """What the old writer left (a 0-byte error.log) stayed beside the record of the rerun."""
    cfg = tiny_cfg()
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True)
    (run_dir / ERROR_LOG).write_bytes(b"")
    assert run_one(cfg)["status"] == "ok"
    assert _names(run_dir) == sorted(
        [records.LOCK_FILE, records.CONFIG_FILE, "plan.json", records.CURVE_FILE,
         records.RECORD_FILE]
    )  # fmt: skip


def test_a_curve_line_cut_short_by_a_full_disk_is_taken_back(tmp_path, monkeypatch):
    records.append_curve(tmp_path, {"step": 1, "loss": 3.0})
    before = (tmp_path / records.CURVE_FILE).read_bytes()
    with monkeypatch.context() as m:
        _full_disk(m, lambda name: name.endswith(records.CURVE_FILE), room=10)
        with pytest.raises(OSError):
            records.append_curve(tmp_path, {"step": 2, "loss": 2.5})
    assert (tmp_path / records.CURVE_FILE).read_bytes() == before


def test_a_curve_rewrite_on_a_full_disk_keeps_the_old_curve_and_no_temp_file(tmp_path, monkeypatch):
    for step in (1, 2, 3):
        records.append_curve(tmp_path, {"step": step, "loss": 3.0})
    before = _names(tmp_path), (tmp_path / records.CURVE_FILE).read_bytes()
    with monkeypatch.context() as m:
        _full_disk(m, lambda name: name.endswith(".tmp"), room=10)
        with pytest.raises(OSError):
            records.truncate_curve(tmp_path, 1)
    assert (_names(tmp_path), (tmp_path / records.CURVE_FILE).read_bytes()) == before


# ---- a real full disk: a tmpfs too small for the run's checkpoint ----


@pytest.fixture
def small_tmpfs(tmp_path):
    """A tmpfs of 64 KiB at tmp_path/disk, grown by `grow()`; skipped where mount is refused."""
    where = tmp_path / "disk"
    where.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"mount refused: {done.stderr.decode(errors='replace').strip()}")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=16m", str(where)], check=True)

    try:
        yield where, grow
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_real_full_disk_is_one_line_and_a_rerun_with_room_finishes(
    small_tmpfs, tiny_overrides, cli
):
    where, grow = small_tmpfs
    args = [a for a in tiny_overrides if not a.startswith("results_dir=")]
    args.append(f"results_dir={where / 'results'}")
    done = cli(args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "disk is full" in lines[0] and "results_dir" in lines[0]
    (run_dir,) = (where / "results" / "default").iterdir()
    assert lines[0].startswith(f"error: {run_dir}: ")
    _assert_nothing_half_written(run_dir)
    assert not (run_dir / ERROR_LOG).exists()

    grow()
    done = cli(args)
    assert done.returncode == 0, done.stderr
    _assert_nothing_half_written(run_dir)
    assert _names(run_dir) == sorted(
        [records.LOCK_FILE, records.CONFIG_FILE, "plan.json", records.CURVE_FILE,
         records.RECORD_FILE]
    )  # fmt: skip
