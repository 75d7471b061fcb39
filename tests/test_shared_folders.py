"""Results and data caches shared by several people (a cluster's project folder): files a run or
a cache build renames into place follow the umask, as files made with open() and mkdir() do."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sweeps.config import DataConfig
from sweeps.run.checkpoint import save_checkpoint
from sweeps.run.runner import run_dir_for, run_one


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")
            if p.is_file()}  # fmt: skip


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"),
                         [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775),  # a group's folder
                          (0o077, 0o600, 0o700)])  # fmt: skip
def test_records_checkpoints_and_cache_entries_follow_the_umask(
    tiny_cfg, tmp_path, umask, file_mode, dir_mode
):
    """tempfile's 0600 files and 0700 folders made record.json, config.json, plan.json,
    checkpoint.pt and every data cache entry unreadable to a shared folder's other users."""
    old = os.umask(umask)
    try:
        cache = tmp_path / "cache"
        cfg = tiny_cfg(data=DataConfig(name="synthetic", n_val_tokens=2048, cache_dir=str(cache)))
        run_one(cfg)
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    finally:
        os.umask(old)
    run_files = _modes(run_dir_for(cfg))
    assert {"record.json", "config.json", "plan.json", "curve.jsonl", ".lock"} <= set(run_files)
    assert set(run_files.values()) == {file_mode}, run_files
    assert stat.S_IMODE((tmp_path / "checkpoint.pt").stat().st_mode) == file_mode
    entries = [p for p in cache.iterdir() if (p / "meta.json").exists()]
    assert entries, "the synthetic corpus was cached"
    for entry in entries:
        assert stat.S_IMODE(entry.stat().st_mode) == dir_mode, entry
        assert {stat.S_IMODE(p.stat().st_mode) for p in entry.iterdir()} == {file_mode}


@pytest.mark.parametrize("proc_locks", [True, False])
def test_held_elsewhere_sees_a_lock_without_taking_one(tmp_path, monkeypatch, proc_locks):
    """Read from /proc/locks where Linux has it (a probe that locks could make another launch's
    run_lock fail at that moment), else by a probe."""
    import builtins

    from sweeps import records
    from sweeps.run.runner import run_lock

    if not proc_locks:
        real_open = builtins.open

        def no_proc_locks(path, *a, **k):
            if str(path) == "/proc/locks":
                raise FileNotFoundError(path)
            return real_open(path, *a, **k)

        monkeypatch.setattr(builtins, "open", no_proc_locks)
    run_dir = tmp_path / "run"
    assert not records.held_elsewhere(run_dir)
    with run_lock(run_dir):
        assert records.held_elsewhere(run_dir)
        if proc_locks:  # no lock taken: a second run_lock in this moment still sees only ours
            with run_lock(run_dir) as second:
                assert not second
    assert not records.held_elsewhere(run_dir)
